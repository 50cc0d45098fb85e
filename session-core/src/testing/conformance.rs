//! The store conformance suite: every case a [`Store`] must pass, for store authors.
//!
//! Each case is an `async fn` taking a fresh [`Fixture`]: the store under test, the
//! [`ManualClock`] it reads time from, and what the suite needs to know about it. Run them
//! all with [`run_all`], or one `#[test]` per case with
//! [`store_conformance!`](crate::store_conformance!) (a failure then names the store and
//! the case).
//!
//! # Example
//!
//! A small store that keeps encoded records in a `HashMap`, checked against the whole
//! suite:
//!
//! ```
//! use std::{collections::HashMap, sync::{Arc, Mutex}, time::SystemTime};
//!
//! use session_core::{
//!     testing::conformance::{run_all, Fixture},
//!     Clock, ManualClock, Record, Store, StoreError, TokenHash,
//! };
//!
//! #[derive(Clone)]
//! struct MapStore {
//!     map: Arc<Mutex<HashMap<TokenHash, (Vec<u8>, SystemTime)>>>,
//!     clock: ManualClock,
//! }
//!
//! impl MapStore {
//!     fn live(&self, key: &TokenHash) -> Result<Option<Record>, StoreError> {
//!         let map = self.map.lock().map_err(|_| StoreError::unavailable("poisoned"))?;
//!         match map.get(key) {
//!             Some((bytes, expires)) if *expires > self.clock.now() => {
//!                 Record::decode(bytes, *expires).map(Some)
//!             }
//!             _ => Ok(None),
//!         }
//!     }
//!
//!     fn put(&self, key: &TokenHash, record: &Record) -> Result<(), StoreError> {
//!         let bytes = record.encode()?;
//!         let mut map = self.map.lock().map_err(|_| StoreError::unavailable("poisoned"))?;
//!         map.insert(key.clone(), (bytes, record.expires_at));
//!         Ok(())
//!     }
//! }
//!
//! impl Store for MapStore {
//!     async fn load(&self, key: &TokenHash) -> Result<Option<Record>, StoreError> {
//!         self.live(key)
//!     }
//!
//!     async fn create(&self, key: &TokenHash, record: &Record) -> Result<bool, StoreError> {
//!         // One lock for the check and the insert: two creates of one key never both win.
//!         let mut map = self.map.lock().map_err(|_| StoreError::unavailable("poisoned"))?;
//!         if map.get(key).is_some_and(|(_, expires)| *expires > self.clock.now()) {
//!             return Ok(false);
//!         }
//!         map.insert(key.clone(), (record.encode()?, record.expires_at));
//!         Ok(true)
//!     }
//!
//!     async fn update(
//!         &self,
//!         key: &TokenHash,
//!         expected: u64,
//!         record: &Record,
//!     ) -> Result<bool, StoreError> {
//!         let mut map = self.map.lock().map_err(|_| StoreError::unavailable("poisoned"))?;
//!         let current = match map.get(key) {
//!             Some((bytes, expires)) if *expires > self.clock.now() => {
//!                 Record::decode(bytes, *expires)?
//!             }
//!             _ => return Ok(false),
//!         };
//!         if current.version != expected {
//!             return Ok(false);
//!         }
//!         map.insert(key.clone(), (record.encode()?, record.expires_at));
//!         Ok(true)
//!     }
//!
//!     async fn touch(
//!         &self,
//!         key: &TokenHash,
//!         expected: u64,
//!         expires_at: SystemTime,
//!     ) -> Result<bool, StoreError> {
//!         let mut map = self.map.lock().map_err(|_| StoreError::unavailable("poisoned"))?;
//!         match map.get_mut(key) {
//!             Some((bytes, expires)) if *expires > self.clock.now() => {
//!                 if Record::decode(bytes, *expires)?.version != expected {
//!                     return Ok(false);
//!                 }
//!                 *expires = expires_at;
//!                 Ok(true)
//!             }
//!             _ => Ok(false),
//!         }
//!     }
//!
//!     async fn delete(&self, key: &TokenHash) -> Result<(), StoreError> {
//!         let mut map = self.map.lock().map_err(|_| StoreError::unavailable("poisoned"))?;
//!         map.remove(key);
//!         Ok(())
//!     }
//!
//!     async fn cleanup(&self, limit: usize) -> Result<usize, StoreError> {
//!         let now = self.clock.now();
//!         let mut map = self.map.lock().map_err(|_| StoreError::unavailable("poisoned"))?;
//!         let expired: Vec<TokenHash> = map
//!             .iter()
//!             .filter(|(_, (_, expires))| *expires <= now)
//!             .map(|(key, _)| key.clone())
//!             .take(limit)
//!             .collect();
//!         for key in &expired {
//!             map.remove(key);
//!         }
//!         Ok(expired.len())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! run_all(|| async {
//!     let clock = ManualClock::starting_now();
//!     let store = MapStore { map: Arc::default(), clock: clock.clone() };
//!     // Planting raw bytes lets the suite check old formats and corrupt data.
//!     let planted = store.clone();
//!     Fixture::new(store, clock)
//!         .plant(move |key, bytes| {
//!             let expires = planted.clock.now() + std::time::Duration::from_secs(60);
//!             planted.map.lock().unwrap().insert(key, (bytes, expires));
//!             async {}
//!         })
//!         .cleanup_reclaims(true)
//! })
//! .await;
//! # }
//! ```
//!
//! In a test file of your own, [`store_conformance!`](crate::store_conformance!) gives one
//! `#[test]` per case.
#![allow(clippy::unwrap_used, clippy::expect_used)] // the suite fails loudly by design

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, SystemTime},
};

