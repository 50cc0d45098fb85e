//! Test support (feature `testing`): the conformance suites for store and cache authors,
//! and helpers for tests that talk to real services.
//!
//! - [`conformance`]: every case a [`Store`](crate::Store) must pass, with
//!   [`store_conformance!`](crate::store_conformance!) for one `#[test]` per case.
//! - [`cache_conformance`]: the same for a [`Cache`](crate::Cache) tier.
//! - Service helpers ([`redis_store`], [`postgres_store`], [`unique`], …): URLs from the
//!   environment, a store isolated per test, and skip-or-fail when a service is down.

pub mod cache_conformance;
#[cfg(feature = "redis")]
pub mod cluster;
pub mod conformance;
mod services;

pub use services::*;
