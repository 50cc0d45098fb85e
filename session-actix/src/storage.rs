//! Where a layer keeps sessions: a session-core [`Store`], or the cookie itself.

use std::sync::Arc;

use session_core::{lifecycle::Sessions, Record, Store, StoreError, TokenHash};

/// Where a builder's sessions go.
pub(crate) enum Backend<S> {
    /// Server-side, in a session-core store.
    Server(Arc<S>),
    /// In the (sealed) cookie itself.
    Cookie,
}

impl<S> Backend<S> {
    pub(crate) fn is_server_side(&self) -> bool {
        matches!(self, Self::Server(_))
    }
}

/// Where a built layer's sessions go.
#[allow(clippy::large_enum_variant)] // built once per layer and never moved
pub(crate) enum Storage<S> {
    /// Server-side: loads and plans go through [`Sessions`].
    Server(Sessions<S>),
    /// In the cookie.
    Cookie,
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

    async fn touch(
        &self,
        _: &TokenHash,
        _: u64,
        _: std::time::SystemTime,
    ) -> Result<bool, StoreError> {
        match *self {}
    }

    async fn delete(&self, _: &TokenHash) -> Result<(), StoreError> {
        match *self {}
    }

    async fn cleanup(&self, _: usize) -> Result<usize, StoreError> {
        match *self {}
    }
}
