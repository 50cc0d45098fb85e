//! Which storage a layer uses: a session-core [`Store`] through the bridge, or
//! actix-session's own cookie store.

use std::{collections::HashMap, sync::Arc};

use actix_session::storage::{
    CookieSessionStore, LoadError, SaveError, SessionKey, SessionStore, UpdateError,
};
use actix_web::cookie::time::Duration;
use session_core::{Record, Store, StoreError, TokenHash};

use crate::{bridge::StoreBridge, config::Settings};

/// Where a layer keeps sessions.
pub(crate) enum Backend<S> {
    /// Server-side, in a session-core store.
    Server(Arc<S>),
    /// In the cookie itself (actix-session's `CookieSessionStore`).
    Cookie,
}

impl<S> Clone for Backend<S> {
    fn clone(&self) -> Self {
        match self {
            Self::Server(store) => Self::Server(Arc::clone(store)),
            Self::Cookie => Self::Cookie,
        }
    }
}

impl<S> Backend<S> {
    pub(crate) fn is_server_side(&self) -> bool {
        matches!(self, Self::Server(_))
    }
}

impl<S: Store> Backend<S> {
    pub(crate) fn actix_store(&self, settings: &Arc<Settings>) -> ActixStore<S> {
        match self {
            Self::Server(store) => ActixStore(Inner::Server(StoreBridge::new(
                Arc::clone(store),
                Arc::clone(settings),
            ))),
            Self::Cookie => ActixStore(Inner::Cookie(CookieSessionStore::default())),
        }
    }
}

/// The `SessionStore` handed to actix-session's middleware (an implementation detail).
#[doc(hidden)]
pub struct ActixStore<S>(Inner<S>);

enum Inner<S> {
    Server(StoreBridge<S>),
    Cookie(CookieSessionStore),
}

type State = HashMap<String, String>;

impl<S: Store> SessionStore for ActixStore<S> {
    async fn load(&self, key: &SessionKey) -> Result<Option<State>, LoadError> {
        match &self.0 {
            Inner::Server(bridge) => bridge.load(key).await,
            Inner::Cookie(cookie) => cookie.load(key).await,
        }
    }

    async fn save(&self, state: State, ttl: &Duration) -> Result<SessionKey, SaveError> {
        match &self.0 {
            Inner::Server(bridge) => bridge.save(state, ttl).await,
            Inner::Cookie(cookie) => cookie.save(state, ttl).await,
        }
    }

    async fn update(
        &self,
        key: SessionKey,
        state: State,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        match &self.0 {
            Inner::Server(bridge) => bridge.update(key, state, ttl).await,
            Inner::Cookie(cookie) => cookie.update(key, state, ttl).await,
        }
    }

    async fn update_ttl(&self, key: &SessionKey, ttl: &Duration) -> Result<(), anyhow::Error> {
        match &self.0 {
            Inner::Server(bridge) => bridge.update_ttl(key, ttl).await,
            Inner::Cookie(cookie) => cookie.update_ttl(key, ttl).await,
        }
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), anyhow::Error> {
        match &self.0 {
            Inner::Server(bridge) => bridge.delete(key).await,
            Inner::Cookie(cookie) => cookie.delete(key).await,
        }
    }
}

/// The store type of a cookie-only layer ([`SessionLayer::cookie_only`]): it has no values,
/// so no server-side store is ever used.
///
/// [`SessionLayer::cookie_only`]: crate::SessionLayer::cookie_only
#[derive(Debug, Clone, Copy)]
pub enum CookieOnly {}

impl Store for CookieOnly {
    async fn load(&self, _: &TokenHash) -> Result<Option<Record>, StoreError> {
        match *self {}
    }

    async fn create(&self, _: &TokenHash, _: &Record) -> Result<bool, StoreError> {
        match *self {}
    }

    async fn update(&self, _: &TokenHash, _: u64, _: &Record) -> Result<bool, StoreError> {
        match *self {}
    }

    async fn touch(&self, _: &TokenHash, _: std::time::SystemTime) -> Result<bool, StoreError> {
        match *self {}
    }

    async fn delete(&self, _: &TokenHash) -> Result<(), StoreError> {
        match *self {}
    }

    async fn cleanup(&self, _: usize) -> Result<usize, StoreError> {
        match *self {}
    }
}
