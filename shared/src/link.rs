//! Linking an account (the callback, `gmail-oauth login`): redeem the code, check the
//! scopes, identify the mailbox, check the allow-list, store the token as a consent.
//!
//! The consenting account decides where the token goes; linking one mailbox never reads or
//! writes another's.

use crate::allow::AllowedAccounts;
use crate::client_secrets::ClientSecrets;
use crate::deadline::{Deadline, within};
use crate::error::Source;
use crate::gmail::Mailbox;
use crate::grant_keeping::Lineage;
use crate::keep::apply_grant;
use crate::mailbox::Address;
use crate::oauth::{CodeExchanger, Grant, OAuthError};
use crate::store::{Entry, StoreError, TokenRepository};
use crate::token::StoredToken;
use chrono::{DateTime, Utc};
use oauth2::{AuthorizationCode, ClientSecret, PkceCodeVerifier, RedirectUrl, RefreshToken};
use serde_json::{Map, Value};

/// Why linking an account failed. Each maps to one HTTP status in the callback.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("Google did not accept the authorization code (it was already used or has expired)")]
    CodeRejected,
    #[error("the consent did not grant every required permission (missing: {})", .missing.join(" "))]
    ScopeNotGranted { missing: Vec<String> },
    #[error("the account {account} is not allowed to be linked")]
    AccountNotAllowed { account: String },
    #[error("Google did not issue a refresh token for {account}")]
    NoRefreshToken { account: String },
    /// Google, Gmail or the store failed; `context` says at which step.
    #[error("{context}")]
    Upstream {
        context: &'static str,
        #[source]
        source: Source,
    },
    /// The invocation's deadline came before Google or Gmail answered: nothing was stored.
    #[error("Google did not answer before the invocation's deadline; nothing was stored")]
    TimedOut,
    /// The deadline came while the token was being written: it may or may not be stored.
    #[error(
        "the parameter store did not confirm the write before the invocation's deadline; the mailbox may or may not be linked"
    )]
    WriteUnconfirmed,
}

fn upstream(
    context: &'static str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> LinkError {
    LinkError::Upstream {
        context,
        source: Box::new(source),
    }
}

/// What the callback has verified before a code may be redeemed.
pub struct Consent<'a> {
    pub secrets: &'a ClientSecrets,
    pub code: AuthorizationCode,
    pub pkce_verifier: PkceCodeVerifier,
    pub redirect_uri: &'a RedirectUrl,
    pub required_scopes: &'a [String],
    pub allowed: &'a AllowedAccounts,
}

/// A linked mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linked {
    pub account: Address,
    /// Where its token is stored (a parameter name or a file).
    pub stored_in: String,
}

/// Redeems the code, checks the grant and the account, stores the token.
///
/// With a `deadline`, Google and Gmail get the time up to its save reserve, the write the
/// rest: the answer always comes before the deadline, saying whether anything was stored.
pub async fn link_account(
    repo: &impl TokenRepository,
    google: &impl CodeExchanger,
    gmail: &impl Mailbox,
    consent: Consent<'_>,
    now: DateTime<Utc>,
    deadline: Option<Deadline>,
) -> Result<Linked, LinkError> {
    let (account, token) = within(
        deadline.map(|d| d.work_until()),
        redeem_and_verify(repo, google, gmail, consent, now),
    )
    .await
    .ok_or(LinkError::TimedOut)??;
    let stored_in = within(deadline.map(|d| d.at), repo.link(&account, &token))
        .await
        .ok_or(LinkError::WriteUnconfirmed)?
        .map_err(|e| upstream("storing the token", e))?;
    tracing::info!(%account, stored_in, "stored the token of a newly linked account");
    Ok(Linked { account, stored_in })
}

