//! The conformance suite for cache tiers: every case a [`Cache`] must pass to sit in front
//! of a durable store in a [`TieredStore`](crate::store::TieredStore).
//!
//! Run it with [`cache_conformance!`](crate::cache_conformance!) (one `#[test]` per case)
//! or [`run_all`].
//!
//! ```
//! use session_core::{store::MemoryStore, testing::cache_conformance::{run_all, CacheFixture}};
//! use session_core::ManualClock;
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! run_all(|| async {
//!     let clock = ManualClock::starting_now();
//!     CacheFixture::new(MemoryStore::builder().clock(clock.clone()).build(), clock)
//! })
//! .await;
//! # }
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)] // the suite fails loudly by design

use std::{future::Future, sync::Arc, time::Duration};

use super::conformance::{key, record, NowSystem as _, MINUTE};
use crate::{Cache, ManualClock};

/// A cache under test, reading time from `clock` (the suite moves it).
pub struct CacheFixture<C> {
    pub(crate) cache: C,
    pub(crate) clock: ManualClock,
}

impl<C: Cache> CacheFixture<C> {
    /// A fixture for `cache` on `clock`.
    #[must_use]
    pub fn new(cache: C, clock: ManualClock) -> Self {
        Self { cache, clock }
    }
}

/// What a fixture expression may produce: a [`CacheFixture`], or `Option<CacheFixture>`
/// where `None` skips the case.
pub trait IntoCacheFixture {
    /// The cache under test.
    type Cache: Cache;

    /// The fixture, or `None` to skip.
    fn into_fixture(self) -> Option<CacheFixture<Self::Cache>>;
}

impl<C: Cache> IntoCacheFixture for CacheFixture<C> {
    type Cache = C;

    fn into_fixture(self) -> Option<CacheFixture<C>> {
        Some(self)
    }
}

impl<C: Cache> IntoCacheFixture for Option<CacheFixture<C>> {
    type Cache = C;

    fn into_fixture(self) -> Option<CacheFixture<C>> {
        self
    }
}

/// `put` only moves forward: an older or equal version never replaces the cached one.
///
/// # Panics
///
/// When the cache breaks the contract.
pub async fn forward_only<C: Cache>(f: CacheFixture<C>) {
    let k = key();
    let v1 = record(&f.clock, MINUTE, "v1");
    let mut v2 = v1.next_version();
    v2.insert("value", "v2").unwrap();
    f.cache.put(&k, &v2).await.unwrap();
    f.cache.put(&k, &v1).await.unwrap();
    assert_eq!(
        f.cache.get(&k).await.unwrap(),
        Some(v2.clone()),
        "never backwards"
    );
    let mut same = v2.clone();
    same.insert("value", "same version").unwrap();
    f.cache.put(&k, &same).await.unwrap();
    assert_eq!(
        f.cache.get(&k).await.unwrap(),
        Some(v2.clone()),
        "nor sideways"
    );
    let v3 = v2.next_version();
    f.cache.put(&k, &v3).await.unwrap();
    assert_eq!(f.cache.get(&k).await.unwrap(), Some(v3));
}

/// `invalidate` leaves a tombstone that reads as a miss and refuses every `put` until it
/// expires.
///
/// # Panics
///
/// When the cache breaks the contract.
pub async fn tombstones<C: Cache>(f: CacheFixture<C>) {
    let k = key();
    let r = record(&f.clock, 10 * MINUTE, "a");
    f.cache.put(&k, &r).await.unwrap();
    f.cache
        .invalidate(&k, f.clock.now_system() + MINUTE)
        .await
        .unwrap();
    assert_eq!(
        f.cache.get(&k).await.unwrap(),
        None,
        "a tombstone reads as a miss"
    );
    let mut newer = r.next_version().next_version();
    newer.insert("value", "late refill").unwrap();
    f.cache.put(&k, &newer).await.unwrap();
    assert_eq!(
        f.cache.get(&k).await.unwrap(),
        None,
        "and refuses every put"
    );
    f.cache
        .touch(&k, r.version, f.clock.now_system() + 10 * MINUTE)
        .await
        .unwrap();
    f.clock.advance(MINUTE + Duration::from_secs(1));
    f.cache.put(&k, &r).await.unwrap();
    assert_eq!(f.cache.get(&k).await.unwrap(), Some(r), "until it expires");
}

