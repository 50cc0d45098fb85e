//! The store conformance suite: every case every store must pass.
//!
//! `conformance!(name, fixture_future)` expands to one test per case, so a failure names
//! both the store and the case.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, SystemTime},
};

use serde_json::value::to_raw_value;
use session_core::{
    store::{apply_changes, Applied},
    Cache, Changes, ManualClock, Record, SessionToken, Store, TokenHash,
};

pub type Plant =
    Arc<dyn Fn(TokenHash, Vec<u8>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A store under test and what the suite needs to drive it.
pub struct Fixture<S> {
    pub store: S,
    pub clock: ManualClock,
    /// Writes raw bytes under a key, bypassing the store's encoding (for corrupt data).
    pub plant: Plant,
    /// Whether `update` refuses a record that is expired by the store's clock but still
    /// present in the backend (Redis relies on its own expiry for writes).
    pub update_checks_clock: bool,
    /// Whether `cleanup` itself deletes expired records (SQL) rather than the backend.
    pub cleanup_reclaims: bool,
}

fn key() -> TokenHash {
    SessionToken::generate().unwrap().hash()
}

fn record(clock: &ManualClock, ttl: Duration, value: &str) -> Record {
    // Stores keep millisecond precision.
    let now = SystemTime::UNIX_EPOCH
        + Duration::from_millis(
            u64::try_from(
                clock
                    .now_system()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_millis(),
            )
            .unwrap(),
        );
    let mut record = Record::new(now, now + ttl);
    record.insert("value", value).unwrap();
    record.insert("nested", &serde_json_value(value)).unwrap();
    record
}

fn serde_json_value(value: &str) -> Vec<(String, u32)> {
    vec![(value.to_owned(), 1), ("ünïcödé ✓".to_owned(), u32::MAX)]
}

trait NowSystem {
    fn now_system(&self) -> SystemTime;
}

impl NowSystem for ManualClock {
    fn now_system(&self) -> SystemTime {
        session_core::Clock::now(self)
    }
}

const MINUTE: Duration = Duration::from_secs(60);

pub async fn round_trip<S: Store>(f: Fixture<S>) {
    let k = key();
    let r = record(&f.clock, MINUTE, "a");
    assert!(f.store.create(&k, &r).await.unwrap());
    assert_eq!(f.store.load(&k).await.unwrap(), Some(r.clone()));
    let mut changed = r.next_version();
    changed.insert("value", "b").unwrap();
    changed.remove("nested");
    changed.expires_at += MINUTE;
    assert!(f.store.update(&k, r.version, &changed).await.unwrap());
    assert_eq!(f.store.load(&k).await.unwrap(), Some(changed));
}

pub async fn versions<S: Store>(f: Fixture<S>) {
    let k = key();
    let r = record(&f.clock, MINUTE, "a");
    assert_eq!(r.version, 1, "a new record is version 1");
    assert!(f.store.create(&k, &r).await.unwrap());
    assert_eq!(f.store.load(&k).await.unwrap().unwrap().version, 1);
    let mut v2 = r.next_version();
    v2.insert("value", "b").unwrap();
    assert!(f.store.update(&k, 1, &v2).await.unwrap());
    // A write based on the stale version 1 is refused and changes nothing.
    let mut stale = r.next_version();
    stale.insert("value", "stale").unwrap();
    assert!(
        !f.store.update(&k, 1, &stale).await.unwrap(),
        "a write based on a stale version is refused"
    );
    assert_eq!(f.store.load(&k).await.unwrap(), Some(v2.clone()));
    assert_eq!(f.store.reload(&k).await.unwrap(), Some(v2.clone()));
    // Touch moves the expiry, not the version.
    assert!(f.store.touch(&k, v2.expires_at + MINUTE).await.unwrap());
    assert_eq!(f.store.load(&k).await.unwrap().unwrap().version, 2);
}

pub async fn previous_format<S: Store>(f: Fixture<S>) {
    let k = key();
    (f.plant)(
        k.clone(),
        br#"{"v":1,"created":1700000000000,"meta":{},"state":{"n":1}}"#.to_vec(),
    )
    .await;
    let old = f
        .store
        .load(&k)
        .await
        .unwrap()
        .expect("format 1 still reads");
    assert_eq!(old.version, 0, "format 1 reads as version 0");
    assert_eq!(old.get::<u32>("n").unwrap(), Some(1));
    let mut next = old.next_version();
    next.insert("n", &2).unwrap();
    next.expires_at = f.clock.now_system() + MINUTE;
    assert!(f.store.update(&k, 0, &next).await.unwrap());
    let back = f.store.load(&k).await.unwrap().unwrap();
    assert_eq!((back.version, back.get::<u32>("n").unwrap()), (1, Some(2)));
}

/// Concurrent requests of one session, each changing its own key from whatever it loaded:
/// every change survives (the version check and the retry on top of the newer record).
pub async fn deltas<S: Store>(f: Fixture<S>) {
    const TASKS: usize = 4;
    const ROUNDS: u32 = 4;
    let store = Arc::new(f.store);
    let k = key();
    let base = record(&f.clock, MINUTE, "a");
    assert!(store.create(&k, &base).await.unwrap());
    let expires = base.expires_at + MINUTE;
    let tasks = (0..TASKS).map(|i| {
        let (store, k) = (Arc::clone(&store), k.clone());
        tokio::spawn(async move {
            for n in 1..=ROUNDS {
                let loaded = store.load(&k).await.unwrap().expect("live");
                let mut changes = Changes::new();
                changes.set(format!("c{i}"), to_raw_value(&n).unwrap());
                // At most (TASKS - 1) * ROUNDS other writes can come first: fewer than the
                // retry budget, so this never gives up.
                let applied = apply_changes(&*store, &k, loaded, &changes, expires)
                    .await
                    .unwrap();
                assert!(matches!(applied, Applied::Written { .. }), "{applied:?}");
            }
        })
    });
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }
    let last = store.load(&k).await.unwrap().expect("live");
    for i in 0..TASKS {
        assert_eq!(
            last.get::<u32>(&format!("c{i}")).unwrap(),
            Some(ROUNDS),
            "c{i}"
        );
    }
    assert_eq!(last.get::<String>("value").unwrap().as_deref(), Some("a"));
    assert_eq!(last.version, 1 + (TASKS as u64) * u64::from(ROUNDS));
    let durable = store.reload(&k).await.unwrap().expect("live");
    assert_eq!(
        durable.version, last.version,
        "every tier on the same version"
    );
    // Changes to a session that ended meanwhile are not written, and it stays ended.
    store.delete(&k).await.unwrap();
    let applied = apply_changes(&*store, &k, last, &Changes::all_of(&base.state), expires)
        .await
        .unwrap();
    assert_eq!(applied, Applied::Gone);
    assert_eq!(store.load(&k).await.unwrap(), None);
}

