//! Tokens in a Parameter Store: one parameter (`TOKEN_PARAM`), or one per mailbox under a
//! path (`MAILBOXES_PATH`), kept with the grant-keeping protocol.
//!
//! [`ParameterStore`] is the handful of Parameter Store calls the protocol needs; SSM
//! ([`super::SsmParameters`]) and the in-memory model ([`super::MemoryParameters`]) both
//! provide them, so unit tests run the same protocol code as the Lambda functions.

use super::{
    Entry, Snapshot, StoreError, Stored, TokenRepository, TokenValue, checkpoint_name, entry,
};
use crate::deadline::Deadline;
use crate::grant_keeping::{Save, Seen, Selector, Settled, Step, Version};
use crate::mailbox::{self, Address};
use crate::token::StoredToken;
use std::future::Future;
use tokio::time::Instant;

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
    /// parameter is refused. With `start_by`, a write whose turn (the write quota's pacing
    /// included) comes later is not sent: [`StoreError::NoTime`].
    fn put(
        &self,
        name: &str,
        value: &str,
        kind: ParameterKind,
        overwrite: bool,
        start_by: Option<Instant>,
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

    /// Runs the protocol for one save (or check) of `name` from its first step. With a
    /// deadline, the first write is sent only while the save's reserve is still ahead
    /// ([`Deadline::write_by`], checked once the write quota gives it its turn) and a
    /// repair only while half of it is ([`Deadline::heal_by`]); the protocol bounds its
    /// own steps (`grant_keeping::MAX_STEPS`), and the caller bounds the whole by the
    /// deadline.
    async fn drive(
        &self,
        name: &str,
        mut save: Save<TokenValue>,
        mut step: Step<TokenValue>,
        deadline: Option<Deadline>,
    ) -> Result<Settled, StoreError> {
        let mut first_put = true;
        loop {
            step = match step {
                Step::Done(settled) => return Ok(settled),
                Step::Put(value) => {
                    let start_by =
                        deadline.map(|d| if first_put { d.write_by() } else { d.heal_by() });
                    let written = self
                        .store
                        .put(name, value.raw(), ParameterKind::Secret, true, start_by)
                        .await;
                    let first = std::mem::replace(&mut first_put, false);
                    match written {
                        Ok(version) => save.on_put(Some(version)),
                        // It may have committed all the same: the protocol looks.
                        Err(StoreError::Unavailable { .. }) => save.on_put(None),
                        // Not sent: the write never landed; a repair is left to the next
                        // run's check.
                        Err(StoreError::NoTime { .. }) if first => {
                            return Ok(Settled::NotWritten);
                        }
                        Err(StoreError::NoTime { .. }) => return Ok(Settled::GaveUp),
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

    /// Says so when the value read names versions this parameter never had (a restored or
    /// copied token, or a run's write after an unlink): at version 1 the protocol counts it
    /// as a consent there; above, it is not believed and the save looks at every version.
    fn note_lineage(stored: &Stored) {
        let lineage = crate::grant_keeping::Record::lineage(&stored.seen.value);
        if !lineage.plausible_at(stored.seen.version) {
            tracing::warn!(
                parameter = %stored.name,
                version = stored.seen.version,
                origin = lineage.origin(),
                since = lineage.since(),
                "the stored token says it descends from a version this parameter never had (restored or copied by hand, or written back after an unlink); at version 1 it is taken as a consent there, above it the whole history is checked (remove its gmail_oauth key when restoring a token by hand)"
            );
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
                // Without its token the checkpoint is nothing to report: TokenNotFound is.
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
                for orphan in attach(&mut mailboxes, checkpoints) {
                    mailboxes.push(orphan_checkpoint(orphan));
                }
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
        deadline: Option<Deadline>,
    ) -> Result<Settled, StoreError> {
        let value = TokenValue::of(fresh).map_err(|problem| StoreError::Refused {
            operation: "PutParameter",
            name: stored.name.clone(),
            detail: format!("the token {problem}"),
        })?;
        Self::note_lineage(stored);
        let (save, step) = Save::start(stored.seen.clone(), &value);
        self.drive(&stored.name, save, step, deadline).await
    }

    async fn check(&self, stored: &Stored) -> Result<Option<Stored>, StoreError> {
        Self::note_lineage(stored);
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
            .put(&name, &json, ParameterKind::Secret, true, None)
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
                None,
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

/// Gives each token its checkpoint, by name (one lookup per token); returns the checkpoints
/// that have no token.
fn attach(entries: &mut [Entry], checkpoints: Vec<Found>) -> Vec<Found> {
    let mut by_name: std::collections::HashMap<String, Found> = checkpoints
        .into_iter()
        .map(|found| (found.name.clone(), found))
        .collect();
    for entry in entries.iter_mut() {
        if let Entry::Token(stored) = entry {
            stored.checkpoint = by_name
                .remove(&checkpoint_name(&stored.name))
                .map(|found| found.value);
        }
    }
    let mut orphans: Vec<Found> = by_name.into_values().collect();
    orphans.sort_by(|a, b| a.name.cmp(&b.name));
    orphans
}

/// A checkpoint whose mailbox has no token, reported by name: left by an unlink that
/// stopped between its two deletes, or (holding a token) the parameter of a mailbox whose
/// local part is `checkpoint`, from before such names were escaped.
fn orphan_checkpoint(found: Found) -> Entry {
    let problem = if StoredToken::from_json(&found.value).is_ok() {
        "holds a token under the name this project gave a local part \"checkpoint\" before it was escaped (X63heckpoint): link that mailbox again, then delete this parameter"
    } else {
        "is the events checkpoint of a mailbox that is not linked (no token beside it): delete it"
    };
    Entry::Invalid {
        name: found.name,
        problem: problem.into(),
    }
}