use serde_json::value::to_raw_value;

use crate::{
    store::{apply_changes, Applied},
    Changes, ManualClock, Record, SessionToken, Store, TokenHash,
};

/// Writes raw bytes under a key, bypassing the store's encoding: see [`Fixture::plant`].
pub type Plant =
    Arc<dyn Fn(TokenHash, Vec<u8>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A store under test and what the suite needs to drive it.
pub struct Fixture<S> {
    pub(crate) store: S,
    pub(crate) clock: ManualClock,
    pub(crate) plant: Option<Plant>,
    pub(crate) update_checks_clock: bool,
    pub(crate) cleanup_reclaims: bool,
}

impl<S: Store> Fixture<S> {
    /// A fixture for `store`, which must read time from `clock` (the suite moves it).
    ///
    /// By default the suite expects `update` to refuse a record that the clock says has
    /// expired, does not expect `cleanup` to delete rows itself, and skips the two cases
    /// that need [`plant`](Self::plant).
    #[must_use]
    pub fn new(store: S, clock: ManualClock) -> Self {
        Self {
            store,
            clock,
            plant: None,
            update_checks_clock: true,
            cleanup_reclaims: false,
        }
    }

    /// How to write raw bytes under a key, bypassing the store's encoding, with an expiry a
    /// minute away: the cases `previous_format` (a record in the previous format still
    /// reads) and `corrupt_data` (garbage is a typed error, never a panic) need it.
    #[must_use]
    pub fn plant<F, Fut>(mut self, plant: F) -> Self
    where
        F: Fn(TokenHash, Vec<u8>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.plant = Some(Arc::new(move |key, bytes| Box::pin(plant(key, bytes))));
        self
    }

    /// Whether `update` refuses a record that is expired by the clock but still present in
    /// the backend (default `true`; Redis relies on its own expiry for writes).
    #[must_use]
    pub fn update_checks_clock(mut self, checks: bool) -> Self {
        self.update_checks_clock = checks;
        self
    }

    /// Whether `cleanup` itself deletes expired records, in batches of its limit (SQL), so
    /// the suite checks the counts (default `false`: the backend expires them).
    #[must_use]
    pub fn cleanup_reclaims(mut self, reclaims: bool) -> Self {
        self.cleanup_reclaims = reclaims;
        self
    }
}

/// What a fixture expression may produce: a [`Fixture`], or `Option<Fixture>` where `None`
/// skips the case (a service that is down on a developer's machine).
pub trait IntoFixture {
    /// The store under test.
    type Store: Store;

    /// The fixture, or `None` to skip.
    fn into_fixture(self) -> Option<Fixture<Self::Store>>;
}

impl<S: Store> IntoFixture for Fixture<S> {
    type Store = S;

    fn into_fixture(self) -> Option<Fixture<S>> {
        Some(self)
    }
}

impl<S: Store> IntoFixture for Option<Fixture<S>> {
    type Store = S;

    fn into_fixture(self) -> Option<Fixture<S>> {
        self
    }
}

fn planter<S>(f: &Fixture<S>, case: &str) -> Option<Plant> {
    if f.plant.is_none() {
        eprintln!("SKIPPED: conformance case {case} needs Fixture::plant");
    }
    f.plant.clone()
}

pub(crate) fn key() -> TokenHash {
    SessionToken::generate().unwrap().hash()
}

pub(crate) fn record(clock: &ManualClock, ttl: Duration, value: &str) -> Record {
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

pub(crate) trait NowSystem {
    fn now_system(&self) -> SystemTime;
}

impl NowSystem for ManualClock {
    fn now_system(&self) -> SystemTime {
        crate::Clock::now(self)
    }
}

pub(crate) const MINUTE: Duration = Duration::from_secs(60);

/// A created record loads back equal, field for field.
///
/// # Panics
///
/// When the store breaks the contract.
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

/// `update` and `touch` apply only on the version they were based on; `touch` keeps the
/// version.
///
/// # Panics
///
/// When the store breaks the contract.
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
    // A touch based on the older version is refused (a rotation or a write came first)...
    assert!(
        !f.store.touch(&k, 1, v2.expires_at + MINUTE).await.unwrap(),
        "touch on a stale version"
    );
    assert_eq!(
        f.store.load(&k).await.unwrap().unwrap().expires_at,
        v2.expires_at
    );
    // ...and one on the current version moves the expiry, not the version.
    assert!(f.store.touch(&k, 2, v2.expires_at + MINUTE).await.unwrap());
    let touched = f.store.load(&k).await.unwrap().unwrap();
    assert_eq!(
        (touched.version, touched.expires_at),
        (2, v2.expires_at + MINUTE)
    );
}

/// A record in the previous format (1) still reads, as version 0, and can be updated
/// (needs [`Fixture::plant`]).
///
/// # Panics
///
/// When the store breaks the contract.
pub async fn previous_format<S: Store>(f: Fixture<S>) {
    let Some(plant) = planter(&f, "previous_format") else {
        return;
    };
    let k = key();
    plant(
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
///
/// # Panics
///
/// When the store breaks the contract.
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
    for task in tasks.collect::<Vec<_>>() {
        task.await.unwrap();
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

/// An unknown key loads as `None`; `update` and `touch` never create it.
///
/// # Panics
///
/// When the store breaks the contract.
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
        !f.store.touch(&k, r.version, r.expires_at).await.unwrap(),
        "touch must not create"
    );
    f.store.delete(&k).await.unwrap();
    assert_eq!(f.store.load(&k).await.unwrap(), None);
}

/// A record expires by the store's clock; one already expired when written never loads.
///
/// # Panics
///
/// When the store breaks the contract.
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
        .touch(&k, r.version, f.clock.now_system() + MINUTE)
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

/// `touch` moves the expiry and keeps the data.
///
/// # Panics
///
/// When the store breaks the contract.
pub async fn touch<S: Store>(f: Fixture<S>) {
    let k = key();
    let r = record(&f.clock, MINUTE, "a");
    assert!(f.store.create(&k, &r).await.unwrap());
    let later = r.expires_at + 2 * MINUTE;
    assert!(f.store.touch(&k, r.version, later).await.unwrap());
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

/// `delete` removes only its key, and deleting twice is fine.
///
/// # Panics
///
/// When the store breaks the contract.
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

/// A session deleted while a slow request held it stays deleted when that request
/// saves (no resurrection).
///
/// # Panics
///
/// When the store breaks the contract.
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
    assert!(!f.store.touch(&k, r.version, slow.expires_at).await.unwrap());
    assert_eq!(f.store.load(&k).await.unwrap(), None);
}

/// `create` never overwrites a live record and reports the collision.
///
/// # Panics
///
/// When the store breaks the contract.
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

/// `cleanup` removes expired records in batches bounded by its limit and keeps live ones.
///
/// # Panics
///
/// When the store breaks the contract.
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

/// Concurrent creates of one key: exactly one wins. Concurrent updates from one version:
/// exactly one applies and the record is never torn.
///
/// # Panics
///
/// When the store breaks the contract.
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
    let mut won = 0;
    for create in creates.collect::<Vec<_>>() {
        won += usize::from(create.await.unwrap());
    }
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
    let mut applied = 0;
    for update in updates.collect::<Vec<_>>() {
        applied += usize::from(update.await.unwrap());
    }
    assert_eq!(applied, 1, "exactly one update of version 1 applies");
    let last = store.load(&k).await.unwrap().expect("still there");
    assert_eq!(last.version, 2);
    let value: String = last.get("value").unwrap().unwrap();
    assert!(value.starts_with('u'), "{value}");
    let nested: Vec<(String, u32)> = last.get("nested").unwrap().unwrap();
    assert_eq!(nested[0].0, value, "no torn record");
}

/// Stored garbage loads as a [`StoreError`](crate::StoreError) that says it is corrupt,
/// never a panic, and the key can be deleted and reused (needs [`Fixture::plant`]).
///
/// # Panics
///
/// When the store breaks the contract.
pub async fn corrupt_data<S: Store>(f: Fixture<S>) {
    let Some(plant) = planter(&f, "corrupt_data") else {
        return;
    };
    for garbage in [
        b"".to_vec(),
        b"not json at all".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x9f],
        br#"{"v":99,"created":0,"state":{}}"#.to_vec(),
        br#"{"v":1,"created":"yesterday"}"#.to_vec(),
    ] {
        let k = key();
        plant(k.clone(), garbage.clone()).await;
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

fn user_sessions_of<S: Store>(store: S) -> crate::lifecycle::Sessions<S> {
    user_sessions_limited(store, 50)
}

fn user_sessions_limited<S: Store>(store: S, max: usize) -> crate::lifecycle::Sessions<S> {
    use crate::lifecycle::{RotationKey, Sessions, SessionsConfig, TheftResponse, UserKey};
    Sessions::new(
        Arc::new(store),
        SessionsConfig {
            rotation: RotationKey::new(&[7; 32]),
            users: UserKey::standard(),
            previous_rotations: Vec::new(),
            rotates: true,
            grace: Duration::from_secs(5),
            absolute_timeout: None,
            max_user_sessions: max,
            idle_timeout: 10 * MINUTE,
            cleanup: crate::store::CleanupPolicy::new(0, 100),
            max_record_bytes: 64 * 1024,
            theft: TheftResponse::Log,
        },
    )
}

/// Carries out `finish` for `token`'s session (or a new one) with the changes `set`, at
/// `now`: what a web layer does at the end of a request.
async fn request<S: Store>(
    sessions: &crate::lifecycle::Sessions<S>,
    token: Option<&SessionToken>,
    finish: crate::lifecycle::Finish,
    set: &[(&str, Box<serde_json::value::RawValue>)],
    now: SystemTime,
) -> Option<SessionToken> {
    use crate::lifecycle::{CookieAction, Outcome, Plan};
    let loaded = match token {
        Some(token) => sessions.load(token.clone(), now).await.unwrap(),
        None => None,
    };
    let mut changes = Changes::new();
    for (key, value) in set {
        changes.set(*key, value.clone());
    }
    let plan = Plan {
        finish,
        end_old: false,
        cookie: CookieAction::Set,
    };
    match sessions
        .carry_out(&plan, loaded, changes, None, now)
        .await
        .unwrap()
    {
        Some(Outcome::Live(token, _)) => Some(token),
        _ => None,
    }
}

fn attach(user: &str, agent: &str) -> (&'static str, Box<serde_json::value::RawValue>) {
    let principal = crate::lifecycle::users::Principal::attach(user, Some(agent)).unwrap();
    (
        crate::lifecycle::users::USER_KEY,
        to_raw_value(&principal).unwrap(),
    )
}

fn entry_of(record: &Record) -> String {
    crate::lifecycle::users::Principal::of(&record.state)
        .expect("attached")
        .entry
}

/// The sessions of a user ([`lifecycle::users`](crate::lifecycle::users)): three sessions
/// attached to one user are listed; ending one, then all but one, leaves exactly that one
/// live and in the index; the ended ones load as no session; another user's are untouched.
///
/// # Panics
///
/// When the store breaks the contract.
pub async fn user_index<S: Store>(f: Fixture<S>) {
    use crate::lifecycle::{users::UserKey, Finish};
    let now = f.clock.now_system();
    let sessions = user_sessions_of(f.store);
    let user = format!("alice-{}", key().as_str());
    let mut tokens = Vec::new();
    for agent in [
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
        "curl/8.5.0",
    ] {
        let set = [attach(&user, agent), ("n", to_raw_value(&1).unwrap())];
        tokens.push(request(&sessions, None, Finish::Create, &set, now).await.unwrap());
    }
    let bob = format!("bob-{}", key().as_str());
    let bobs = request(
        &sessions,
        None,
        Finish::Create,
        &[attach(&bob, "curl/8")],
        now,
    )
    .await
    .unwrap();
    let loaded = sessions
        .load(tokens[0].clone(), now)
        .await
        .unwrap()
        .unwrap();
    let current = entry_of(&loaded.record);

    let listed = sessions
        .user_sessions(&user, Some(&current), now)
        .await
        .unwrap();
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert_eq!(listed.iter().filter(|s| s.current).count(), 1);
    let mut agents: Vec<&str> = listed.iter().map(|s| s.agent.as_str()).collect();
    agents.sort_unstable();
    assert_eq!(
        agents,
        [
            "Chrome on Windows",
            "Firefox on Linux",
            "Safari on iOS",
            "curl"
        ]
    );
    assert!(listed.iter().all(|s| s.created == loaded.record.created_at));

    // End one (the curl session), by its entry id.
    let curl = sessions
        .load(tokens[3].clone(), now)
        .await
        .unwrap()
        .unwrap();
    assert!(sessions
        .end_user_session(&user, &entry_of(&curl.record), now)
        .await
        .unwrap());
    assert!(
        sessions
            .load(tokens[3].clone(), now)
            .await
            .unwrap()
            .is_none(),
        "ended"
    );
    assert!(!sessions
        .end_user_session(&user, "no-such-entry", now)
        .await
        .unwrap());

    // End all but the current one.
    assert_eq!(
        sessions
            .end_user_sessions(&user, Some(&current), now)
            .await
            .unwrap(),
        2
    );
    for token in &tokens[1..] {
        assert!(
            sessions.load(token.clone(), now).await.unwrap().is_none(),
            "ended"
        );
    }
    let kept = sessions
        .load(tokens[0].clone(), now)
        .await
        .unwrap()
        .expect("kept");
    assert_eq!(kept.record.get::<i32>("n").unwrap(), Some(1));
    let listed = sessions
        .user_sessions(&user, Some(&current), now)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].current);
    let index = sessions
        .store()
        .load(&UserKey::standard().index_of(&user))
        .await
        .unwrap()
        .expect("the index");
    assert_eq!(index.state.len(), 1, "the index holds one entry");
    assert!(
        sessions.load(bobs.clone(), now).await.unwrap().is_some(),
        "another user's session is untouched"
    );
    assert_eq!(
        sessions.user_sessions(&bob, None, now).await.unwrap().len(),
        1
    );

    // Signing out (a purge) removes the entry with the session.
    request(&sessions, Some(&tokens[0]), Finish::End, &[], now).await;
    assert!(sessions
        .user_sessions(&user, None, now)
        .await
        .unwrap()
        .is_empty());
    let index = sessions
        .store()
        .load(&UserKey::standard().index_of(&user))
        .await
        .unwrap()
        .expect("the index");
    assert!(
        index.state.is_empty(),
        "no entry left: {:?}",
        index.state.keys()
    );
    assert!(sessions
        .load(tokens[0].clone(), now)
        .await
        .unwrap()
        .is_none());
}

