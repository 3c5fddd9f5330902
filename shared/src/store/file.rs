//! A token in a local file: the CLI's default store.
//!
//! A write goes to a temporary file in the same directory (mode 0600), is flushed to disk,
//! then renamed over the old file, so a reader sees the old token or the new one, never half
//! of one, and a crash mid-write loses nothing. The directory is created with mode 0700. The
//! format is the same google-auth JSON as in SSM, so `pythonic_gmail`'s
//! `LocalPathClientBuilder` reads these files.
//!
//! A file has one writer at a time, the person at the keyboard: a save compares the file
//! with what was read and leaves it alone if someone (a `login` in another terminal,
//! pythonic_gmail) replaced it meanwhile. The window between that comparison and the rename
//! is a few microseconds on one machine; the protocol for shared stores is SSM's.
//!
//! Unix only (file modes).

use super::{Entry, Seen, Settled, Snapshot, StoreError, Stored, TokenRepository, entry};
use crate::mailbox::Address;
use crate::token::StoredToken;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// One mailbox's token in a file, and the client secrets in another (or given).
#[derive(Debug, Clone)]
pub struct FileRepository {
    token: PathBuf,
    client_secrets: Option<PathBuf>,
}

impl FileRepository {
    /// The token at `token`; the client secrets read from `client_secrets` if given.
    pub fn new(token: impl Into<PathBuf>, client_secrets: Option<PathBuf>) -> Self {
        FileRepository {
            token: token.into(),
            client_secrets,
        }
    }

    pub fn token_path(&self) -> &Path {
        &self.token
    }

    /// Whether the file exists and can be read or written by others than its owner.
    pub fn readable_by_others(path: &Path) -> bool {
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
    }

    /// The file's text, and when it was last written (nanoseconds), if it exists.
    pub fn read(path: &Path) -> Result<Option<(String, i64)>, StoreError> {
        match std::fs::read_to_string(path) {
            Ok(value) => {
                let written_at = std::fs::metadata(path)
                    .map(|m| {
                        m.mtime()
                            .saturating_mul(1_000_000_000)
                            .saturating_add(m.mtime_nsec())
                    })
                    .unwrap_or_default();
                Ok(Some((value, written_at)))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(io_error("read", path, &error)),
        }
    }

    /// Writes atomically: temp file (0600) in the same directory, fsync, rename.
    pub fn write_atomically(path: &Path, value: &str) -> Result<(), StoreError> {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| io_error("create directory", &dir, &e))?;
        }
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = dir.join(format!(
            ".{file_name}.{}-{:08x}.tmp",
            std::process::id(),
            rand::random::<u32>()
        ));
        let result = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)?;
            file.write_all(value.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temp, path)?;
            // Make the rename itself durable.
            if let Ok(dir) = std::fs::File::open(&dir) {
                let _ = dir.sync_all();
            }
            Ok::<(), std::io::Error>(())
        })();
        if let Err(error) = result {
            let _ = std::fs::remove_file(&temp);
            return Err(io_error("write", path, &error));
        }
        Ok(())
    }

    /// Removes a file; `false` if there was none.
    pub fn remove(path: &Path) -> Result<bool, StoreError> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(io_error("delete", path, &error)),
        }
    }

    fn token_entry(&self) -> Result<Option<Entry>, StoreError> {
        let name = self.token.display().to_string();
        let mut found = Self::read(&self.token)?.map(|(value, written_at)| {
            entry(
                &name,
                None,
                Seen {
                    version: 1,
                    written_at,
                    value,
                },
            )
        });
        if let Some(Entry::Token(stored)) = &mut found {
            stored.checkpoint = Self::read(&self.checkpoint())?.map(|(value, _)| value);
        }
        Ok(found)
    }

    /// The events checkpoint beside the token file: `<token file>.checkpoint`.
    fn checkpoint(&self) -> PathBuf {
        let mut name = self.token.as_os_str().to_owned();
        name.push(".checkpoint");
        PathBuf::from(name)
    }
}

fn io_error(operation: &'static str, path: &Path, error: &std::io::Error) -> StoreError {
    StoreError::Refused {
        operation,
        name: path.display().to_string(),
        detail: error.kind().to_string(),
    }
}

impl TokenRepository for FileRepository {
    fn location(&self) -> String {
        self.token.display().to_string()
    }

    fn client_secrets_location(&self) -> String {
        self.client_secrets
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(none given)".into())
    }

    async fn load_all(&self) -> Result<Snapshot, StoreError> {
        Ok(Snapshot {
            client_secrets: self.client_secrets().await?,
            mailboxes: self.token_entry()?.into_iter().collect(),
        })
    }

    async fn client_secrets(&self) -> Result<Option<String>, StoreError> {
        match &self.client_secrets {
            Some(path) => Ok(Self::read(path)?.map(|(value, _)| value)),
            None => Ok(None),
        }
    }

