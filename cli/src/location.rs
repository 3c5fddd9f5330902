//! Where tokens and client secrets live: `file:PATH`, `ssm:/parameter`, or
//! `ssm-path:/path/` (many mailboxes), and the repository that serves each.

use crate::error::CliError;
use gmail_oauth::mailbox::{self, Address};
use gmail_oauth::store::{
    Entry, FileRepository, Layout, ParameterRepository, Settled, Snapshot, SsmParameters,
    SsmTuning, StoreError, Stored, TokenRepository,
};
use gmail_oauth::token::StoredToken;
use std::fmt;
use std::path::{Path, PathBuf};

/// A location, written `file:PATH`, `ssm:/name` or `ssm-path:/path/` (a bare path is a file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
    Ssm(String),
    /// Many mailboxes, one parameter each (`MAILBOXES_PATH`); always ends with `/`.
    SsmPath(String),
}

fn valid_name(name: &str) -> bool {
    name.starts_with('/')
        && name.len() > 1
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
}

impl std::str::FromStr for Location {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        if let Some(path) = raw.strip_prefix("ssm-path:") {
            let path = format!("{}/", path.trim_end_matches('/'));
            return if valid_name(&path) && !path.contains("//") {
                Ok(Location::SsmPath(path))
            } else {
                Err(format!(
                    "{raw:?} is not ssm-path:/parameter/path/ (letters, digits and _.-/ only)"
                ))
            };
        }
        if let Some(name) = raw.strip_prefix("ssm:") {
            return if valid_name(name) && !name.ends_with('/') {
                Ok(Location::Ssm(name.to_owned()))
            } else {
                Err(format!(
                    "{raw:?} is not ssm:/parameter-name (letters, digits and _.-/ only)"
                ))
            };
        }
        let path = raw.strip_prefix("file:").unwrap_or(raw);
        if path.is_empty() {
            return Err("the file path is empty".into());
        }
        Ok(Location::File(PathBuf::from(path)))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File(path) => write!(f, "file:{}", path.display()),
            Location::Ssm(name) => write!(f, "ssm:{name}"),
            Location::SsmPath(path) => write!(f, "ssm-path:{path}"),
        }
    }
}

impl Location {
    /// The default token file: `$XDG_CONFIG_HOME/gmail-oauth/token.json`, else
    /// `~/.config/gmail-oauth/token.json`.
    pub fn default_token() -> Location {
        Location::File(config_dir().join("token.json"))
    }

    /// The client secrets that go with a token: the file beside a token file, or the
    /// functions' default parameter beside SSM.
    pub fn client_secrets_beside(token: &Location) -> Location {
        match token {
            Location::File(path) => Location::File(
                path.parent()
                    .unwrap_or(Path::new("."))
                    .join("client_secrets.json"),
            ),
            Location::Ssm(_) | Location::SsmPath(_) => {
                Location::Ssm(gmail_oauth::config::DEFAULT_CLIENT_SECRETS_PARAM.into())
            }
        }
    }

    /// The one mailbox this location means: itself, or `account`'s parameter under a path.
    pub fn mailbox(&self, account: Option<&Address>) -> Result<Location, CliError> {
        match (self, account) {
            (Location::SsmPath(path), Some(account)) => mailbox::parameter_name(path, account)
                .map(Location::Ssm)
                .map_err(|e| CliError::Usage(e.to_string())),
            (Location::SsmPath(path), None) => Err(CliError::Usage(format!(
                "ssm-path:{path} holds many mailboxes: say which with --account ADDRESS"
            ))),
            (other, _) => Ok(other.clone()),
        }
    }
}

fn config_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("gmail-oauth")
}

/// The repository behind a token location, with the client secrets from wherever they are.
pub struct Repository {
    base: Base,
    /// Client secrets read from another kind of location than the tokens: (the JSON,
    /// where it came from).
    secrets: Option<(Option<String>, String)>,
}

enum Base {
    File(FileRepository),
    Ssm(ParameterRepository<SsmParameters>),
}

