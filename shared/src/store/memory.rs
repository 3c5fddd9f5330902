//! Parameter Store in memory, for unit tests: versions, their history, deletes, and
//! answers that can be lost after the write committed. Integration tests use moto.

use super::{Found, ParameterKind, ParameterStore, StoreError, Version, Wanted};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

#[derive(Debug, Default)]
struct Inner {
    /// Every parameter's versions (1-based) with their commit number.
    parameters: BTreeMap<String, Vec<(String, i64)>>,
    commits: i64,
    /// Operations whose answer is lost after they took effect, in order.
    lost: VecDeque<&'static str>,
    /// Every write: (operation, name).
    writes: Vec<(&'static str, String)>,
    write_times: Vec<tokio::time::Instant>,
    reads: usize,
}

/// Parameters in memory, versioned like Parameter Store's.
#[derive(Debug, Default)]
pub struct MemoryParameters {
    inner: Mutex<Inner>,
    /// Writes paced as [`super::SsmParameters`] paces them (unpaced when `None`).
    write_pacer: Option<crate::pacing::Pacer>,
}

impl MemoryParameters {
    pub fn with(parameters: &[(&str, &str)]) -> Self {
        let store = MemoryParameters::default();
        for (name, value) in parameters {
            store.commit(name, value);
        }
        store
    }

    /// Writes paced to `per_second`, as the SSM adapter paces them to the write quota.
    pub fn with_write_quota(mut self, per_second: f64) -> Self {
        self.write_pacer = Some(crate::pacing::Pacer::per_second(per_second));
        self
    }

    /// When each write so far was sent (tokio's clock).
    pub fn write_times(&self) -> Vec<tokio::time::Instant> {
        self.lock().write_times.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn commit(&self, name: &str, value: &str) -> Version {
        let mut inner = self.lock();
        inner.commits += 1;
        let at = inner.commits;
        let versions = inner.parameters.entry(name.to_owned()).or_default();
        versions.push((value.to_owned(), at));
        versions.len() as Version
    }

    /// Someone else writes `value` (a consent elsewhere, an operator).
    pub fn put_directly(&self, name: &str, value: &str) -> Version {
        self.commit(name, value)
    }

    /// The next `operation` (`PutParameter`, `DeleteParameter`) takes effect, then its
    /// answer is lost.
    pub fn lose_next_answer(&self, operation: &'static str) {
        self.lock().lost.push_back(operation);
    }

    /// The current value of `name`.
    pub fn value(&self, name: &str) -> Option<String> {
        let inner = self.lock();
        inner.parameters.get(name)?.last().map(|(v, _)| v.clone())
    }

    /// The current version of `name`.
    pub fn version(&self, name: &str) -> Option<Version> {
        let inner = self.lock();
        inner.parameters.get(name).map(|v| v.len() as Version)
    }

    /// Every write so far: (operation, name).
    pub fn writes(&self) -> Vec<(&'static str, String)> {
        self.lock().writes.clone()
    }

    /// `GetParameters` and `GetParametersByPath` calls so far.
    pub fn reads(&self) -> usize {
        self.lock().reads
    }

    fn answer_lost(&self, operation: &'static str, name: &str) -> bool {
        let mut inner = self.lock();
        inner.writes.push((operation, name.to_owned()));
        match inner.lost.front() {
            Some(lost) if *lost == operation => {
                inner.lost.pop_front();
                true
            }
            _ => false,
        }
    }
}

fn found(name: &str, version: usize, (value, at): &(String, i64)) -> Found {
    Found {
        name: name.to_owned(),
        version: version as Version,
        written_at: *at,
        value: value.clone(),
    }
}

fn lost(operation: &'static str) -> StoreError {
    StoreError::Unavailable {
        operation,
        detail: "the answer was lost (the request took effect)".into(),
    }
}

impl ParameterStore for MemoryParameters {
    async fn get(&self, wanted: &[Wanted]) -> Result<Vec<Found>, StoreError> {
        let mut inner = self.lock();
        inner.reads += 1;
        Ok(wanted
            .iter()
            .filter_map(|w| {
                let versions = inner.parameters.get(&w.name)?;
                let index = match w.version {
                    None => versions.len().checked_sub(1)?,
                    Some(v) => usize::try_from(v.checked_sub(1)?).ok()?,
                };
                versions.get(index).map(|v| found(&w.name, index + 1, v))
            })
            .collect())
    }

    async fn get_by_path(&self, path: &str) -> Result<Vec<Found>, StoreError> {
        let mut inner = self.lock();
        inner.reads += 1;
        Ok(inner
            .parameters
            .iter()
            .filter(|(name, _)| name.starts_with(path))
            .filter_map(|(name, versions)| versions.last().map(|v| found(name, versions.len(), v)))
            .collect())
    }

    async fn put(
        &self,
        name: &str,
        value: &str,
        _kind: ParameterKind,
        overwrite: bool,
        start_by: Option<tokio::time::Instant>,
    ) -> Result<Version, StoreError> {
        let started = match &self.write_pacer {
            Some(pacer) => pacer.ready_by(start_by).await,
            None => start_by.is_none_or(|by| tokio::time::Instant::now() <= by),
        };
        if !started {
            return Err(StoreError::NoTime {
                operation: "PutParameter",
                name: name.to_owned(),
            });
        }
        self.lock().write_times.push(tokio::time::Instant::now());
        if !overwrite && self.version(name).is_some() {
            return Err(StoreError::Refused {
                operation: "PutParameter",
                name: name.to_owned(),
                detail: "ParameterAlreadyExists".into(),
            });
        }
        let version = self.commit(name, value);
        if self.answer_lost("PutParameter", name) {
            return Err(lost("PutParameter"));
        }
        Ok(version)
    }

    async fn delete(&self, name: &str) -> Result<bool, StoreError> {
        let existed = self.lock().parameters.remove(name).is_some();
        if self.answer_lost("DeleteParameter", name) {
            return Err(lost("DeleteParameter"));
        }
        Ok(existed)
    }
}