/// The index of a user's sessions outlives each of them and nothing more: entries of
/// expired sessions are pruned when listed, a session used past what the index was known
/// to live extends it, and once every session expired the index expires too (and cleanup
/// reclaims it, where `cleanup` reclaims).
///
/// # Panics
///
/// When the store breaks the contract.
pub async fn user_index_expiry<S: Store>(f: Fixture<S>) {
    use crate::lifecycle::{users::UserKey, Finish};
    let clock = f.clock.clone();
    let reclaims = f.cleanup_reclaims;
    let sessions = user_sessions_of(f.store);
    let user = format!("carol-{}", key().as_str());
    let index_key = UserKey::standard().index_of(&user);
    let t0 = clock.now_system();
    let a = request(
        &sessions,
        None,
        Finish::Create,
        &[attach(&user, "curl/1")],
        t0,
    )
    .await
    .unwrap();
    let b = request(
        &sessions,
        None,
        Finish::Create,
        &[attach(&user, "curl/2")],
        t0,
    )
    .await
    .unwrap();
    // Idle timeout 10 minutes; the index lives 20 minutes from the sign-ins.
    let first = expiry_of(sessions.store(), &index_key)
        .await
        .expect("the index");
    assert!(first >= t0 + 20 * MINUTE - Duration::from_secs(1));

    // B is used at 6 minutes (no extension needed) and at 11 (it would outlive the index).
    clock.advance(6 * MINUTE);
    let n = [("n", to_raw_value(&1).unwrap())];
    let b = request(&sessions, Some(&b), Finish::Write, &n, clock.now_system())
        .await
        .unwrap();
    assert_eq!(
        expiry_of(sessions.store(), &index_key).await,
        Some(first),
        "not extended early"
    );
    clock.advance(5 * MINUTE);
    let n = [("n", to_raw_value(&2).unwrap())];
    let b = request(&sessions, Some(&b), Finish::Write, &n, clock.now_system())
        .await
        .unwrap();
    let extended = expiry_of(sessions.store(), &index_key)
        .await
        .expect("the index");
    assert!(extended >= clock.now_system() + 2 * MINUTE * 10 - Duration::from_secs(1));
    assert!(
        sessions
            .load(a.clone(), clock.now_system())
            .await
            .unwrap()
            .is_none(),
        "A expired"
    );

    // B is used at 17 minutes (no index write), then at 22.5, past the first expiry of
    // the index (and of A's entry, with its margin for clocks): B extends the index, and
    // that edit drops A's entry, with no listing.
    clock.advance(6 * MINUTE);
    let n = [("n", to_raw_value(&3).unwrap())];
    let b = request(&sessions, Some(&b), Finish::Write, &n, clock.now_system())
        .await
        .unwrap();
    assert_eq!(
        entries_of(sessions.store(), &index_key).await,
        Some(2),
        "A's entry still there"
    );
    clock.advance(5 * MINUTE + Duration::from_secs(30));
    let now = clock.now_system();
    assert!(now > first);
    let n = [("n", to_raw_value(&4).unwrap())];
    let b = request(&sessions, Some(&b), Finish::Write, &n, now)
        .await
        .unwrap();
    assert_eq!(
        entries_of(sessions.store(), &index_key).await,
        Some(1),
        "the extension dropped A's expired entry"
    );
    let listed = sessions.user_sessions(&user, None, now).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(sessions.load(b.clone(), now).await.unwrap().is_some());

    // Everything expires: the index too (two idle timeouts after B's last extension),
    // and cleanup leaves nothing of it.
    clock.advance(21 * MINUTE);
    assert!(sessions
        .load(b, clock.now_system())
        .await
        .unwrap()
        .is_none());
    assert!(
        sessions.store().load(&index_key).await.unwrap().is_none(),
        "the index expired"
    );
    assert!(sessions
        .user_sessions(&user, None, clock.now_system())
        .await
        .unwrap()
        .is_empty());
    if reclaims {
        let mut reclaimed = 0;
        for _ in 0..100 {
            let n = sessions.store().cleanup(100).await.unwrap();
            reclaimed += n;
            if n < 100 {
                break;
            }
        }
        assert!(reclaimed >= 3, "the sessions and the index: {reclaimed}");
        assert_eq!(sessions.store().cleanup(100).await.unwrap(), 0);
    }
}

