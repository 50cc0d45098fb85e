//! Framework-agnostic core of typed, server-side web sessions.
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