/// Redeems the code and checks everything about the grant; returns the account and the
/// token to store.
async fn redeem_and_verify(
    repo: &impl TokenRepository,
    google: &impl CodeExchanger,
    gmail: &impl Mailbox,
    consent: Consent<'_>,
    now: DateTime<Utc>,
) -> Result<(Address, StoredToken), LinkError> {
    let grant = google
        .exchange_code(
            consent.secrets,
            consent.code,
            consent.pkce_verifier,
            consent.redirect_uri,
        )
        .await
        .map_err(|error| match error {
            OAuthError::InvalidGrant => LinkError::CodeRejected,
            other => upstream("redeeming the authorization code", other),
        })?;

    let granted = grant
        .scopes
        .clone()
        .unwrap_or_else(|| consent.required_scopes.to_vec());
    let missing: Vec<String> = consent
        .required_scopes
        .iter()
        .filter(|s| !granted.contains(s))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(LinkError::ScopeNotGranted { missing });
    }

    let email = gmail
        .profile(&grant.access_token)
        .await
        .map_err(|e| upstream("reading the account's Gmail profile", e))?
        .email_address;
    let Some(account) = Address::new(&email).filter(|_| consent.allowed.allows(&email)) else {
        return Err(LinkError::AccountNotAllowed { account: email });
    };

    let refresh_token = match &grant.refresh_token {
        Some(new) => new.clone(),
        None => reusable_refresh_token(repo, consent.secrets, &account).await?,
    };
    let mut extra = Map::new();
    extra.insert("universe_domain".into(), Value::from("googleapis.com"));
    let mut token = StoredToken {
        token: None,
        refresh_token: Some(refresh_token),
        token_uri: Some(consent.secrets.token_uri.to_string()),
        client_id: Some(consent.secrets.client_id.to_string()),
        client_secret: Some(ClientSecret::new(
            consent.secrets.client_secret.secret().clone(),
        )),
        scopes: granted,
        account: Some(account.to_string()),
        expiry: None,
        lineage: Some(Lineage::Consent),
        extra,
    };
    apply_grant(
        &mut token,
        Grant {
            refresh_token: None,
            ..grant
        },
        now,
    );
    Ok((account, token))
}