/// The limits of a user's sessions: with at most two per user, a third sign-in ends the
/// one signed in longest ago; an index entry that reaches another user's session (as one
/// left behind by an interrupted sign-out could) ends nothing of it, and "sign out
/// everywhere" counts only the sessions it ended.
///
/// # Panics
///
/// When the store breaks the contract.
pub async fn user_index_limits<S: Store>(f: Fixture<S>) {
    use crate::lifecycle::{users::UserKey, Finish};
    let clock = f.clock.clone();
    let sessions = user_sessions_limited(f.store, 2);
    let user = format!("dave-{}", key().as_str());
    let mut tokens = Vec::new();
    for agent in ["curl/1", "curl/2", "curl/3"] {
        let token = request(
            &sessions,
            None,
            Finish::Create,
            &[attach(&user, agent)],
            clock.now_system(),
        )
        .await
        .expect("signed in");
        tokens.push(token);
        clock.advance(Duration::from_secs(1));
    }
    let now = clock.now_system();
    assert!(
        sessions
            .load(tokens[0].clone(), now)
            .await
            .unwrap()
            .is_none(),
        "the third sign-in ended the first"
    );
    for token in &tokens[1..] {
        assert!(sessions.load(token.clone(), now).await.unwrap().is_some());
    }
    let index_key = UserKey::standard().index_of(&user);
    assert_eq!(entries_of(sessions.store(), &index_key).await, Some(2));
    let listed = sessions.user_sessions(&user, None, now).await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");

    // A session attached again to the same user replaces its own entry: it makes no
    // room by ending another session, nor itself.
    let again = request(
        &sessions,
        Some(&tokens[2]),
        Finish::Write,
        &[attach(&user, "curl/3b")],
        now,
    )
    .await
    .expect("attached again (under a renewed id)");
    assert!(sessions
        .load(tokens[1].clone(), now)
        .await
        .unwrap()
        .is_some());
    assert!(sessions.load(again.clone(), now).await.unwrap().is_some());
    assert_eq!(entries_of(sessions.store(), &index_key).await, Some(2));
    tokens[2] = again;

    // An entry in dave's index that names erin's session (a leftover: erin's session once
    // lived under a key dave's session had).
    let erin = format!("erin-{}", key().as_str());
    let erins = request(
        &sessions,
        None,
        Finish::Create,
        &[attach(&erin, "curl/9")],
        now,
    )
    .await
    .expect("signed in");
    let index = sessions
        .store()
        .reload(&index_key)
        .await
        .unwrap()
        .expect("the index");
    let mut next = index.next_version();
    let leftover = serde_json::json!({
        "keys": [erins.hash().as_str()],
        "agent": "curl/old",
        "at": 0,
    });
    next.state
        .insert("leftover".to_owned(), to_raw_value(&leftover).unwrap());
    assert!(sessions
        .store()
        .update(&index_key, index.version, &next)
        .await
        .unwrap());
    let ended = sessions.end_user_sessions(&user, None, now).await.unwrap();
    assert_eq!(ended, 2, "only dave's two sessions");
    assert!(
        sessions.load(erins.clone(), now).await.unwrap().is_some(),
        "erin's session is not ended by an entry of dave's"
    );
    assert_eq!(
        sessions
            .user_sessions(&erin, None, now)
            .await
            .unwrap()
            .len(),
        1
    );
    for token in &tokens {
        assert!(sessions.load(token.clone(), now).await.unwrap().is_none());
    }
}

