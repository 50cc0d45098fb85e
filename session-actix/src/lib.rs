//! actix-web middleware for typed, server-side sessions.
//!
//! Mount one [`SessionLayer`]: handlers keep using `actix_session::Session` (so code and
//! crates written for actix-session keep working), while the layer — its own middleware,
//! not actix-session's `SessionMiddleware` — keeps the data in a session-core store (in
//! production a Redis cache in front of PostgreSQL, embedded an in-process cache in front
//! of SQLite) and adds what the original App Engine utility offered and a modern
//! application needs: binding to the client's IP and/or User-Agent, periodic id rotation
//! with a grace window, idle and absolute timeouts, cleanup of stale sessions, flash
//! messages, and typed access through `#[session]` structs.
//!
//! # Quick start
//!
//! ```
//! use actix_web::{cookie::Key, test, web, App};
//! use session_actix::{SessionLayer, Typed};
//! use session_core::{session, store::{MemoryStore, SqliteStore, TieredStore}};
//!
//! #[session]
//! #[derive(Default)]
//! struct Visits {
//!     #[session(default)]
//!     count: u32,
//! }
//!
//! async fn index(mut visits: Typed<Visits>) -> String {
//!     visits.count += 1;
//!     format!("visit number {}", visits.count)
//! }
//!
//! # #[actix_web::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = TieredStore::new(MemoryStore::new(), SqliteStore::connect("sqlite::memory:").await?);
//! let layer = SessionLayer::builder(store, Key::generate())
//!     .idle_timeout(std::time::Duration::from_secs(30 * 60))
//!     .build()?;
//!
//! // In a real server: HttpServer::new(move || App::new().wrap(layer.clone())...)
//! let app = test::init_service(App::new().wrap(layer).route("/", web::get().to(index))).await;
//! let res = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
//! let cookie = res.response().cookies().next().expect("session cookie").into_owned();
//! assert!(cookie.http_only().unwrap_or(false) && cookie.secure().unwrap_or(false));
//! assert_eq!(test::read_body(res).await, "visit number 1");
//!
//! let again = test::TestRequest::get().uri("/").cookie(cookie).to_request();
//! assert_eq!(test::call_and_read_body(&app, again).await, "visit number 2");
//! # Ok(())
//! # }
//! ```
//!
//! # Choosing storage
//!
//! Any [`session_core::Store`]: see the `session_core` docs. [`SessionLayer::cookie_only`]
//! keeps the data in the (encrypted) cookie instead.
//!
//! # Settings
//!
//! [`SessionLayerBuilder`] lists every setting with its default and the original utility's
//! name (`cookie_name`, `session_expire_time`, `clean_check_percent`, `integrate_flash`,
//! `check_ip`, `check_user_agent`, `set_cookie_expires`, `session_token_ttl`).
//!
//! # What happens on each request
//!
//! One request through the layer reads top to bottom in `SessionMiddleware::call`
//! (`layer.rs`), one module per stage; the decisions are session-core's
//! [`lifecycle`](session_core::lifecycle), whose docs hold the table of every case.
//!
//! - The session cookie is found among the request's cookies and opened (AES-256-GCM
//!   with a key prepared once; the format is documented and versioned, see "Cookie
//!   format"). A value that does not authenticate is a new, empty session and never
//!   reaches a store: a flood of forged cookies costs no store call.
//! - An unknown id is never adopted: a new session always gets a new id (no fixation).
//! - A session whose binding (HMAC of IP prefix / User-Agent) does not match, or that
//!   passed its idle or absolute timeout, is replaced by a fresh, empty session under a new
//!   id; the old state is not exposed. On a binding mismatch the old record is left alone,
//!   so presenting a stolen cookie cannot end its owner's session.
//! - The handler's changes are found by comparing its `Session` with what it was given;
//!   only the keys it changed are written, on top of whatever other requests wrote
//!   meanwhile. An unchanged session costs one store read and no write; its expiry is
//!   refreshed at most once per quarter of the idle timeout.
//! - Every `token_rotation` period the id changes; the old id forwards to the new one for
//!   `rotation_grace`, then stops working. `Session::renew()` (do it at login) changes the
//!   id at once, without grace. `Session::purge()` (logout) ends the whole rotation family:
//!   the id presented and the successors a concurrent rotation gave it.
//! - The cookie is set only when its id or its expiry changes. A response that sets it
//!   carries `Cache-Control: no-store` and `Vary: Cookie`; one to a request that carried
//!   it, `Cache-Control: private` and `Vary: Cookie`.
//! - A store failure answers with an opaque `500` (`session error`); details go to
//!   `tracing`. Session ids never appear in logs or error bodies.
//!
//! # `Session` under this layer
//!
//! `get`, `insert`, `update`, `remove`, `clear`, `purge`, `renew`, `entries` and
//! `contains_key` behave as documented by actix-session. `status()` reports `Purged` and
//! `Renewed` as there; otherwise it is `Changed` for a session that was loaded with data
//! (the layer hands the data over through `insert`) and `Unchanged` for an empty one: the
//! layer itself decides what to write by comparing, not from `status()`.
//!
//! # Cookie format
//!
//! Version 1: `"1"` then base64url (no padding) of a 12-byte nonce, the AES-256-GCM
//! ciphertext of the payload and its 16-byte tag. The additional data is
//! `session-actix/1 id <cookie name>` for a server-side session, whose payload is its
//! id's 32 bytes, and `session-actix/1 data <cookie name>` for a cookie-only session,
//! whose payload is 16 hex digits of its expiry (Unix milliseconds) and the record's JSON
//! ([`session_core::Record::encode`]). With `CookieContentSecurity::Signed` the value is
//! `"1"`, base64url of the payload, `.`, and base64url of its HMAC-SHA256 (over the same
//! additional data, then the payload). The keys are HKDF-SHA256 sub-keys of the layer's key.
//!
//! # Reserved keys
//!
//! Pending flash messages live in the stored state under keys starting `__flash.`, one per
//! message ([`FLASH_KEY`]); the handler's `Session` never shows them, and [`Flash`]
//! manages them. Do not write them.
//! The layer's own bookkeeping (created, id-issued time, binding HMAC, rotation forwards,
//! ended markers) is the record's [`Metadata`](session_core::Metadata), out of the
//! state's way.
//!
//! # Operating it
//!
//! Metrics go through the `metrics` facade; [`session_core::telemetry`] lists every name.
//! Each request runs in a `session` tracing span with the session's short hash. Key
//! rotation: [`SessionLayerBuilder::previous_keys`]. Likely thefts:
//! [`SessionLayerBuilder::theft_response`].
//!
//! # Expired sessions
//!
//! `clean_check_percent` runs a bounded cleanup on a share of writes. For a background
//! task instead (or as well), call [`session_core::store::spawn_cleanup`] on the store at
//! start-up.
#![forbid(unsafe_code)]
// Feature badges on docs.rs ("Available on crate feature redis only").
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

