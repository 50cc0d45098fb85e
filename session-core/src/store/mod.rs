//! The [`Store`] trait and its implementations, one backend per file, each behind its cargo
//! feature.

mod error;
mod interface;

#[cfg(feature = "memory")]
mod memory;

pub use error::{BoxError, StoreError};
pub use interface::{Cache, Store};

#[cfg(feature = "memory")]
pub use memory::{MemoryStore, MemoryStoreBuilder, DEFAULT_MAX_BYTES};
