//! [`SessionMap`]: an in-memory [`SessionAccess`], for tests and examples.

use std::{
    collections::BTreeMap,
    sync::{Mutex, MutexGuard, PoisonError},
};

use serde::{de::DeserializeOwned, Serialize};

use super::{SchemaError, SessionAccess};

/// An in-memory session: keys to JSON text. For tests and for code that works on a session
/// outside a request.
///
/// ```
/// use session_core::schema::{SessionAccess, SessionMap};
///
/// let session = SessionMap::new();
/// session.set_value("count", &3)?;
/// assert_eq!(session.get_value::<u32>("count")?, Some(3));
/// assert_eq!(session.json("count").as_deref(), Some("3"));
/// # Ok::<(), session_core::schema::SchemaError>(())
/// ```
#[derive(Debug, Default)]
pub struct SessionMap {
    entries: Mutex<BTreeMap<String, String>>,
}

impl SessionMap {
    /// An empty session.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, String>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The JSON text stored under `key`.
    #[must_use]
    pub fn json(&self, key: &str) -> Option<String> {
        self.lock().get(key).cloned()
    }

    /// Stores raw JSON text (or anything else) under `key`, bypassing encoding: for tests of
    /// values that no longer decode.
    pub fn insert_json(&self, key: impl Into<String>, json: impl Into<String>) {
        self.lock().insert(key.into(), json.into());
    }

    /// All keys, sorted.
    #[must_use]
    pub fn keys(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }
}

impl SessionAccess for SessionMap {
    fn get_value<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SchemaError> {
        let entries = self.lock();
        entries
            .get(key)
            .map(|json| {
                serde_json::from_str(json).map_err(|err| SchemaError::Decode {
                    key: key.to_owned(),
                    source: err.into(),
                })
            })
            .transpose()
    }

    fn set_value<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), SchemaError> {
        let json = serde_json::to_string(value).map_err(|err| SchemaError::Encode {
            key: key.to_owned(),
            source: err.into(),
        })?;
        self.lock().insert(key.to_owned(), json);
        Ok(())
    }

    fn remove_value(&self, key: &str) {
        self.lock().remove(key);
    }
}
