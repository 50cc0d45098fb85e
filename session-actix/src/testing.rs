//! Helpers for testing your own handlers (feature `testing`, in `[dev-dependencies]`).
//!
//! [`TestSessions`] is a ready layer for `#[actix_web::test]` tests: sessions in a
//! [`MemoryStore`], a fixed key, `Secure` off, and a [`ManualClock`] that only moves when
//! the test moves it. It starts a request with a session that already holds a given state,
//! and reads the state a response left behind.
//!
//! ```
//! use actix_web::{test, web, App};
//! use session_actix::{session, testing::TestSessions, Typed};
//!
//! #[session]
//! #[derive(Default)]
//! struct Cart {
//!     #[session(default)]
//!     items: Vec<String>,
//! }
//!
//! async fn add(mut cart: Typed<Cart>, item: web::Path<String>) -> String {
//!     cart.items.push(item.into_inner());
//!     cart.items.len().to_string()
//! }
//!
//! # #[actix_web::main]
//! # async fn main() {
//! let sessions = TestSessions::new();
//! let app = test::init_service(
//!     App::new().wrap(sessions.layer()).route("/add/{item}", web::post().to(add)),
//! )
//! .await;
//!
//! // A visitor who already has one item in the cart.
//! let cookie = sessions.cookie_with(&Cart { items: vec!["tea".into()] }).await;
//! let req = test::TestRequest::post().uri("/add/milk").cookie(cookie).to_request();
//! let res = test::call_service(&app, req).await;
//! assert!(res.status().is_success());
//!
//! let cart: Cart = sessions.state(&res).await.expect("a live session");
//! assert_eq!(cart.items, ["tea", "milk"]);
//! # }
//! ```
#![allow(clippy::expect_used)] // test helpers fail loudly by design

use actix_web::{
    cookie::{Cookie, Key},
    dev::ServiceResponse,
    test::TestRequest,
    HttpRequest,
};
use serde::Serialize;
use session_core::{
    schema::SessionMap, store::MemoryStore, Clock as _, ManualClock, Metadata, Record,
    SessionSchema, SessionToken, Store as _,
};

use crate::{client, ConfigError, SessionLayer, SessionLayerBuilder};

/// The fixed cookie key of [`TestSessions`]: cookies are reproducible between runs. Never
/// use it outside tests.
pub const TEST_KEY: [u8; 64] = *b"session-actix test key: never use this outside tests. 0123456789";

/// A session layer for handler tests, and the means to set up and inspect its sessions.
///
/// Defaults: a [`MemoryStore`], the key [`TEST_KEY`], `Secure` off (test requests are
/// plain HTTP), everything else as in production (binding, timeouts, rotation), all on a
/// [`ManualClock`] ([`clock`](Self::clock)) so that time passes only when the test says so.
/// Clone it freely: clones share the store and the clock. The [module documentation](self)
/// has a complete handler test.
#[derive(Debug, Clone)]
pub struct TestSessions {
    layer: SessionLayer<MemoryStore>,
    store: MemoryStore,
    clock: ManualClock,
}

impl Default for TestSessions {
    fn default() -> Self {
        Self::new()
    }
}

impl TestSessions {
    /// The test layer with the defaults above.
    #[must_use]
    pub fn new() -> Self {
        match Self::with(|builder| builder) {
            Ok(sessions) => sessions,
            Err(err) => unreachable!("the test defaults are valid: {err}"),
        }
    }

