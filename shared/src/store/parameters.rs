//! Tokens in a Parameter Store: one parameter (`TOKEN_PARAM`), or one per mailbox under a
//! path (`MAILBOXES_PATH`), kept with the grant-keeping protocol.
//!
//! [`ParameterStore`] is the handful of Parameter Store calls the protocol needs; SSM
//! ([`super::SsmParameters`]) and the in-memory model ([`super::MemoryParameters`]) both
//! provide them, so unit tests run the same protocol code as the Lambda functions.

use super::{
    Entry, Snapshot, StoreError, Stored, TokenRepository, TokenValue, checkpoint_name, entry,
};
use crate::grant_keeping::{Save, Seen, Selector, Settled, Step, Version};
use crate::mailbox::{self, Address};
use crate::token::StoredToken;
use std::future::Future;

/// One name to read: the current value, or one version (`name:version`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub name: String,
    pub version: Option<Version>,
}

impl Wanted {
    pub fn current(name: &str) -> Wanted {
        Wanted {
            name: name.to_owned(),
            version: None,
        }
    }

    /// The name as `GetParameters` takes it.
    pub fn selector(&self) -> String {
        match self.version {
            Some(v) => format!("{}:{v}", self.name),
            None => self.name.clone(),
        }
    }
}

/// One parameter version read (decrypted).
#[derive(Clone, PartialEq, Eq)]
pub struct Found {
    pub name: String,
    pub version: Version,
    /// `LastModifiedDate`, in milliseconds since the epoch.
    pub written_at: i64,
    pub value: String,
}

impl std::fmt::Debug for Found {
    // The value is a secret: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Found")
            .field("name", &self.name)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// What a parameter holds: secrets are `SecureString`s, bookkeeping plain `String`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParameterKind {
    Secret,
    Plain,
}

/// The Parameter Store calls the tokens need.
pub trait ParameterStore: Send + Sync {
    /// `GetParameters` (decrypted, at most 10 names): every version found, in any order.
    /// A plain name gives the current version; none is returned for a name not found.
    fn get(&self, wanted: &[Wanted])
    -> impl Future<Output = Result<Vec<Found>, StoreError>> + Send;