pub async fn unknown_ids<S: Store>(f: Fixture<S>) {
    let k = key();
    assert_eq!(f.store.load(&k).await.unwrap(), None);
    let r = record(&f.clock, MINUTE, "a");
    assert!(
        !f.store
            .update(&k, r.version, &r.next_version())
            .await
            .unwrap(),
        "update must not create"
    );
    assert!(
        !f.store.touch(&k, r.expires_at).await.unwrap(),
        "touch must not create"
    );
    f.store.delete(&k).await.unwrap();
    assert_eq!(f.store.load(&k).await.unwrap(), None);
}

pub async fn ttl_expiry<S: Store>(f: Fixture<S>) {
    let k = key();
    let r = record(&f.clock, MINUTE, "a");
    assert!(f.store.create(&k, &r).await.unwrap());
    f.clock.advance(MINUTE - Duration::from_secs(1));
    assert!(
        f.store.load(&k).await.unwrap().is_some(),
        "alive before expiry"
    );
    f.clock.advance(Duration::from_secs(2));
    assert_eq!(
        f.store.load(&k).await.unwrap(),
        None,
        "expired by the clock"
    );
    assert!(!f
        .store
        .touch(&k, f.clock.now_system() + MINUTE)
        .await
        .unwrap());
    if f.update_checks_clock {
        let mut again = r.next_version();
        again.expires_at = f.clock.now_system() + MINUTE;
        assert!(
            !f.store.update(&k, r.version, &again).await.unwrap(),
            "no update of expired"
        );
    }
    assert_eq!(f.store.load(&k).await.unwrap(), None);

    // A record already expired when written is never returned.
    let past = key();
    let mut old = record(&f.clock, MINUTE, "old");
    old.expires_at = f.clock.now_system() - Duration::from_secs(1);
    f.store.create(&past, &old).await.unwrap();
    assert_eq!(f.store.load(&past).await.unwrap(), None);
}