/// Google answers a consent without a refresh token when the app already has one for the
/// account: the stored one may be kept, but only from that same account's token and only
/// if it was issued to this same OAuth client.
async fn reusable_refresh_token(
    repo: &impl TokenRepository,
    secrets: &ClientSecrets,
    account: &Address,
) -> Result<RefreshToken, LinkError> {
    let no_refresh_token = || LinkError::NoRefreshToken {
        account: account.to_string(),
    };
    let stored = repo
        .load(Some(account))
        .await
        .map_err(|e: StoreError| upstream("reading the stored token", e))?;
    let Some(Entry::Token(stored)) = stored else {
        return Err(no_refresh_token());
    };
    let same_account = stored
        .token
        .account()
        .and_then(Address::new)
        .is_some_and(|a| a == *account);
    let same_client = stored.token.client_id.as_deref() == Some(secrets.client_id.as_str());
    match &stored.token.refresh_token {
        Some(kept) if same_account && same_client => Ok(kept.clone()),
        _ => Err(no_refresh_token()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryParameters, ParameterRepository};
    use crate::testing::*;
    use oauth2::AccessToken;
    use serde_json::Value;
    use std::sync::Mutex;

    struct Setup {
        secrets: ClientSecrets,
        redirect: RedirectUrl,
        scopes: Vec<String>,
        allowed: AllowedAccounts,
    }

    fn setup(allowed: &str) -> Setup {
        Setup {
            secrets: secrets(),
            redirect: RedirectUrl::new("https://abc.example/callback".into()).unwrap(),
            scopes: vec!["https://www.googleapis.com/auth/gmail.readonly".into()],
            allowed: AllowedAccounts::parse(allowed),
        }
    }

    async fn link(
        repo: &ParameterRepository<MemoryParameters>,
        setup: &Setup,
        answer: Result<Grant, OAuthError>,
        account: &str,
    ) -> Result<Linked, LinkError> {
        let exchanger = ScriptedExchanger(Mutex::new(vec![answer]));
        let mut gmail = FakeMailbox::accepting("*");
        gmail.account = account.into();
        let consent = Consent {
            secrets: &setup.secrets,
            code: AuthorizationCode::new("4/code".into()),
            pkce_verifier: PkceCodeVerifier::new("v".repeat(43)),
            redirect_uri: &setup.redirect,
            required_scopes: &setup.scopes,
            allowed: &setup.allowed,
        };
        link_account(repo, &exchanger, &gmail, consent, now(), None).await
    }

    fn value(repo: &ParameterRepository<MemoryParameters>, name: &str) -> Value {
        serde_json::from_str(&repo.store().value(name).expect("stored")).unwrap()
    }

    #[tokio::test]
    async fn each_account_is_linked_into_its_own_parameter_as_a_consent() {
        let repo = many(&[]);
        let setup = setup("@example.com");
        let linked = link(
            &repo,
            &setup,
            grant("a1", Some("1//ann")),
            "Ann@Example.com",
        )
        .await
        .unwrap();
        assert_eq!(linked.account.as_str(), "ann@example.com");
        assert_eq!(linked.stored_in, "/t/mailboxes/example.com/ann");
        link(
            &repo,
            &setup,
            grant("b1", Some("1//bob")),
            "bob@example.com",
        )
        .await
        .unwrap();
        let ann = value(&repo, "/t/mailboxes/example.com/ann");
        assert_eq!(ann["refresh_token"], "1//ann");
        assert_eq!(ann["account"], "ann@example.com");
        assert_eq!(ann["gmail_oauth"]["written_by"], "consent");
        assert_eq!(ann["expiry"], "2026-11-23T12:59:59Z");
        assert_eq!(
            value(&repo, "/t/mailboxes/example.com/bob")["refresh_token"],
            "1//bob"
        );
        // Linking Bob wrote Bob's parameter only: Ann's has one version.
        assert_eq!(
            repo.store().version("/t/mailboxes/example.com/ann"),
            Some(1)
        );
    }

    #[tokio::test]
    async fn refusals_store_nothing() {
        let repo = many(&[]);
        let setup = setup("me@example.com");
        let not_allowed = link(&repo, &setup, grant("a", Some("1//r")), "eve@example.com").await;
        assert!(matches!(
            not_allowed,
            Err(LinkError::AccountNotAllowed { .. })
        ));
        let rejected = link(
            &repo,
            &setup,
            Err(OAuthError::InvalidGrant),
            "me@example.com",
        )
        .await;
        assert!(matches!(rejected, Err(LinkError::CodeRejected)));
        let mut narrow = grant("a", Some("1//r")).unwrap();
        narrow.scopes = Some(vec!["openid".into()]);
        let scopes = link(&repo, &setup, Ok(narrow), "me@example.com").await;
        assert!(matches!(scopes, Err(LinkError::ScopeNotGranted { .. })));
        let no_refresh = link(&repo, &setup, grant("a", None), "me@example.com").await;
        assert!(matches!(no_refresh, Err(LinkError::NoRefreshToken { .. })));
        assert!(repo.store().writes().is_empty());
    }

    #[tokio::test]
    async fn without_a_refresh_token_only_the_same_accounts_token_of_the_same_client_is_reused() {
        let setup = setup("@example.com");
        let mine = token("me@example.com", "old", "1//mine", "2026-11-23T11:00:00Z");
        let repo = many(&[("/t/mailboxes/example.com/me", &json(&mine))]);
        let linked = link(&repo, &setup, grant("new", None), "me@example.com")
            .await
            .unwrap();
        assert_eq!(linked.account.as_str(), "me@example.com");
        let stored = value(&repo, "/t/mailboxes/example.com/me");
        assert_eq!(stored["refresh_token"], "1//mine");
        assert_eq!(stored["token"], "new");

        // Another account finds no token of its own: nothing is borrowed from "me".
        let other = link(&repo, &setup, grant("x", None), "other@example.com").await;
        assert!(matches!(other, Err(LinkError::NoRefreshToken { .. })));

        // A token of the same account from another OAuth client is not reused either.
        let mut foreign = mine.clone();
        foreign.client_id = Some("another-client.apps.googleusercontent.com".into());
        let repo = many(&[("/t/mailboxes/example.com/me", &json(&foreign))]);
        let refused = link(&repo, &setup, grant("new", None), "me@example.com").await;
        assert!(matches!(refused, Err(LinkError::NoRefreshToken { .. })));
    }

    #[tokio::test]
    async fn one_token_takes_whichever_allowed_account_consented() {
        let setup = setup("me@example.com,you@example.com");
        let repo = single(&token(
            "me@example.com",
            "old",
            "1//mine",
            "2026-11-23T11:00:00Z",
        ));
        let linked = link(&repo, &setup, grant("y", Some("1//you")), "you@example.com")
            .await
            .unwrap();
        assert_eq!(linked.stored_in, TOKEN_PARAM);
        assert_eq!(value(&repo, TOKEN_PARAM)["account"], "you@example.com");
        let _ = AccessToken::new(String::new());
    }

    #[tokio::test]
    async fn a_store_failure_is_upstream_and_keeps_its_cause() {
        let repo = many(&[]);
        repo.store().lose_next_answer("PutParameter");
        let setup = setup("me@example.com");
        let error = link(&repo, &setup, grant("a", Some("1//r")), "me@example.com")
            .await
            .unwrap_err();
        assert!(matches!(
            error,
            LinkError::Upstream {
                context: "storing the token",
                ..
            }
        ));
        let chain = crate::error::Chain(&error).to_string();
        assert!(chain.contains("PutParameter failed"), "{chain}");
    }
}
