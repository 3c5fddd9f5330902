//! Where a secret lives: `file:PATH` or `ssm:/parameter`, and one store that serves both.

use gmail_oauth::store::{FileStore, Parameter, SsmStore, StoreError, TokenStore};
use std::fmt;
use std::path::{Path, PathBuf};

/// A secret's location, written `file:PATH` or `ssm:/name` (a bare path means a file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
    Ssm(String),
}

impl std::str::FromStr for Location {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        if let Some(name) = raw.strip_prefix("ssm:") {
            let valid = name.starts_with('/')
                && name.len() > 1
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c));
            return if valid {
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
    /// functions' default parameter beside an SSM token.
    pub fn client_secrets_beside(token: &Location) -> Location {
        match token {
            Location::File(path) => Location::File(
                path.parent()
                    .unwrap_or(Path::new("."))
                    .join("client_secrets.json"),
            ),
            Location::Ssm(_) => {
                Location::Ssm(gmail_oauth::config::DEFAULT_CLIENT_SECRETS_PARAM.into())
            }
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

/// Files and SSM parameters behind one [`TokenStore`]: names are `Location`s as text.
/// The SSM client is only built when an `ssm:` location is used.
pub struct LocationStore {
    kms_key_id: Option<String>,
    ssm: tokio::sync::OnceCell<SsmStore>,
}

impl LocationStore {
    pub fn new(kms_key_id: Option<String>) -> Self {
        LocationStore {
            kms_key_id,
            ssm: tokio::sync::OnceCell::new(),
        }
    }

    async fn ssm(&self) -> &SsmStore {
        self.ssm
            .get_or_init(|| SsmStore::from_env(self.kms_key_id.clone()))
            .await
    }

    fn parse(name: &str) -> Result<Location, StoreError> {
        name.parse().map_err(|detail| StoreError::Refused {
            operation: "locate",
            name: name.to_owned(),
            detail,
        })
    }
}

impl TokenStore for LocationStore {
    async fn get_many(&self, names: &[&str]) -> Result<Vec<Option<Parameter>>, StoreError> {
        let mut found = Vec::with_capacity(names.len());
        for name in names {
            let parameter = match Self::parse(name)? {
                Location::File(path) => FileStore
                    .get_many(&[&path.to_string_lossy()])
                    .await?
                    .pop()
                    .flatten(),
                Location::Ssm(param) => self.ssm().await.get_many(&[&param]).await?.pop().flatten(),
            };
            found.push(parameter);
        }
        Ok(found)
    }

    async fn put_secret(&self, name: &str, value: &str) -> Result<i64, StoreError> {
        match Self::parse(name)? {
            Location::File(path) => FileStore.put_secret(&path.to_string_lossy(), value).await,
            Location::Ssm(param) => self.ssm().await.put_secret(&param, value).await,
        }
    }

    async fn get_version(&self, name: &str, version: i64) -> Result<Option<Parameter>, StoreError> {
        match Self::parse(name)? {
            Location::File(path) => {
                FileStore
                    .get_version(&path.to_string_lossy(), version)
                    .await
            }
            Location::Ssm(param) => self.ssm().await.get_version(&param, version).await,
        }
    }

    async fn delete(&self, name: &str) -> Result<bool, StoreError> {
        match Self::parse(name)? {
            Location::File(path) => FileStore.delete(&path.to_string_lossy()).await,
            Location::Ssm(param) => self.ssm().await.delete(&param).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_kinds_and_prints_them_back() {
        let file: Location = "file:/tmp/t.json".parse().unwrap();
        assert_eq!(file, Location::File("/tmp/t.json".into()));
        assert_eq!(file.to_string(), "file:/tmp/t.json");
        assert_eq!(
            "./t.json".parse::<Location>().unwrap(),
            Location::File("./t.json".into())
        );
        let ssm: Location = "ssm:/gmail-oauth/token".parse().unwrap();
        assert_eq!(ssm.to_string(), "ssm:/gmail-oauth/token");
        assert!("ssm:gmail".parse::<Location>().is_err());
        assert!("ssm:/a b".parse::<Location>().is_err());
        assert!("file:".parse::<Location>().is_err());
    }

    #[test]
    fn client_secrets_sit_beside_the_token() {
        let beside = Location::client_secrets_beside(&Location::File("/x/y/token.json".into()));
        assert_eq!(beside, Location::File("/x/y/client_secrets.json".into()));
        let beside = Location::client_secrets_beside(&"ssm:/p/token".parse().unwrap());
        assert_eq!(beside, Location::Ssm("/gmail-oauth/client-secrets".into()));
    }
}