pub async fn touch<S: Store>(f: Fixture<S>) {
    let k = key();
    let r = record(&f.clock, MINUTE, "a");
    assert!(f.store.create(&k, &r).await.unwrap());
    let later = r.expires_at + 2 * MINUTE;
    assert!(f.store.touch(&k, later).await.unwrap());
    f.clock.advance(2 * MINUTE);
    let loaded = f
        .store
        .load(&k)
        .await
        .unwrap()
        .expect("touch extended the life");
    assert_eq!(loaded.expires_at, later);
    assert_eq!(loaded.state.len(), r.state.len());
    assert_eq!(loaded.get::<String>("value").unwrap().as_deref(), Some("a"));
}

pub async fn delete<S: Store>(f: Fixture<S>) {
    let (k, other) = (key(), key());
    let r = record(&f.clock, MINUTE, "a");
    assert!(f.store.create(&k, &r).await.unwrap());
    assert!(f.store.create(&other, &r).await.unwrap());
    f.store.delete(&k).await.unwrap();
    assert_eq!(f.store.load(&k).await.unwrap(), None);
    assert!(
        f.store.load(&other).await.unwrap().is_some(),
        "only that key"
    );
    f.store.delete(&k).await.unwrap();
}

pub async fn update_after_delete<S: Store>(f: Fixture<S>) {
    let k = key();
    let r = record(&f.clock, MINUTE, "a");
    assert!(f.store.create(&k, &r).await.unwrap());
    // A logout deletes the session while a slow request still holds it...
    f.store.delete(&k).await.unwrap();
    // ...and the slow request saves afterwards.
    let mut slow = r.next_version();
    slow.insert("value", "from the slow request").unwrap();
    assert!(
        !f.store.update(&k, r.version, &slow).await.unwrap(),
        "no resurrection"
    );
    assert!(!f.store.touch(&k, slow.expires_at).await.unwrap());
    assert_eq!(f.store.load(&k).await.unwrap(), None);
}

pub async fn create_collision<S: Store>(f: Fixture<S>) {
    let k = key();
    let first = record(&f.clock, MINUTE, "first");
    let second = record(&f.clock, 2 * MINUTE, "second");
    assert!(f.store.create(&k, &first).await.unwrap());
    assert!(
        !f.store.create(&k, &second).await.unwrap(),
        "collision reported"
    );
    assert_eq!(
        f.store.load(&k).await.unwrap(),
        Some(first),
        "never overwritten"
    );
}

pub async fn cleanup<S: Store>(f: Fixture<S>) {
    let live = key();
    assert!(f
        .store
        .create(&live, &record(&f.clock, 10 * MINUTE, "live"))
        .await
        .unwrap());
    let stale: Vec<TokenHash> = (0..5).map(|_| key()).collect();
    for k in &stale {
        assert!(f
            .store
            .create(k, &record(&f.clock, MINUTE, "stale"))
            .await
            .unwrap());
    }
    f.clock.advance(2 * MINUTE);
    let mut deleted = Vec::new();
    loop {
        let n = f.store.cleanup(2).await.unwrap();
        assert!(n <= 2, "cleanup is bounded by its limit");
        deleted.push(n);
        if n < 2 {
            break;
        }
    }
    if f.cleanup_reclaims {
        assert_eq!(deleted, [2, 2, 1], "bounded batches");
        // Nothing left to clean: the rows are gone, not merely hidden.
        assert_eq!(f.store.cleanup(100).await.unwrap(), 0);
    }
    for k in &stale {
        assert_eq!(f.store.load(k).await.unwrap(), None);
    }
    assert!(
        f.store.load(&live).await.unwrap().is_some(),
        "live record kept"
    );
}

