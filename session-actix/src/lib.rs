//! actix-web middleware for typed, server-side sessions.
//!
//! Mount one [`SessionLayer`]: it runs actix-session's `SessionMiddleware` (existing
//! `actix_session::Session` handlers keep working unchanged) over a session-core store —
//! in production a Redis cache in front of PostgreSQL, embedded an in-process cache in
//! front of SQLite — and adds what the original App Engine utility offered and a modern
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
//! keeps the data in the cookie instead (actix-session's `CookieSessionStore`).
//!
//! # Settings
//!
//! [`SessionLayerBuilder`] lists every setting with its default and the original utility's
//! name (`cookie_name`, `session_expire_time`, `clean_check_percent`, `integrate_flash`,
//! `check_ip`, `check_user_agent`, `set_cookie_expires`, `session_token_ttl`).
//!
//! # What happens on each request
//!
//! - The cookie's value is decrypted, then checked to be a well-formed token before any
//!   store query; anything else is a new, empty session.
//! - An unknown id is never adopted: a new session always gets a new id (no fixation).
//! - A session whose binding (HMAC of IP prefix / User-Agent) does not match, or that
//!   passed its idle or absolute timeout, is replaced by a fresh, empty session under a new
//!   id; the old state is not exposed. On a binding mismatch the old record is left alone,
//!   so presenting a stolen cookie cannot end its owner's session.
//! - An unchanged session costs one store read and no write; its expiry is refreshed at
//!   most once per quarter of the idle timeout.
//! - Every `token_rotation` period the id changes; the old id forwards to the new one for
//!   `rotation_grace`, then stops working. `Session::renew()` (do it at login) changes the
//!   id at once, without grace.
//! - A response that sets the cookie carries `Cache-Control: no-store` and `Vary: Cookie`.
//! - A store failure answers with an opaque `500` (`session error`); details go to
//!   `tracing`. Session ids never appear in logs or error bodies.
//!
//! # Reserved keys
//!
//! The layer keeps its bookkeeping in the session state under `__session` (created,
//! refreshed and id-issued times, binding HMAC) and pending flash messages under
//! `__flash`. Do not write these keys.
//!
//! # Expired sessions
//!
//! `clean_check_percent` runs a bounded cleanup on a share of writes. For a background
//! task instead (or as well), call [`session_core::store::spawn_cleanup`] on the store at
//! start-up.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backend;
mod bridge;
mod checks;
mod config;
mod context;
mod flash;
mod guard;
mod layer;
mod meta;
mod typed;

pub use backend::CookieOnly;
pub use config::{ConfigError, SessionLayerBuilder, DEFAULT_MAX_RECORD_BYTES};
pub use flash::{Flash, FlashMessage, Level};
pub use layer::SessionLayer;
pub use meta::{FLASH_KEY, META_KEY};
pub use session_core::client_ip::ForwardedHeader;
pub use typed::{Typed, TypedSession};

pub use actix_session::{config::CookieContentSecurity, Session, SessionExt};
/// The `#[session]` attribute, re-exported.
pub use session_core::session;
