//! The [`Store`] trait and its implementations, one backend per file, each behind its cargo
//! feature.

mod apply;
mod breaker;
mod cleanup;
mod counted;
mod dynamic;
mod error;
#[cfg(feature = "testing")]
mod faulty;
#[cfg(feature = "testing")]
mod held;
mod interface;
mod loaded_from;
mod queue;
mod tiered;

#[cfg(feature = "memory")]
mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlx")]
mod sql;

pub use error::{BoxError, StoreError};
/// Default number of records one cleanup run deletes.
pub const DEFAULT_CLEANUP_BATCH_SIZE: usize = 1_000;

pub use apply::{apply_changes, apply_changes_within, state_bytes, Applied, MAX_UPDATE_ATTEMPTS};
pub use breaker::CacheState;
pub use cleanup::{spawn_cleanup, CleanupPolicy, CleanupTask};
pub use counted::{Counted, OpCounts};
pub use dynamic::DynStore;
#[cfg(feature = "testing")]
pub use faulty::Faulty;
#[cfg(feature = "testing")]
pub use held::{Held, HoldAt};
pub use interface::{stale_seq, Cache, Durable, StaleMark, Store};
pub use loaded_from::LoadedFrom;
pub use queue::WriteQueue;
pub use tiered::{TierStats, TieredStore, TieredStoreBuilder};

#[cfg(feature = "redis")]
pub use self::redis::{redis_slot, RedisStore, RedisStoreBuilder, DEFAULT_PREFIX};
#[cfg(all(feature = "redis", feature = "memory"))]
pub use self::redis::{NearCache, NearCacheBuilder, DEFAULT_NEAR_MAX_BYTES};
#[cfg(feature = "memory")]
pub use memory::{MemoryStore, MemoryStoreBuilder, DEFAULT_MAX_BYTES};
#[cfg(feature = "postgres")]
pub use sql::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sql::SqliteStore;
#[cfg(feature = "sqlx")]
pub use sql::{Dialect, SqlStore, SqlStoreBuilder, DEFAULT_TABLE, DEFAULT_TIMEOUT};