pub async fn concurrent_saves<S: Store>(f: Fixture<S>) {
    let store = Arc::new(f.store);
    let k = key();
    // Concurrent creates of one key: exactly one wins.
    let creates = (0..16).map(|i| {
        let (store, k, r) = (
            Arc::clone(&store),
            k.clone(),
            record(&f.clock, MINUTE, &i.to_string()),
        );
        tokio::spawn(async move { store.create(&k, &r).await.unwrap() })
    });
    let won = futures::future::join_all(creates)
        .await
        .into_iter()
        .filter(|won| *won.as_ref().unwrap())
        .count();
    assert_eq!(won, 1, "exactly one create wins");
    // Concurrent updates based on the same version: exactly one applies, the record stays
    // whole.
    let updates = (0..16).map(|i| {
        let (store, k, r) = (
            Arc::clone(&store),
            k.clone(),
            record(&f.clock, MINUTE, &format!("u{i}")).next_version(),
        );
        tokio::spawn(async move { store.update(&k, 1, &r).await.unwrap() })
    });
    let applied = futures::future::join_all(updates)
        .await
        .into_iter()
        .filter(|updated| *updated.as_ref().unwrap())
        .count();
    assert_eq!(applied, 1, "exactly one update of version 1 applies");
    let last = store.load(&k).await.unwrap().expect("still there");
    assert_eq!(last.version, 2);
    let value: String = last.get("value").unwrap().unwrap();
    assert!(value.starts_with('u'), "{value}");
    let nested: Vec<(String, u32)> = last.get("nested").unwrap().unwrap();
    assert_eq!(nested[0].0, value, "no torn record");
}

pub async fn corrupt_data<S: Store>(f: Fixture<S>) {
    for garbage in [
        b"".to_vec(),
        b"not json at all".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x9f],
        br#"{"v":99,"created":0,"state":{}}"#.to_vec(),
        br#"{"v":1,"created":"yesterday"}"#.to_vec(),
    ] {
        let k = key();
        (f.plant)(k.clone(), garbage.clone()).await;
        let err = f
            .store
            .load(&k)
            .await
            .expect_err("corrupt data is an error");
        assert!(err.is_corrupt(), "{garbage:?}: {err:?}");
        // The key can still be deleted and reused.
        f.store.delete(&k).await.unwrap();
        assert!(f
            .store
            .create(&k, &record(&f.clock, MINUTE, "fresh"))
            .await
            .unwrap());
        assert!(f.store.load(&k).await.unwrap().is_some());
    }
}

#[allow(unused_macros)]
macro_rules! conformance {
    ($name:ident, $fixture:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            conformance!(@cases $fixture;
                round_trip, versions, previous_format, deltas, unknown_ids, ttl_expiry, touch,
                delete, update_after_delete, create_collision, cleanup, concurrent_saves,
                corrupt_data);
        }
    };
    (@cases $fixture:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some(fixture) = $fixture.await {
                    $crate::common::conformance::$case(fixture).await;
                }
            }
        )*
    };
}
#[allow(unused_imports)]
pub(crate) use conformance;

/// A cache under test.
pub struct CacheFixture<C> {
    pub cache: C,
    pub clock: ManualClock,
}

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
        .touch(&k, f.clock.now_system() + 10 * MINUTE)
        .await
        .unwrap();
    f.clock.advance(MINUTE + Duration::from_secs(1));
    f.cache.put(&k, &r).await.unwrap();
    assert_eq!(f.cache.get(&k).await.unwrap(), Some(r), "until it expires");
}

pub async fn cache_touch<C: Cache>(f: CacheFixture<C>) {
    let k = key();
    let r = record(&f.clock, MINUTE, "a");
    f.cache.put(&k, &r).await.unwrap();
    f.cache.touch(&k, r.expires_at + MINUTE).await.unwrap();
    f.clock.advance(MINUTE + Duration::from_secs(1));
    let got = f.cache.get(&k).await.unwrap().expect("touch extended it");
    assert_eq!(
        (got.version, got.expires_at),
        (r.version, r.expires_at + MINUTE)
    );
    f.clock.advance(MINUTE);
    assert_eq!(f.cache.get(&k).await.unwrap(), None, "expired by the clock");
}

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
    for put in futures::future::join_all(puts).await {
        put.unwrap();
    }
    assert_eq!(cache.get(&k).await.unwrap().unwrap().version, 24);
}

#[allow(unused_macros)]
macro_rules! cache_conformance {
    ($name:ident, $fixture:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            cache_conformance!(@cases $fixture; forward_only, tombstones, cache_touch, concurrent_puts);
        }
    };
    (@cases $fixture:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some(fixture) = $fixture.await {
                    $crate::common::conformance::$case(fixture).await;
                }
            }
        )*
    };
}
#[allow(unused_imports)]
pub(crate) use cache_conformance;