impl Repository {
    /// Opens `tokens` with the client secrets at `secrets` (SSM clients are built only when
    /// an SSM location is used).
    pub async fn open(
        tokens: &Location,
        secrets: &Location,
        kms_key_id: Option<String>,
    ) -> Result<Repository, CliError> {
        let ssm = || SsmParameters::from_env(kms_key_id.clone(), SsmTuning::default());
        let same_kind = matches!(
            (tokens, secrets),
            (Location::File(_), Location::File(_))
                | (Location::Ssm(_) | Location::SsmPath(_), Location::Ssm(_))
        );
        let secrets_param = match secrets {
            Location::Ssm(name) => name.clone(),
            _ => String::new(),
        };
        let base = match tokens {
            Location::File(token) => Base::File(FileRepository::new(
                token,
                match secrets {
                    Location::File(path) => Some(path.clone()),
                    _ => None,
                },
            )),
            Location::Ssm(token) => Base::Ssm(ParameterRepository::new(
                ssm().await,
                secrets_param,
                Layout::Single {
                    token_param: token.clone(),
                },
            )),
            Location::SsmPath(path) => Base::Ssm(ParameterRepository::new(
                ssm().await,
                secrets_param,
                Layout::Many { path: path.clone() },
            )),
        };
        let secrets = if same_kind {
            None
        } else {
            Some((read_raw(secrets, kms_key_id).await?, secrets.to_string()))
        };
        Ok(Repository { base, secrets })
    }
}

/// The text at a single location (a file, or one parameter), if any.
pub async fn read_raw(
    location: &Location,
    kms_key_id: Option<String>,
) -> Result<Option<String>, CliError> {
    match location {
        Location::File(path) => {
            if FileRepository::readable_by_others(path) {
                eprintln!(
                    "gmail-oauth: warning: {} is readable by other users; run `chmod 600 {}`",
                    path.display(),
                    path.display()
                );
            }
            Ok(FileRepository::read(path)?.map(|(value, _)| value))
        }
        Location::Ssm(name) => {
            let repo = ParameterRepository::new(
                SsmParameters::from_env(kms_key_id, SsmTuning::default()).await,
                name.clone(),
                Layout::Single {
                    token_param: name.clone(),
                },
            );
            Ok(repo.client_secrets().await?)
        }
        Location::SsmPath(path) => Err(CliError::Usage(format!(
            "ssm-path:{path} holds many mailboxes, not one value"
        ))),
    }
}

/// Stores `raw` at a single location as a secret (a 0600 file, or a SecureString).
pub async fn write_raw(
    location: &Location,
    raw: &str,
    kms_key_id: Option<String>,
) -> Result<(), CliError> {
    use gmail_oauth::store::{ParameterKind, ParameterStore};
    match location {
        Location::File(path) => Ok(FileRepository::write_atomically(path, raw)?),
        Location::Ssm(name) => {
            SsmParameters::from_env(kms_key_id, SsmTuning::default())
                .await
                .put(name, raw, ParameterKind::Secret, true, None)
                .await?;
            Ok(())
        }
        Location::SsmPath(path) => Err(CliError::Usage(format!(
            "ssm-path:{path} holds many mailboxes, not one value"
        ))),
    }
}

impl TokenRepository for Repository {
    fn location(&self) -> String {
        match &self.base {
            Base::File(repo) => repo.location(),
            Base::Ssm(repo) => repo.location(),
        }
    }

    fn client_secrets_location(&self) -> String {
        match (&self.secrets, &self.base) {
            (Some((_, location)), _) => location.clone(),
            (None, Base::File(repo)) => repo.client_secrets_location(),
            (None, Base::Ssm(repo)) => repo.client_secrets_location(),
        }
    }

    async fn load_all(&self) -> Result<Snapshot, StoreError> {
        let mut snapshot = match &self.base {
            Base::File(repo) => repo.load_all().await?,
            Base::Ssm(repo) => repo.load_all().await?,
        };
        if let Some((raw, _)) = &self.secrets {
            snapshot.client_secrets = raw.clone();
        }
        Ok(snapshot)
    }

