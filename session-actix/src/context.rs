//! The per-request context shared by the layer's parts.
//!
//! actix-session's `SessionStore` sees only a session key; binding and rotation need the
//! request. The outer part of the layer computes what it needs, and runs the rest of the
//! request inside a Tokio task-local scope holding this context, where the store bridge
//! and the checks find it.

use std::{
    cell::{Cell, RefCell},
    rc::Rc,
};

use session_core::{Record, SessionToken, TokenHash};

tokio::task_local! {
    static CONTEXT: Rc<RequestContext>;
}

/// What one request's layer parts tell each other.
#[derive(Debug, Default)]
pub(crate) struct RequestContext {
    /// What the store bridge loaded, if it loaded a session.
    pub(crate) loaded: RefCell<Option<Loaded>>,
    /// Set by the checks: rotate the id when saving.
    pub(crate) rotate: Cell<bool>,
    /// Set by the checks: the request continues on a fresh session under a new id; the
    /// loaded record is deleted (`Some(true)`) or left as it is (`Some(false)`, e.g. a
    /// binding mismatch, so a stolen cookie cannot log its owner out).
    pub(crate) detach: Cell<Option<bool>>,
    /// Flash messages are on for this layer.
    pub(crate) flash_enabled: Cell<bool>,
    /// Flash messages taken from the session when this request started.
    pub(crate) incoming_flash: RefCell<Vec<crate::flash::FlashMessage>>,
}

/// A session the bridge loaded.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The record's key (the successor's, when the request came through a grace forward).
    pub(crate) key: TokenHash,
    /// The token the client should hold for that record.
    pub(crate) token: SessionToken,
    /// Whether the client presented a rotated-away id still in its grace window.
    pub(crate) forwarded: bool,
    /// The record as loaded: the base of the request's changes and of the version check
    /// when they are saved.
    pub(crate) record: Record,
}

impl RequestContext {
    /// Runs `future` with `self` as the current request's context.
    pub(crate) async fn scope<F: std::future::Future>(self: Rc<Self>, future: F) -> F::Output {
        CONTEXT.scope(self, future).await
    }

    /// The current request's context, if the layer set one.
    pub(crate) fn current() -> Option<Rc<Self>> {
        CONTEXT.try_with(Rc::clone).ok()
    }

    /// Whether the loaded session came through a grace forward.
    pub(crate) fn forwarded(&self) -> bool {
        self.loaded.borrow().as_ref().is_some_and(|l| l.forwarded)
    }
}