    /// The test layer with settings of your own on top of the defaults, e.g.
    /// `TestSessions::with(|b| b.idle_timeout(Duration::from_secs(60)))`.
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] of [`SessionLayerBuilder::build`].
    pub fn with(
        configure: impl FnOnce(SessionLayerBuilder<MemoryStore>) -> SessionLayerBuilder<MemoryStore>,
    ) -> Result<Self, ConfigError> {
        let clock = ManualClock::starting_now();
        let store = MemoryStore::builder().clock(clock.clone()).build();
        let builder = SessionLayer::builder(store.clone(), Key::from(&TEST_KEY))
            .cookie_secure(false)
            .clock(clock.clone());
        Ok(Self {
            layer: configure(builder).build()?,
            store,
            clock,
        })
    }

    /// The layer, for `App::wrap`.
    #[must_use]
    pub fn layer(&self) -> SessionLayer<MemoryStore> {
        self.layer.clone()
    }

    /// The store the layer keeps sessions in.
    #[must_use]
    pub fn store(&self) -> &MemoryStore {
        &self.store
    }

    /// The clock of the layer and the store: [`ManualClock::advance`] it to test idle
    /// timeouts and id rotation.
    #[must_use]
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// The cookie of a new session that holds `state`, for `TestRequest::cookie`.
    ///
    /// The session is bound (when binding is on) to a client like `TestRequest::default()`:
    /// no peer address, no User-Agent. For requests with either, use
    /// [`cookie_for`](Self::cookie_for).
    ///
    /// # Panics
    ///
    /// If `state` does not serialize.
    pub async fn cookie_with<T: SessionSchema>(&self, state: &T) -> Cookie<'static> {
        self.cookie_for(&TestRequest::default().to_http_request(), state)
            .await
    }

    /// [`cookie_with`](Self::cookie_with) for a session bound to the client of `request`
    /// (its peer address and User-Agent, as the layer's binding sees them).
    ///
    /// # Panics
    ///
    /// If `state` does not serialize.
    pub async fn cookie_for<T: SessionSchema>(
        &self,
        request: &HttpRequest,
        state: &T,
    ) -> Cookie<'static> {
        let entries = state.entries().expect("the state serializes");
        self.create(request, entries).await
    }

    /// The cookie of a new session that holds `entries` (key, value), as a handler's
    /// `Session::insert` would have left them; bound like [`cookie_with`](Self::cookie_with).
    ///
    /// # Panics
    ///
    /// If a value does not serialize.
    pub async fn cookie_with_entries<K, V>(
        &self,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Cookie<'static>
    where
        K: Into<String>,
        V: Serialize,
    {
        let entries = entries.into_iter().map(|(key, value)| {
            let raw = serde_json::value::to_raw_value(&value).expect("the value serializes");
            (key, raw)
        });
        self.create(&TestRequest::default().to_http_request(), entries)
            .await
    }

    async fn create<K: Into<String>>(
        &self,
        request: &HttpRequest,
        entries: impl IntoIterator<Item = (K, Box<serde_json::value::RawValue>)>,
    ) -> Cookie<'static> {
        let settings = &self.layer.shared().settings;
        let now = self.clock.now();
        let mut record = Record::new(now, now + settings.policy.idle_timeout);
        record.meta = Metadata::new_session(client::fingerprint(request, settings), now);
        record.state = entries
            .into_iter()
            .map(|(key, value)| (key.into(), value))
            .collect();
        let token = SessionToken::generate().expect("the random source");
        let created = self
            .store
            .create(&token.hash(), &record)
            .await
            .expect("the memory store answers");
        assert!(created, "a fresh 256-bit id never collides");
        let value = settings
            .sealer
            .seal(&token.to_bytes())
            .expect("the random source");
        Cookie::build(settings.cookie_name.clone(), value)
            .path("/")
            .finish()
    }

    /// The session cookie a client holds after `response`: the one the response set, else
    /// the one its request carried. `None` if there is none, or the response removed it.
    #[must_use]
    pub fn cookie<B>(&self, response: &ServiceResponse<B>) -> Option<Cookie<'static>> {
        let name = &self.layer.shared().settings.cookie_name;
        match response.response().cookies().find(|c| c.name() == name) {
            Some(set) if set.value().is_empty() => None,
            Some(set) => Some(set.into_owned()),
            None => response.request().cookie(name),
        }
    }

    /// The record of the session the client holds after `response` (see
    /// [`cookie`](Self::cookie)): `None` if it has no session, or its session ended.
    ///
    /// # Panics
    ///
    /// If the cookie does not open with the test key.
    pub async fn record<B>(&self, response: &ServiceResponse<B>) -> Option<Record> {
        let cookie = self.cookie(response)?;
        let token = self
            .layer
            .shared()
            .settings
            .sealer
            .open(cookie.value())
            .and_then(|payload| Some(SessionToken::from_bytes(&payload.try_into().ok()?)))
            .expect("the session cookie opens with the test key");
        self.store
            .load(&token.hash())
            .await
            .expect("the memory store answers")
    }

    /// The typed state of the session the client holds after `response`, as
    /// [`SessionSchema::load`] reads it: `None` if the client has no live session, or a
    /// field without a default is absent.
    ///
    /// # Panics
    ///
    /// If the stored state does not decode as `T`, or the cookie does not open with the
    /// test key.
    pub async fn state<T: SessionSchema, B>(&self, response: &ServiceResponse<B>) -> Option<T> {
        let record = self.record(response).await?;
        let session = SessionMap::new();
        for (key, value) in &record.state {
            session.insert_json(key.clone(), value.get());
        }
        T::load(&session).expect("the stored state decodes as the schema")
    }
}