    async fn client_secrets(&self) -> Result<Option<String>, StoreError> {
        match (&self.secrets, &self.base) {
            (Some((raw, _)), _) => Ok(raw.clone()),
            (None, Base::File(repo)) => repo.client_secrets().await,
            (None, Base::Ssm(repo)) => repo.client_secrets().await,
        }
    }

    async fn load(&self, address: Option<&Address>) -> Result<Option<Entry>, StoreError> {
        match &self.base {
            Base::File(repo) => repo.load(address).await,
            Base::Ssm(repo) => repo.load(address).await,
        }
    }

    async fn save(
        &self,
        stored: &Stored,
        fresh: &StoredToken,
        deadline: Option<gmail_oauth::deadline::Deadline>,
    ) -> Result<Settled, StoreError> {
        match &self.base {
            Base::File(repo) => repo.save(stored, fresh, deadline).await,
            Base::Ssm(repo) => repo.save(stored, fresh, deadline).await,
        }
    }

    async fn check(&self, stored: &Stored) -> Result<Option<Stored>, StoreError> {
        match &self.base {
            Base::File(repo) => repo.check(stored).await,
            Base::Ssm(repo) => repo.check(stored).await,
        }
    }

    async fn link(&self, address: &Address, token: &StoredToken) -> Result<String, StoreError> {
        match &self.base {
            Base::File(repo) => repo.link(address, token).await,
            Base::Ssm(repo) => repo.link(address, token).await,
        }
    }

    async fn save_checkpoint(&self, stored: &Stored, checkpoint: &str) -> Result<(), StoreError> {
        match &self.base {
            Base::File(repo) => repo.save_checkpoint(stored, checkpoint).await,
            Base::Ssm(repo) => repo.save_checkpoint(stored, checkpoint).await,
        }
    }

    async fn unlink(&self, address: Option<&Address>) -> Result<bool, StoreError> {
        match &self.base {
            Base::File(repo) => repo.unlink(address).await,
            Base::Ssm(repo) => repo.unlink(address).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_and_prints_it_back() {
        let file: Location = "file:/tmp/t.json".parse().unwrap();
        assert_eq!(file, Location::File("/tmp/t.json".into()));
        assert_eq!(file.to_string(), "file:/tmp/t.json");
        assert_eq!(
            "./t.json".parse::<Location>().unwrap(),
            Location::File("./t.json".into())
        );
        let ssm: Location = "ssm:/gmail-oauth/token".parse().unwrap();
        assert_eq!(ssm.to_string(), "ssm:/gmail-oauth/token");
        let path: Location = "ssm-path:/gmail-oauth/mailboxes".parse().unwrap();
        assert_eq!(path.to_string(), "ssm-path:/gmail-oauth/mailboxes/");
        assert!("ssm:gmail".parse::<Location>().is_err());
        assert!("ssm:/a b".parse::<Location>().is_err());
        assert!("ssm:/dir/".parse::<Location>().is_err());
        assert!("ssm-path:relative/".parse::<Location>().is_err());
        assert!("file:".parse::<Location>().is_err());
    }

    #[test]
    fn one_mailbox_of_many_is_its_parameter() {
        let path: Location = "ssm-path:/gmail-oauth/mailboxes/".parse().unwrap();
        let account = Address::new("Me@Example.com").unwrap();
        assert_eq!(
            path.mailbox(Some(&account)).unwrap(),
            Location::Ssm("/gmail-oauth/mailboxes/example.com/me".into())
        );
        assert_eq!(path.mailbox(None).unwrap_err().exit_code(), 2);
        let file = Location::File("/x/token.json".into());
        assert_eq!(file.mailbox(Some(&account)).unwrap(), file);
    }

    #[test]
    fn client_secrets_sit_beside_the_token() {
        let beside = Location::client_secrets_beside(&Location::File("/x/y/token.json".into()));
        assert_eq!(beside, Location::File("/x/y/client_secrets.json".into()));
        let beside = Location::client_secrets_beside(&"ssm-path:/p/".parse().unwrap());
        assert_eq!(beside, Location::Ssm("/gmail-oauth/client-secrets".into()));
    }
}
