//! Where the tokens live: the [`TokenRepository`] port the use cases speak, and its adapters.
//!
//! The port is per mailbox: load them all (with the client secrets, in as few calls as the
//! backend allows), save one mailbox's refreshed token, link a consent, unlink. How a save
//! keeps the newest grant is each adapter's business: over Parameter Store it is the
//! grant-keeping protocol ([`ParameterRepository`], driving `grant_keeping::Save` over SSM
//! or over the in-memory model); a local file has one writer and compares before replacing
//! ([`FileRepository`]).

// The file store keeps the token readable by its owner only (mode 0600, checked on read),
// which needs Unix permissions: it exists on Unix only.
#[cfg(unix)]
mod file;
mod memory;
mod parameters;
mod ssm;

pub use crate::grant_keeping::{Seen, Settled, Version};
#[cfg(unix)]
pub use file::FileRepository;
pub use memory::MemoryParameters;
pub use parameters::{Found, Layout, ParameterKind, ParameterRepository, ParameterStore, Wanted};
pub(crate) use ssm::describe;
pub use ssm::{SsmParameters, SsmTuning, sdk_config_from_env, sdk_http_client};

use crate::deadline::Deadline;
use crate::grant_keeping::{Lineage, Record};
use crate::mailbox::Address;
use crate::token::{StoredToken, TokenFormatError};
use std::future::Future;

/// Why the store failed. Messages carry names and AWS error codes, never values.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Try again later: throttled, a 5xx, a timeout, no connection.
    #[error("{operation} failed: {detail}")]
    Unavailable {
        operation: &'static str,
        detail: String,
    },
    /// The store said no (access denied, a name it does not take, ...).
    #[error("{operation} on {name} was refused: {detail}")]
    Refused {
        operation: &'static str,
        name: String,
        detail: String,
    },
    /// Not sent: its turn (under the store's write quota) came after the time it had.
    #[error(
        "{operation} on {name} was not sent: its time was up before the write quota gave it a turn"
    )]
    NoTime {
        operation: &'static str,
        name: String,
    },
}

/// A stored value as text, and the token read from it when it is one. Two values are the
/// same when their text is (Parameter Store compares nothing else).
#[derive(Clone)]
pub struct TokenValue {
    raw: String,
    token: Option<StoredToken>,
}

impl TokenValue {
    /// Reads `raw`; a value that is not a token is kept as text (and has no grant).
    pub fn read(raw: String) -> TokenValue {
        let token = StoredToken::from_json(&raw).ok();
        TokenValue { raw, token }
    }

    /// The JSON of `token`, to store.
    pub fn of(token: &StoredToken) -> Result<TokenValue, TokenFormatError> {
        Ok(TokenValue {
            raw: token.to_json()?,
            token: Some(token.clone()),
        })
    }

    pub fn raw(&self) -> &str {
        &self.raw
    }

    pub fn token(&self) -> Option<&StoredToken> {
        self.token.as_ref()
    }
}

impl PartialEq for TokenValue {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl std::fmt::Debug for TokenValue {
    // The value is a secret: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenValue([redacted])")
    }
}

impl Record for TokenValue {
    type Grant = String;

    fn lineage(&self) -> Lineage {
        self.token
            .as_ref()
            .and_then(|t| t.lineage)
            .unwrap_or(Lineage::Foreign)
    }

    fn grant(&self) -> Option<String> {
        let refresh = self.token.as_ref()?.refresh_token.as_ref()?;
        Some(refresh.secret().clone())
    }

    fn with_lineage(&self, lineage: Lineage) -> Self {
        let Some(token) = &self.token else {
            return self.clone();
        };
        let mut token = token.clone();
        token.lineage = (lineage != Lineage::Foreign).then_some(lineage);
        TokenValue::of(&token).unwrap_or_else(|_| self.clone())
    }
}

pub use crate::mailbox::{CHECKPOINT, checkpoint_name};

