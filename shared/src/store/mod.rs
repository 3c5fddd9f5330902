//! Where the token and the client secrets live, by parameter name.
//!
//! The port is deliberately small: read several parameters at once (one SSM round trip for
//! both values), write one as a secret. Every read returns the parameter's version, so a
//! writer can tell whether someone else wrote since it read.

mod file;
mod memory;
mod ssm;

pub use file::FileStore;
pub use memory::MemoryStore;
pub use ssm::{SsmStore, sdk_http_client};

use std::future::Future;

/// A stored value and the version it had when read.
#[derive(Clone, PartialEq, Eq)]
pub struct Parameter {
    pub name: String,
    pub value: String,
    pub version: i64,
}

impl std::fmt::Debug for Parameter {
    // The value is a secret (token or client secrets): never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parameter")
            .field("name", &self.name)
            .field("value", &"[redacted]")
            .field("version", &self.version)
            .finish()
    }
}

/// Why the store failed. Messages carry names and AWS error codes, never values.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{operation} failed: {detail}")]
    Unavailable {
        operation: &'static str,
        detail: String,
    },
    #[error("{operation} on {name} was refused: {detail}")]
    Refused {
        operation: &'static str,
        name: String,
        detail: String,
    },
}

/// Secret parameters by name.
pub trait TokenStore: Send + Sync {
    /// Reads the named parameters (decrypted) in one call; `None` where one does not exist.
    /// The result has one entry per name, in the same order.
    fn get_many(
        &self,
        names: &[&str],
    ) -> impl Future<Output = Result<Vec<Option<Parameter>>, StoreError>> + Send;

    /// Writes `value` as a secret, overwriting; returns the new version.
    fn put_secret(
        &self,
        name: &str,
        value: &str,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Reads one earlier version of a parameter (decrypted); `None` if it is not kept.
    fn get_version(
        &self,
        name: &str,
        version: i64,
    ) -> impl Future<Output = Result<Option<Parameter>, StoreError>> + Send;

    /// Removes a parameter; `false` if there was none.
    fn delete(&self, name: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
