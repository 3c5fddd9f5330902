//! One-line errors and the exit codes they carry.

use gmail_oauth::Error;
use gmail_oauth::error::Chain;

/// A failed command. The exit code tells scripts what kind of failure it was.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// 2: bad arguments or configuration (also clap's own usage errors).
    #[error("{0}")]
    Usage(String),
    /// 3: Google no longer accepts the grant, or consent was not given.
    #[error("{0}")]
    Reauthorize(String),
    /// 4: no token (or client secrets) where one was expected.
    #[error("{0}")]
    NotFound(String),
    /// 5: Google, Gmail or SSM failed after retries.
    #[error("{0}")]
    Upstream(String),
    /// 1: anything else (a timeout waiting for the browser, a file error).
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Failed(_) => 1,
            CliError::Usage(_) => 2,
            CliError::Reauthorize(_) => 3,
            CliError::NotFound(_) => 4,
            CliError::Upstream(_) => 5,
        }
    }
}

impl From<Error> for CliError {
    fn from(error: Error) -> Self {
        match &error {
            Error::TokenNotFound { parameter, .. } => CliError::NotFound(format!(
                "no token in {parameter}; run `gmail-oauth login --client-secrets FILE` first"
            )),
            Error::ReauthorizationRequired { reason, .. } => CliError::Reauthorize(format!(
                "Google no longer accepts the stored token ({reason}); run `gmail-oauth login` again"
            )),
            Error::InvalidConfiguration { .. } => CliError::Usage(Chain(&error).to_string()),
            Error::Upstream { .. } => CliError::Upstream(Chain(&error).to_string()),
        }
    }
}

impl From<gmail_oauth::store::StoreError> for CliError {
    fn from(error: gmail_oauth::store::StoreError) -> Self {
        match error {
            gmail_oauth::store::StoreError::Unavailable { .. }
            | gmail_oauth::store::StoreError::NoTime { .. } => {
                CliError::Upstream(error.to_string())
            }
            gmail_oauth::store::StoreError::Refused { .. } => CliError::Failed(error.to_string()),
        }
    }
}
