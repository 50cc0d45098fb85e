//! [`SessionAccess`]: a session read and written by key.

use serde::{de::DeserializeOwned, Serialize};

use super::SchemaError;

/// A session you can read and write by key, with JSON values: what typed schemas work
/// over.
///
/// Methods take `&self`, as session handles in web frameworks share the session between
/// extractors through interior mutability. Implemented here for [`SessionMap`]
/// (in-memory, for tests); `session-actix` implements it for `actix_session::Session`.
///
/// [`SessionMap`]: super::SessionMap
pub trait SessionAccess {
    /// Reads and decodes the value of `key`; `Ok(None)` if the key is absent.
    ///
    /// # Errors
    ///
    /// [`SchemaError::Decode`] naming the key if the stored value does not decode as `T`.
    fn get_value<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SchemaError>;

    /// Encodes `value` as JSON and stores it under `key`.
    ///
    /// # Errors
    ///
    /// [`SchemaError::Encode`] naming the key if `value` cannot be encoded.
    fn set_value<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), SchemaError>;

    /// Removes `key`; removing an absent key does nothing.
    fn remove_value(&self, key: &str);
}

impl<A: SessionAccess + ?Sized> SessionAccess for &A {
    fn get_value<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SchemaError> {
        (**self).get_value(key)
    }

    fn set_value<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), SchemaError> {
        (**self).set_value(key, value)
    }

    fn remove_value(&self, key: &str) {
        (**self).remove_value(key);
    }
}