async fn entries_of<S: Store>(store: &S, key: &TokenHash) -> Option<usize> {
    store
        .load(key)
        .await
        .unwrap()
        .map(|record| record.state.len())
}

async fn expiry_of<S: Store>(store: &S, key: &TokenHash) -> Option<SystemTime> {
    store
        .load(key)
        .await
        .unwrap()
        .map(|record| record.expires_at)
}

/// Runs every case of the suite, each against a fresh fixture from `fixture`, printing the
/// name of each case before it runs so a failure says which one it was.
///
/// Call it from a multi-threaded Tokio runtime: the concurrency cases spawn tasks.
///
/// # Panics
///
/// When the store breaks the contract.
pub async fn run_all<F, Fut>(mut fixture: F)
where
    F: FnMut() -> Fut,
    Fut: Future,
    Fut::Output: IntoFixture,
{
    macro_rules! cases {
        ($($case:ident),*) => {$(
            eprintln!("conformance case {}", stringify!($case));
            if let Some(f) = fixture().await.into_fixture() {
                $case(f).await;
            }
        )*};
    }
    cases!(
        round_trip,
        versions,
        previous_format,
        deltas,
        unknown_ids,
        ttl_expiry,
        touch,
        delete,
        update_after_delete,
        create_collision,
        cleanup,
        concurrent_saves,
        corrupt_data,
        user_index,
        user_index_expiry,
        user_index_limits
    );
}