    /// `GetParametersByPath` (recursive, decrypted), every page.
    fn get_by_path(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<Vec<Found>, StoreError>> + Send;

    /// `PutParameter`; returns the new version. With `overwrite` false, an existing
    /// parameter is refused.
    fn put(
        &self,
        name: &str,
        value: &str,
        kind: ParameterKind,
        overwrite: bool,
    ) -> impl Future<Output = Result<Version, StoreError>> + Send;

    /// `DeleteParameter`; `false` if there was none.
    fn delete(&self, name: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Where the tokens are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// One mailbox, in one parameter (`TOKEN_PARAM`), as before many mailboxes.
    Single { token_param: String },
    /// One parameter per mailbox under `path` (ends with `/`), named by
    /// [`mailbox::parameter_name`].
    Many { path: String },
}

/// Tokens in a [`ParameterStore`].
#[derive(Debug, Clone)]
pub struct ParameterRepository<P> {
    store: P,
    client_secrets_param: String,
    layout: Layout,
}

impl<P: ParameterStore> ParameterRepository<P> {
    pub fn new(store: P, client_secrets_param: impl Into<String>, layout: Layout) -> Self {
        ParameterRepository {
            store,
            client_secrets_param: client_secrets_param.into(),
            layout,
        }
    }

    pub fn store(&self) -> &P {
        &self.store
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The parameter of `address` (many), or the one parameter (single).
    pub fn parameter_of(&self, address: Option<&Address>) -> Result<String, StoreError> {
        match (&self.layout, address) {
            (Layout::Single { token_param }, _) => Ok(token_param.clone()),
            (Layout::Many { path }, Some(address)) => mailbox::parameter_name(path, address)
                .map_err(|error| StoreError::Refused {
                    operation: "name",
                    name: address.to_string(),
                    detail: error.to_string(),
                }),
            (Layout::Many { path }, None) => Err(StoreError::Refused {
                operation: "name",
                name: path.clone(),
                detail: "many mailboxes are kept here: say which one".into(),
            }),
        }
    }

    /// Whether `name` is a mailbox's checkpoint (many mailboxes): `<mailbox>/checkpoint`.
    fn is_checkpoint(&self, name: &str) -> bool {
        name.strip_suffix(super::CHECKPOINT)
            .and_then(|rest| rest.strip_suffix('/'))
            .is_some_and(|token| self.address_of(token).is_some())
    }

    /// The mailbox `name` belongs to, under many mailboxes.
    fn address_of(&self, name: &str) -> Option<Address> {
        match &self.layout {
            Layout::Single { .. } => None,
            Layout::Many { path } => mailbox::address_of(path, name),
        }
    }

    fn entry(&self, found: Found) -> Entry {
        let address = self.address_of(&found.name);
        if matches!(self.layout, Layout::Many { .. }) && address.is_none() {
            return Entry::Invalid {
                name: found.name,
                problem: "is not a mailbox's name under the path (gmail-oauth mailboxes lists the names it makes)".into(),
            };
        }
        let name = found.name.clone();
        entry(&name, address, seen(found))
    }

    /// Runs the protocol for one save (or check) of `name` from its first step.
    async fn drive(
        &self,
        name: &str,
        mut save: Save<TokenValue>,
        mut step: Step<TokenValue>,
        heal_until: Option<tokio::time::Instant>,
    ) -> Result<Settled, StoreError> {
        let mut first_put = true;
        loop {
            step = match step {
                Step::Done(settled) => return Ok(settled),
                Step::Put(value) => {
                    // A repair (heal) is only started while its time is still ahead; past
                    // it, the next run finishes the repair.
                    if !first_put
                        && heal_until.is_some_and(|until| tokio::time::Instant::now() >= until)
                    {
                        return Ok(Settled::GaveUp);
                    }
                    first_put = false;
                    let written = self
                        .store
                        .put(name, value.raw(), ParameterKind::Secret, true)
                        .await;
                    match written {
                        Ok(version) => save.on_put(Some(version)),
                        // It may have committed all the same: the protocol looks.
                        Err(StoreError::Unavailable { .. }) => save.on_put(None),
                        Err(refused) => return Err(refused),
                    }
                }
                Step::Get(asked) => {
                    let wanted: Vec<Wanted> = asked
                        .iter()
                        .map(|selector| Wanted {
                            name: name.to_owned(),
                            version: match selector {
                                Selector::Current => None,
                                Selector::Version(v) => Some(*v),
                            },
                        })
                        .collect();
                    let found = self.store.get(&wanted).await?;
                    let current = found
                        .iter()
                        .filter(|f| f.name == name)
                        .max_by_key(|f| f.version)
                        .cloned()
                        .map(|f| token_seen(seen(f)));
                    let versions = found
                        .into_iter()
                        .filter(|f| f.name == name)
                        .map(|f| token_seen(seen(f)))
                        .collect();
                    save.on_get(&asked, current, versions)
                }
            };
        }
    }
}

fn seen(found: Found) -> Seen<String> {
    Seen {
        version: found.version,
        written_at: found.written_at,
        value: found.value,
    }
}

fn token_seen(seen: Seen<String>) -> Seen<TokenValue> {
    Seen {
        version: seen.version,
        written_at: seen.written_at,
        value: TokenValue::read(seen.value),
    }
}

impl<P: ParameterStore> TokenRepository for ParameterRepository<P> {
    fn location(&self) -> String {
        match &self.layout {
            Layout::Single { token_param } => token_param.clone(),
            Layout::Many { path } => path.clone(),
        }
    }

    fn client_secrets_location(&self) -> String {
        self.client_secrets_param.clone()
    }

    async fn load_all(&self) -> Result<Snapshot, StoreError> {
        match &self.layout {
            Layout::Single { token_param } => {
                // All three in one call, as the functions have always read them.
                let checkpoint = checkpoint_name(token_param);
                let found = self
                    .store
                    .get(&[
                        Wanted::current(&self.client_secrets_param),
                        Wanted::current(token_param),
                        Wanted::current(&checkpoint),
                    ])
                    .await?;
                let mut snapshot = Snapshot::default();
                let mut checkpoints = Vec::new();
                for found in found {
                    if found.name == self.client_secrets_param {
                        snapshot.client_secrets = Some(found.value);
                    } else if found.name == *token_param {
                        snapshot.mailboxes.push(self.entry(found));
                    } else if found.name == checkpoint {
                        checkpoints.push(found);
                    }
                }
                attach(&mut snapshot.mailboxes, checkpoints);
                Ok(snapshot)
            }
            Layout::Many { path } => {
                let client_secrets = self.client_secrets().await?;
                let mut found = self.store.get_by_path(path).await?;
                found.sort_by(|a, b| a.name.cmp(&b.name));
                // Checkpoints are listed with the tokens (one read for both).
                let (checkpoints, tokens): (Vec<Found>, Vec<Found>) =
                    found.into_iter().partition(|f| self.is_checkpoint(&f.name));
                let mut mailboxes: Vec<Entry> = tokens.into_iter().map(|f| self.entry(f)).collect();
                attach(&mut mailboxes, checkpoints);
                Ok(Snapshot {
                    client_secrets,
                    mailboxes,
                })
            }
        }
    }

    async fn client_secrets(&self) -> Result<Option<String>, StoreError> {
        let found = self
            .store
            .get(&[Wanted::current(&self.client_secrets_param)])
            .await?;
        Ok(found.into_iter().next().map(|f| f.value))
    }

    async fn load(&self, address: Option<&Address>) -> Result<Option<Entry>, StoreError> {
        // The token only: the callback, which loads, has no business with checkpoints.
        let name = self.parameter_of(address)?;
        let found = self.store.get(&[Wanted::current(&name)]).await?;
        Ok(found.into_iter().next().map(|f| self.entry(f)))
    }

    async fn save(
        &self,
        stored: &Stored,
        fresh: &StoredToken,
        heal_until: Option<tokio::time::Instant>,
    ) -> Result<Settled, StoreError> {
        let value = TokenValue::of(fresh).map_err(|problem| StoreError::Refused {
            operation: "PutParameter",
            name: stored.name.clone(),
            detail: format!("the token {problem}"),
        })?;
        let (save, step) = Save::start(stored.seen.clone(), &value);
        self.drive(&stored.name, save, step, heal_until).await
    }

    async fn check(&self, stored: &Stored) -> Result<Option<Stored>, StoreError> {
        let (save, step) = Save::check(stored.seen.clone());
        match self.drive(&stored.name, save, step, None).await? {
            Settled::Healed | Settled::Superseded => {
                match self.load(stored.address.as_ref()).await? {
                    Some(Entry::Token(newer))
                        if newer.token.refresh_token.as_ref().map(|r| r.secret())
                            != stored.token.refresh_token.as_ref().map(|r| r.secret()) =>
                    {
                        Ok(Some(*newer))
                    }
                    _ => Ok(None),
                }
            }
            _ => Ok(None),
        }
    }

    async fn link(&self, address: &Address, token: &StoredToken) -> Result<String, StoreError> {
        let name = self.parameter_of(Some(address))?;
        let mut token = token.clone();
        token.lineage = Some(crate::grant_keeping::Lineage::Consent);
        let json = token.to_json().map_err(|problem| StoreError::Refused {
            operation: "PutParameter",
            name: name.clone(),
            detail: format!("the token {problem}"),
        })?;
        self.store
            .put(&name, &json, ParameterKind::Secret, true)
            .await?;
        Ok(name)
    }

    async fn save_checkpoint(&self, stored: &Stored, checkpoint: &str) -> Result<(), StoreError> {
        self.store
            .put(
                &checkpoint_name(&stored.name),
                checkpoint,
                ParameterKind::Plain,
                true,
            )
            .await
            .map(|_| ())
    }

    async fn unlink(&self, address: Option<&Address>) -> Result<bool, StoreError> {
        let name = self.parameter_of(address)?;
        let unlinked = self.store.delete(&name).await?;
        self.store.delete(&checkpoint_name(&name)).await?;
        Ok(unlinked)
    }
}

/// Gives each token its checkpoint, by name (one lookup per token).
fn attach(entries: &mut [Entry], checkpoints: Vec<Found>) {
    let mut by_name: std::collections::HashMap<String, String> = checkpoints
        .into_iter()
        .map(|found| (found.name, found.value))
        .collect();
    for entry in entries.iter_mut() {
        if let Entry::Token(stored) = entry {
            stored.checkpoint = by_name.remove(&checkpoint_name(&stored.name));
        }
    }
}