    async fn load(&self, _address: Option<&Address>) -> Result<Option<Entry>, StoreError> {
        self.token_entry()
    }

    async fn save(
        &self,
        stored: &Stored,
        fresh: &StoredToken,
        deadline: Option<crate::deadline::Deadline>,
    ) -> Result<Settled, StoreError> {
        if deadline.is_some_and(|d| tokio::time::Instant::now() > d.write_by()) {
            return Ok(Settled::NotWritten);
        }
        let now = Self::read(&self.token)?;
        if now.as_ref().map(|(value, _)| value.as_str()) != Some(stored.seen.value.raw()) {
            tracing::warn!(file = %self.token.display(), "the token file changed while it was in use; keeping the newer file");
            return Ok(Settled::Superseded);
        }
        let json = fresh.to_json().map_err(|problem| StoreError::Refused {
            operation: "write",
            name: self.token.display().to_string(),
            detail: format!("the token {problem}"),
        })?;
        Self::write_atomically(&self.token, &json)?;
        Ok(Settled::Stored)
    }

    async fn check(&self, stored: &Stored) -> Result<Option<Stored>, StoreError> {
        match self.token_entry()? {
            Some(Entry::Token(now)) if now.seen.value != stored.seen.value => Ok(Some(*now)),
            _ => Ok(None),
        }
    }

    async fn link(&self, _address: &Address, token: &StoredToken) -> Result<String, StoreError> {
        let mut token = token.clone();
        token.lineage = Some(crate::grant_keeping::Lineage::Consent);
        let json = token.to_json().map_err(|problem| StoreError::Refused {
            operation: "write",
            name: self.token.display().to_string(),
            detail: format!("the token {problem}"),
        })?;
        Self::write_atomically(&self.token, &json)?;
        Ok(self.token.display().to_string())
    }

    async fn save_checkpoint(&self, _stored: &Stored, checkpoint: &str) -> Result<(), StoreError> {
        Self::write_atomically(&self.checkpoint(), checkpoint)
    }

    async fn unlink(&self, _address: Option<&Address>) -> Result<bool, StoreError> {
        let unlinked = Self::remove(&self.token)?;
        Self::remove(&self.checkpoint())?;
        Ok(unlinked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "gmail-oauth-file-store-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn writes_0600_files_in_a_0700_directory_and_reads_them_back() {
        let dir = temp_dir("perms");
        let path = dir.join("nested/token.json");
        assert_eq!(FileRepository::read(&path).unwrap(), None);
        FileRepository::write_atomically(&path, "{\"a\":1}").unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        assert_eq!(FileRepository::read(&path).unwrap().unwrap().0, "{\"a\":1}");
        assert!(!FileRepository::readable_by_others(&path));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(FileRepository::readable_by_others(&path));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_rewrite_replaces_the_whole_file_and_leaves_no_temp_file() {
        let dir = temp_dir("atomic");
        let path = dir.join("token.json");
        FileRepository::write_atomically(&path, &"x".repeat(10_000)).unwrap();
        FileRepository::write_atomically(&path, "short").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "short");
        let entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries, ["token.json"]);
        // A replaced file keeps 0600 even if the old one was more open.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        FileRepository::write_atomically(&path, "again").unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(FileRepository::remove(&path).unwrap());
        assert!(!FileRepository::remove(&path).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_write_reports_an_error_and_leaves_no_temp_file() {
        let dir = temp_dir("failed");
        let blocker = dir.join("token.json");
        // A non-empty directory where the file should go makes the rename fail.
        std::fs::create_dir_all(blocker.join("inside")).unwrap();
        let error = FileRepository::write_atomically(&blocker, "new").unwrap_err();
        assert!(error.to_string().contains("token.json"), "{error}");
        let entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries, ["token.json"]);
        assert!(blocker.join("inside").is_dir());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_save_leaves_a_file_someone_replaced_meanwhile() {
        let dir = temp_dir("replaced");
        let path = dir.join("token.json");
        FileRepository::write_atomically(&path, crate::fixtures::TOKEN_AFTER_CONSENT).unwrap();
        let repo = FileRepository::new(&path, None);
        let Some(Entry::Token(stored)) = repo.load(None).await.unwrap() else {
            panic!("a token")
        };
        let mut fresh = stored.token.clone();
        fresh.account = Some("me@example.com".into());
        FileRepository::write_atomically(&path, crate::fixtures::TOKEN_AFTER_REFRESH).unwrap();
        assert_eq!(
            repo.save(&stored, &fresh, None).await.unwrap(),
            Settled::Superseded
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            crate::fixtures::TOKEN_AFTER_REFRESH
        );
        let Some(Entry::Token(stored)) = repo.load(None).await.unwrap() else {
            panic!("a token")
        };
        assert_eq!(
            repo.save(&stored, &fresh, None).await.unwrap(),
            Settled::Stored
        );
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("me@example.com")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