/// Runs one future to completion on a fresh two-thread Tokio runtime: the body of each
/// test [`store_conformance!`](crate::store_conformance!) and
/// [`cache_conformance!`](crate::cache_conformance!) generate.
///
/// # Panics
///
/// If the runtime cannot start, or the future panics.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime for the conformance case")
        .block_on(future)
}

/// One `#[test]` per conformance case, in a module of its own:
/// `store_conformance!(module_name, fixture_future)`.
///
/// The fixture expression is evaluated once per case and must be a future of a
/// [`Fixture`] or of an `Option<Fixture>` (`None` skips the case). Each test runs on a
/// two-thread Tokio runtime of its own.
///
/// In `tests/store.rs` of a crate with `session-core` (feature `testing`) among its
/// dev-dependencies:
///
/// ```
/// use session_core::{store::MemoryStore, testing::conformance::Fixture, ManualClock};
///
/// session_core::store_conformance!(memory_store, async {
///     let clock = ManualClock::starting_now();
///     Fixture::new(MemoryStore::builder().clock(clock.clone()).build(), clock)
/// });
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! store_conformance {
    ($name:ident, $fixture:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $crate::store_conformance!(@cases $fixture;
                round_trip, versions, previous_format, deltas, unknown_ids, ttl_expiry, touch,
                delete, update_after_delete, create_collision, cleanup, concurrent_saves,
                corrupt_data, user_index, user_index_expiry, user_index_limits);
        }
    };
    (@cases $fixture:expr; $($case:ident),*) => {
        $(
            #[::core::prelude::v1::test]
            fn $case() {
                $crate::testing::conformance::block_on(async {
                    let fixture = $crate::testing::conformance::IntoFixture::into_fixture(
                        $fixture.await,
                    );
                    if let Some(fixture) = fixture {
                        $crate::testing::conformance::$case(fixture).await;
                    }
                });
            }
        )*
    };
}
