//! An in-memory store for unit tests. Integration tests use moto, never this.

use super::{Parameter, StoreError, TokenStore};
use std::collections::HashMap;
use std::sync::Mutex;

/// Parameters in a map, with versions counted like SSM's and every write recorded.
#[derive(Debug, Default)]
pub struct MemoryStore {
    values: Mutex<HashMap<String, (String, i64)>>,
    history: Mutex<HashMap<(String, i64), String>>,
    writes: Mutex<Vec<String>>,
}

impl MemoryStore {
    pub fn with(params: &[(&str, &str)]) -> Self {
        let store = MemoryStore::default();
        if let Ok(mut values) = store.values.lock() {
            for (name, value) in params {
                values.insert((*name).to_owned(), ((*value).to_owned(), 1));
            }
        }
        store
    }

    /// The current value of a parameter.
    pub fn value(&self, name: &str) -> Option<String> {
        self.values.lock().ok()?.get(name).map(|(v, _)| v.clone())
    }

    /// Names written so far, in order.
    pub fn writes(&self) -> Vec<String> {
        self.writes.lock().map(|w| w.clone()).unwrap_or_default()
    }
}

impl TokenStore for MemoryStore {
    async fn get_many(&self, names: &[&str]) -> Result<Vec<Option<Parameter>>, StoreError> {
        let values = self.values.lock().map_err(|_| poisoned("GetParameters"))?;
        Ok(names
            .iter()
            .map(|name| {
                values.get(*name).map(|(value, version)| Parameter {
                    name: (*name).to_owned(),
                    value: value.clone(),
                    version: *version,
                })
            })
            .collect())
    }

    async fn put_secret(&self, name: &str, value: &str) -> Result<i64, StoreError> {
        let mut values = self.values.lock().map_err(|_| poisoned("PutParameter"))?;
        let version = values.get(name).map_or(1, |(_, v)| v + 1);
        values.insert(name.to_owned(), (value.to_owned(), version));
        if let Ok(mut history) = self.history.lock() {
            history.insert((name.to_owned(), version), value.to_owned());
        }
        if let Ok(mut writes) = self.writes.lock() {
            writes.push(name.to_owned());
        }
        Ok(version)
    }

    async fn get_version(&self, name: &str, version: i64) -> Result<Option<Parameter>, StoreError> {
        let history = self.history.lock().map_err(|_| poisoned("GetParameter"))?;
        let current = self.values.lock().map_err(|_| poisoned("GetParameter"))?;
        let value = history
            .get(&(name.to_owned(), version))
            .cloned()
            .or_else(|| {
                current
                    .get(name)
                    .filter(|(_, v)| *v == version)
                    .map(|(value, _)| value.clone())
            });
        Ok(value.map(|value| Parameter {
            name: name.to_owned(),
            value,
            version,
        }))
    }

    async fn delete(&self, name: &str) -> Result<bool, StoreError> {
        self.remove(name)
    }
}

impl MemoryStore {
    fn remove(&self, name: &str) -> Result<bool, StoreError> {
        let mut values = self
            .values
            .lock()
            .map_err(|_| poisoned("DeleteParameter"))?;
        Ok(values.remove(name).is_some())
    }
}

fn poisoned(operation: &'static str) -> StoreError {
    StoreError::Unavailable {
        operation,
        detail: "memory store lock poisoned".into(),
    }
}