mod builder;
mod client;
mod codec;
mod collect;
mod config_error;
mod error;
mod flash;
mod flash_message;
mod frame;
mod handoff;
mod info;
mod keys;
mod layer;
mod load;
mod observe;
mod persist;
mod request_cookie;
mod response;
mod seal;
mod settings;
mod shared;
mod storage;
#[cfg(feature = "testing")]
pub mod testing;
mod typed;
mod users;

pub use builder::{SessionLayerBuilder, DEFAULT_MAX_RECORD_BYTES, DEFAULT_MAX_SESSIONS_PER_USER};
pub use codec::CookieCodec;
pub use config_error::ConfigError;
pub use flash::{Flash, FLASH_KEY};
pub use flash_message::{FlashMessage, Level};
pub use info::{CookieInfo, SessionInfo, SessionStart, ShortId};
pub use layer::{SessionLayer, SessionMiddleware};
pub use seal::SealError;
pub use session_core::client_ip::ForwardedHeader;
pub use session_core::lifecycle::TheftResponse;
pub use session_core::lifecycle::UserSession;
pub use storage::CookieOnly;
#[allow(deprecated)]
pub use typed::TypedSession;
pub use typed::{SessionAccessor, Typed};
pub use users::UserSessions;

pub use actix_session::{config::CookieContentSecurity, Session, SessionExt};
/// The framework-agnostic core, re-exported whole: records, tokens, the schema traits.
/// The `#[session]` attribute finds it here when `session-actix` is an application's only
/// session dependency.
pub use session_core;
/// The `#[session]` attribute, re-exported.
pub use session_core::session;
/// The stores (`MemoryStore`, `TieredStore`, and with their features `RedisStore`,
/// `PostgresStore`, `SqliteStore`), re-exported from session-core.
#[doc(inline)]
pub use session_core::store;
pub use session_core::{
    Record, SchemaError, SessionAccess, SessionSchema, SessionToken, Store, StoreError,
};
