//! Framework-agnostic core of typed, server-side web sessions.
//!
//! The browser holds only a cookie with an unguessable [`SessionToken`]; the session's data
//! lives on the server, in a [`Store`]. This crate knows nothing of any web framework: the
//! `session-actix` crate puts it behind an actix-web middleware, and `session-macros` gives
//! typed access to the data.
//!
//! # Quick start
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use session_core::{
//!     store::{MemoryStore, SqliteStore, TieredStore},
//!     Record, SessionToken, Store,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The embedded default: an in-process cache in front of SQLite.
//! let store = TieredStore::new(MemoryStore::new(), SqliteStore::connect("sqlite::memory:").await?);
//!
//! // A new session: the token goes into the cookie, its hash is the store key.
//! let token = SessionToken::generate()?;
//! let now = SystemTime::now();
//! let mut record = Record::new(now, now + Duration::from_secs(30 * 60));
//! record.insert("user_id", &42)?;
//! assert!(store.create(&token.hash(), &record).await?);
//!
//! // A later request presents the cookie.
//! let presented = SessionToken::try_from(token.as_str())?;
//! let loaded = store.load(&presented.hash()).await?.expect("live session");
//! assert_eq!(loaded.get::<u32>("user_id")?, Some(42));
//! # Ok(())
//! # }
//! ```
//!
//! # Choosing storage
//!
//! | store | feature | use it for |
//! |-------|---------|------------|
//! | [`MemoryStore`](store::MemoryStore) | `memory` (default) | tests, one process, the cache tier |
//! | [`RedisStore`](store::RedisStore) | `redis` | the shared cache tier |
//! | [`SqliteStore`](store::SqliteStore) | `sqlite` (default) | the embedded durable tier |
//! | [`PostgresStore`](store::PostgresStore) | `postgres` | the durable tier in production |
//! | [`TieredStore`](store::TieredStore) | always | a cache in front of a durable store |
//!
//! As in the App Engine utility this library descends from, production setups put a cache
//! in front of a database: every write goes to both (database first), a read tries the
//! cache first, falls back to the database, and puts what it found back into the cache.
//! See [`TieredStore`](store::TieredStore) for the exact rules, including what happens when
//! either tier is down.
//!
//! # Security
//!
//! - Tokens are 256 bits from the operating system's CSPRNG (ring).
//! - Stores key records by the token's SHA-256 ([`TokenHash`]): a leaked Redis dump or
//!   database table cannot be replayed as cookies.
//! - Tokens from clients are validated (length, alphabet) before any store sees them.
//!
//! # Expired sessions
//!
//! Every store honours expiry on read. Redis and the memory store drop expired records by
//! themselves; SQL tables are cleaned by [`CleanupPolicy`](store::CleanupPolicy) (the
//! original utility's `clean_check_percent`: a bounded cleanup on a share of writes) and/or
//! [`spawn_cleanup`](store::spawn_cleanup) (a background task).
//!
//! # Writing a custom store
//!
//! Implement [`Store`] (and [`Cache`] if it can be a cache tier), one backend command per
//! method, honouring the contract on the trait's documentation; then run the conformance
//! suite in `session-core/tests/common/conformance.rs` against it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod clock;
pub mod record;
pub mod store;
pub mod token;

pub use clock::{Clock, ManualClock, SystemClock};
pub use record::{Metadata, Record, State};
pub use store::{Cache, Store, StoreError};
pub use token::{InvalidToken, SessionToken, TokenHash};