/// `touch` moves the expiry and keeps the version.
///
/// # Panics
///
/// When the cache breaks the contract.
pub async fn cache_touch<C: Cache>(f: CacheFixture<C>) {
    let k = key();
    let r = record(&f.clock, MINUTE, "a");
    f.cache.put(&k, &r).await.unwrap();
    f.cache
        .touch(&k, r.version + 1, r.expires_at + 5 * MINUTE)
        .await
        .unwrap();
    f.cache
        .touch(&k, r.version, r.expires_at + MINUTE)
        .await
        .unwrap();
    f.clock.advance(MINUTE + Duration::from_secs(1));
    let got = f.cache.get(&k).await.unwrap().expect("touch extended it");
    assert_eq!(
        (got.version, got.expires_at),
        (r.version, r.expires_at + MINUTE)
    );
    f.clock.advance(MINUTE);
    assert_eq!(f.cache.get(&k).await.unwrap(), None, "expired by the clock");
}

/// Concurrent puts of scrambled versions leave the newest.
///
/// # Panics
///
/// When the cache breaks the contract.
pub async fn concurrent_puts<C: Cache>(f: CacheFixture<C>) {
    let cache = Arc::new(f.cache);
    let k = key();
    let base = record(&f.clock, MINUTE, "a");
    // Versions 1..=24 written in a scrambled order from concurrent tasks.
    let puts = (0..24u64).map(|i| {
        let (cache, k) = (Arc::clone(&cache), k.clone());
        let mut r = base.clone();
        r.version = (i * 7) % 24 + 1;
        tokio::spawn(async move { cache.put(&k, &r).await.unwrap() })
    });
    for put in puts.collect::<Vec<_>>() {
        put.await.unwrap();
    }
    assert_eq!(cache.get(&k).await.unwrap().unwrap().version, 24);
}

/// Runs every case, each against a fresh fixture from `fixture`, printing each case's name
/// before it runs. Call it from a multi-threaded Tokio runtime.
///
/// # Panics
///
/// When the cache breaks the contract.
pub async fn run_all<F, Fut>(mut fixture: F)
where
    F: FnMut() -> Fut,
    Fut: Future,
    Fut::Output: IntoCacheFixture,
{
    macro_rules! cases {
        ($($case:ident),*) => {$(
            eprintln!("cache conformance case {}", stringify!($case));
            if let Some(f) = fixture().await.into_fixture() {
                $case(f).await;
            }
        )*};
    }
    cases!(forward_only, tombstones, cache_touch, concurrent_puts);
}

/// One `#[test]` per cache conformance case, in a module of its own:
/// `cache_conformance!(module_name, fixture_future)`, the fixture a future of a
/// [`CacheFixture`] or an `Option<CacheFixture>`.
#[macro_export]
macro_rules! cache_conformance {
    ($name:ident, $fixture:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $crate::cache_conformance!(@cases $fixture;
                forward_only, tombstones, cache_touch, concurrent_puts);
        }
    };
    (@cases $fixture:expr; $($case:ident),*) => {
        $(
            #[::core::prelude::v1::test]
            fn $case() {
                $crate::testing::conformance::block_on(async {
                    let fixture = $crate::testing::cache_conformance::IntoCacheFixture::into_fixture(
                        $fixture.await,
                    );
                    if let Some(fixture) = fixture {
                        $crate::testing::cache_conformance::$case(fixture).await;
                    }
                });
            }
        )*
    };
}
