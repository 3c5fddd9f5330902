//! `ALLOWED_ACCOUNTS`: which mailboxes may be linked.

/// Mailbox addresses and `@domain` entries, case-insensitive. Empty allows nobody.
#[derive(Debug, Clone, Default)]
pub struct AllowedAccounts {
    entries: Vec<String>,
    anyone: bool,
}

impl AllowedAccounts {
    pub fn parse(list: &str) -> Self {
        let entries = list
            .split(',')
            .map(|e| e.trim().to_lowercase())
            .filter(|e| !e.is_empty())
            .collect();
        AllowedAccounts {
            entries,
            anyone: false,
        }
    }

    /// Every account: for a local consent, where the person at the keyboard is the user.
    pub fn anyone() -> Self {
        AllowedAccounts {
            entries: Vec::new(),
            anyone: true,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && !self.anyone
    }

    /// Whether `account` may be linked. An empty list allows nobody.
    pub fn allows(&self, account: &str) -> bool {
        if self.anyone {
            return true;
        }
        let account = account.trim().to_lowercase();
        let domain = account.rsplit_once('@').map(|(_, d)| d);
        self.entries
            .iter()
            .any(|entry| match entry.strip_prefix('@') {
                Some(allowed_domain) => domain == Some(allowed_domain),
                None => *entry == account,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_accounts_match_addresses_and_domains_case_insensitively() {
        let allowed = AllowedAccounts::parse(" Me@Example.com , @corp.example ,");
        assert!(allowed.allows("me@example.com"));
        assert!(allowed.allows("ME@EXAMPLE.COM"));
        assert!(allowed.allows("anyone@Corp.Example"));
        assert!(!allowed.allows("you@example.com"));
        assert!(!allowed.allows("x@evilcorp.example"));
        assert!(!allowed.allows("x@sub.corp.example"));
        assert!(!AllowedAccounts::parse("").allows("me@example.com"));
        assert!(AllowedAccounts::parse(" , ").is_empty());
        assert!(AllowedAccounts::anyone().allows("whoever@wherever"));
    }
}
