//! Secrets as local files: the CLI's default store.
//!
//! The parameter name is the file's path. A write goes to a temporary file in the same
//! directory (mode 0600), is flushed to disk, then renamed over the old file, so a reader
//! sees the old token or the new one, never half of one, and a crash mid-write loses
//! nothing. The directory is created with mode 0700. The format is the same google-auth
//! JSON as in SSM, so `pythonic_gmail`'s `LocalPathClientBuilder` reads these files.

use super::{Parameter, StoreError, TokenStore};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Files on the local disk, by path.
#[derive(Debug, Clone, Default)]
pub struct FileStore;

impl FileStore {
    /// Whether the file exists and can be read or written by others than its owner.
    pub fn readable_by_others(path: &Path) -> bool {
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
    }

    fn read(path: &Path) -> Result<Option<Parameter>, StoreError> {
        match std::fs::read_to_string(path) {
            Ok(value) => {
                let version = std::fs::metadata(path)
                    .map(|m| m.mtime())
                    .unwrap_or_default();
                Ok(Some(Parameter {
                    name: path.display().to_string(),
                    value,
                    version,
                }))
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
}

fn io_error(operation: &'static str, path: &Path, error: &std::io::Error) -> StoreError {
    StoreError::Refused {
        operation,
        name: path.display().to_string(),
        detail: error.kind().to_string(),
    }
}

impl TokenStore for FileStore {
    async fn get_many(&self, names: &[&str]) -> Result<Vec<Option<Parameter>>, StoreError> {
        names
            .iter()
            .map(|name| Self::read(Path::new(name)))
            .collect()
    }

    async fn put_secret(&self, name: &str, value: &str) -> Result<i64, StoreError> {
        let path = Path::new(name);
        Self::write_atomically(path, value)?;
        Ok(std::fs::metadata(path)
            .map(|m| m.mtime())
            .unwrap_or_default())
    }

    /// Files keep no history: a local file has one writer, the person at the keyboard.
    async fn get_version(
        &self,
        _name: &str,
        _version: i64,
    ) -> Result<Option<Parameter>, StoreError> {
        Ok(None)
    }

    async fn delete(&self, name: &str) -> Result<bool, StoreError> {
        match std::fs::remove_file(name) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(io_error("delete", Path::new(name), &error)),
        }
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

    #[tokio::test]
    async fn writes_0600_files_in_a_0700_directory_and_reads_them_back() {
        let dir = temp_dir("perms");
        let path = dir.join("nested/token.json");
        let name = path.to_str().unwrap();
        assert_eq!(FileStore.get_many(&[name]).await.unwrap(), vec![None]);
        FileStore.put_secret(name, "{\"a\":1}").await.unwrap();
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
        let read = FileStore.get_many(&[name]).await.unwrap();
        assert_eq!(read[0].as_ref().unwrap().value, "{\"a\":1}");
        assert!(!FileStore::readable_by_others(&path));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(FileStore::readable_by_others(&path));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_rewrite_replaces_the_whole_file_and_leaves_no_temp_file() {
        let dir = temp_dir("atomic");
        let path = dir.join("token.json");
        let name = path.to_str().unwrap();
        FileStore
            .put_secret(name, &"x".repeat(10_000))
            .await
            .unwrap();
        FileStore.put_secret(name, "short").await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "short");
        let entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries, ["token.json"]);
        // A replaced file keeps 0600 even if the old one was more open.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        FileStore.put_secret(name, "again").await.unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(FileStore.delete(name).await.unwrap());
        assert!(!FileStore.delete(name).await.unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_failed_write_reports_an_error_and_leaves_no_temp_file() {
        let dir = temp_dir("failed");
        let blocker = dir.join("token.json");
        // A non-empty directory where the file should go makes the rename fail.
        std::fs::create_dir_all(blocker.join("inside")).unwrap();
        let error = FileStore
            .put_secret(blocker.to_str().unwrap(), "new")
            .await
            .unwrap_err();
        assert!(error.to_string().contains("token.json"), "{error}");
        let entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries, ["token.json"]);
        assert!(blocker.join("inside").is_dir());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
