//! [`Typed`]: a `#[session]` struct as a handler argument, written back when changed; and
//! [`SessionAccess`] for actix-session's `Session`.

use std::{
    future::{ready, Ready},
    ops::{Deref, DerefMut},
};

use actix_session::{Session, SessionExt};
use actix_web::{dev::Payload, error, FromRequest, HttpRequest};
use serde::{de::DeserializeOwned, Serialize};
use session_core::schema::{SchemaError, SessionAccess, SessionSchema};

use crate::frame::Frame;

/// actix-session's `Session` as a [`SessionAccess`], for the typed views `#[session]`
/// generates (`MastermindState::view(&accessor)`). An extractor; derefs to the `Session`.
#[derive(Clone)]
pub struct SessionAccessor(pub Session);

/// The earlier name of [`SessionAccessor`].
#[deprecated(since = "0.1.0", note = "renamed to `SessionAccessor`")]
pub type TypedSession = SessionAccessor;

impl std::fmt::Debug for SessionAccessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionAccessor(..)")
    }
}

impl Deref for SessionAccessor {
    type Target = Session;

    fn deref(&self) -> &Session {
        &self.0
    }
}

impl FromRequest for SessionAccessor {
    type Error = error::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // The frame's borrow of the extensions ends before `get_session`, which inserts
        // the request's `Session` there on first use.
        let installed = Frame::of(req).map(drop);
        ready(installed.map(|()| Self(req.get_session())))
    }
}

impl SessionAccess for SessionAccessor {
    fn get_value<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SchemaError> {
        self.0.get(key).map_err(|err| SchemaError::Decode {
            key: key.to_owned(),
            source: Box::new(err),
        })
    }

    fn set_value<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), SchemaError> {
        self.0
            .insert(key, value)
            .map_err(|err| SchemaError::Encode {
                key: key.to_owned(),
                source: Box::new(err),
            })
    }

    fn remove_value(&self, key: &str) {
        // `remove` marks the session changed even for an absent key: avoid a write.
        if self.0.contains_key(key) {
            self.0.remove(key);
        }
    }
}

/// A `#[session]` struct, loaded from the request's session.
///
/// Fields absent from the session (or no longer decoding) start from `T::default()` and
/// their `#[session(default)]`. When the handler is done (the value is dropped), each field
/// whose JSON changed is written back to its own key; nothing is written when nothing
/// changed, so reading costs no store write. Call [`commit`](Self::commit) to write back
/// earlier, or to see encoding errors.
///
/// ```
/// use session_actix::Typed;
/// use session_core::session;
///
/// #[session]
/// #[derive(Default)]
/// struct Counter {
///     #[session(default)]
///     clicks: u64,
/// }
///
/// async fn click(mut counter: Typed<Counter>) -> String {
///     counter.clicks += 1;
///     format!("{} clicks", counter.clicks)
/// }
/// # let _ = actix_web::web::post().to(click);
/// ```
pub struct Typed<T: SessionSchema> {
    value: T,
    /// JSON of each field as loaded.
    loaded: Vec<(&'static str, String)>,
    session: SessionAccessor,
}

impl<T: SessionSchema> Typed<T> {
    /// The keys whose values changed since they were loaded (or last committed): what
    /// dropping the value (or [`commit`](Self::commit)) will write.
    ///
    /// # Errors
    ///
    /// [`SchemaError::Encode`] naming the field that could not be encoded.
    pub fn changed_keys(&self) -> Result<Vec<&'static str>, SchemaError> {
        Ok(self
            .value
            .entries()?
            .into_iter()
            .filter(|(key, json)| !self.is_unchanged(key, json.get()))
            .map(|(key, _)| key)
            .collect())
    }

    fn is_unchanged(&self, key: &str, json: &str) -> bool {
        self.loaded
            .iter()
            .any(|(k, loaded)| *k == key && loaded == json)
    }

    /// Writes changed fields back now.
    ///
    /// # Errors
    ///
    /// [`SchemaError::Encode`] naming the field that could not be encoded.
    pub fn commit(&mut self) -> Result<(), SchemaError> {
        for (key, json) in self.value.entries()? {
            if !self.is_unchanged(key, json.get()) {
                self.session.set_value(key, &json)?;
                match self.loaded.iter_mut().find(|(k, _)| *k == key) {
                    Some(entry) => entry.1 = json.get().to_owned(),
                    None => self.loaded.push((key, json.get().to_owned())),
                }
            }
        }
        Ok(())
    }
}

impl<T: SessionSchema> Deref for Typed<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: SessionSchema> DerefMut for Typed<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T: SessionSchema> Drop for Typed<T> {
    fn drop(&mut self) {
        if let Err(err) = self.commit() {
            tracing::error!(error = %err, "typed session value could not be written back");
        }
    }
}

impl<T: SessionSchema + Default> FromRequest for Typed<T> {
    type Error = error::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        if let Err(err) = Frame::of(req) {
            return ready(Err(err));
        }
        let session = SessionAccessor(req.get_session());
        let value = T::load_or_default(&session);
        let loaded = match value.entries() {
            Ok(entries) => entries
                .into_iter()
                .map(|(key, json)| (key, json.get().to_owned()))
                .collect(),
            Err(err) => return ready(Err(error::ErrorInternalServerError(err))),
        };
        ready(Ok(Self {
            value,
            loaded,
            session,
        }))
    }
}