/// One mailbox's token as read.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The parameter (or file) it lives in.
    pub name: String,
    /// The mailbox, from the parameter's name (many mailboxes) or the token's `account`.
    pub address: Option<Address>,
    pub seen: Seen<TokenValue>,
    pub token: StoredToken,
    /// The mailbox's events checkpoint as stored (JSON), read with the token.
    pub checkpoint: Option<String>,
}

impl Stored {
    /// The mailbox's address as it is shown: the address, else the parameter's name.
    pub fn label(&self) -> String {
        match &self.address {
            Some(address) => address.to_string(),
            None => self.name.clone(),
        }
    }
}

/// One parameter found where mailboxes live.
#[derive(Debug, Clone)]
pub enum Entry {
    Token(Box<Stored>),
    /// Not a token (malformed JSON, no refresh token, too large), or a name the mailbox
    /// mapping does not make. Reported by name, never overwritten.
    Invalid {
        name: String,
        problem: String,
    },
}

/// The client secrets and every mailbox, as one run reads them.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The client secrets JSON, if the parameter (or file) exists.
    pub client_secrets: Option<String>,
    pub mailboxes: Vec<Entry>,
}

/// Where each mailbox's token lives, and how it is kept (the port of the use cases).
pub trait TokenRepository: Send + Sync {
    /// Where the tokens are, for messages: the token parameter, the mailboxes' path, or
    /// the token file.
    fn location(&self) -> String;

    /// Where the client secrets are, for messages.
    fn client_secrets_location(&self) -> String;

    /// The client secrets and every mailbox.
    fn load_all(&self) -> impl Future<Output = Result<Snapshot, StoreError>> + Send;

    /// The client secrets JSON, if stored.
    fn client_secrets(&self) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// One mailbox: `address`'s (many mailboxes), or the one token (`address` unused).
    fn load(
        &self,
        address: Option<&Address>,
    ) -> impl Future<Output = Result<Option<Entry>, StoreError>> + Send;

    /// Writes `fresh` (a refresh of `stored`'s token) back without ever leaving an older
    /// grant on top of a newer one. With a deadline, the write starts only with the
    /// deadline's save reserve still ahead ([`Deadline::write_by`]) and a repair only with
    /// half of it ([`Deadline::heal_by`]).
    fn save(
        &self,
        stored: &Stored,
        fresh: &StoredToken,
        deadline: Option<Deadline>,
    ) -> impl Future<Output = Result<Settled, StoreError>> + Send;

    /// After Google refused `stored`'s grant: a newer grant that a stopped save left hidden
    /// is put back and returned; `None` when `stored` really is the newest.
    fn check(
        &self,
        stored: &Stored,
    ) -> impl Future<Output = Result<Option<Stored>, StoreError>> + Send;

    /// Stores a consent's token for `address`; returns where.
    fn link(
        &self,
        address: &Address,
        token: &StoredToken,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Stores the events checkpoint of `stored`'s mailbox (`checkpoint` is its JSON), beside
    /// the token: never a secret, and never a write to the token itself.
    fn save_checkpoint(
        &self,
        stored: &Stored,
        checkpoint: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes a mailbox's token and its checkpoint (`address`'s, or the one token);
    /// `false` if there was no token.
    fn unlink(
        &self,
        address: Option<&Address>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// A stored value read from `name`: a mailbox's token, or why it is not one.
pub(crate) fn entry(name: &str, address: Option<Address>, seen: Seen<String>) -> Entry {
    match StoredToken::from_json(&seen.value) {
        Ok(token) => {
            let address = address.or_else(|| token.account().and_then(Address::new));
            Entry::Token(Box::new(Stored {
                name: name.to_owned(),
                address,
                seen: Seen {
                    version: seen.version,
                    written_at: seen.written_at,
                    value: TokenValue {
                        raw: seen.value,
                        token: Some(token.clone()),
                    },
                },
                token,
                checkpoint: None,
            }))
        }
        Err(problem) => Entry::Invalid {
            name: name.to_owned(),
            problem: problem.to_string(),
        },
    }
}
