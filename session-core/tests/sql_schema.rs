//! The SQL table layout: upgrading a table of an earlier release, and writes that leave
//! the indexes alone (PostgreSQL "HOT" updates) while the expiry stays in the same hour.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use session_core::{
    store::{PostgresStore, SqliteStore},
    Clock, ManualClock, Record, SessionToken, Store,
};

/// The layout of releases up to 0.1: no `expires_hour`, an index on `expires_at`.
const OLD_TABLE: &str = "CREATE TABLE {t} (id TEXT PRIMARY KEY NOT NULL, data {data} NOT NULL, \
                         expires_at {int} NOT NULL)";
const OLD_INDEX: &str = "CREATE INDEX {i}_expires_at_idx ON {t} (expires_at)";

fn millis(time: SystemTime) -> i64 {
    i64::try_from(time.duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// A clock in the middle of an hour, so a test's few minutes never cross into the next.
fn mid_hour_clock() -> ManualClock {
    let clock = ManualClock::starting_now();
    let into_hour = clock.now().duration_since(UNIX_EPOCH).unwrap().as_millis() % 3_600_000;
    let to_next_half_past = 3_600_000 - into_hour + 1_800_000;
    clock.advance(Duration::from_millis(
        u64::try_from(to_next_half_past).unwrap(),
    ));
    clock
}

/// The statements that create `table` in the old layout: the table, then its index named
/// `{index_prefix}_expires_at_idx`, with the backend's byte and integer types.
fn old_layout(table: &str, index_prefix: &str, bytes: &str, int: &str) -> [String; 2] {
    [
        OLD_TABLE
            .replace("{t}", table)
            .replace("{data}", bytes)
            .replace("{int}", int),
        OLD_INDEX.replace("{t}", table).replace("{i}", index_prefix),
    ]
}

/// Two rows to store by hand into the old layout, as `(token, data, expires_at)`: a live
/// one (10 minutes left) first, then one that expires in a minute. The data is a record in
/// format 1, as the releases of that layout wrote it.
fn old_rows(clock: &ManualClock) -> [(SessionToken, Vec<u8>, i64); 2] {
    [600, 60].map(|secs| {
        let now = clock.now();
        let expires = now + Duration::from_secs(secs);
        let data = format!(
            r#"{{"v":1,"created":{},"meta":{{}},"state":{{"cart":[1,2,3]}}}}"#,
            millis(now)
        );
        (
            SessionToken::generate().unwrap(),
            data.into_bytes(),
            millis(expires),
        )
    })
}

/// After migration, two minutes on: the live old row of [`old_rows`] loads and updates, the
/// expired one is cleaned although it has no hour.
async fn old_rows_still_work(
    store: &impl Store,
    clock: &ManualClock,
    rows: &[(SessionToken, Vec<u8>, i64); 2],
) {
    let live = &rows[0].0;
    clock.advance(Duration::from_secs(120));
    let record = store
        .load(&live.hash())
        .await
        .unwrap()
        .expect("old rows still load");
    assert_eq!(record.get::<Vec<u32>>("cart").unwrap(), Some(vec![1, 2, 3]));
    assert_eq!(
        record.version, 0,
        "rows of the old layout read as version 0"
    );
    assert!(store
        .update(&live.hash(), 0, &record.next_version())
        .await
        .unwrap());
    assert_eq!(store.load(&live.hash()).await.unwrap().unwrap().version, 1);
    assert_eq!(
        store.cleanup(100).await.unwrap(),
        1,
        "an old row without an hour is still cleaned once expired"
    );
    assert!(store.load(&live.hash()).await.unwrap().is_some());
}

#[tokio::test]
async fn sqlite_upgrades_a_table_of_an_earlier_release() {
    let clock = mid_hour_clock();
    let pool = common::sqlite_memory_pool().await;
    for ddl in old_layout("sessions", "sessions", "BLOB", "INTEGER") {
        sqlx::query(&ddl).execute(&pool).await.unwrap();
    }
    let rows = old_rows(&clock);
    for (token, data, expires) in &rows {
        sqlx::query("INSERT INTO sessions (id, data, expires_at) VALUES (?1, ?2, ?3)")
            .bind(token.hash().as_str())
            .bind(data)
            .bind(expires)
            .execute(&pool)
            .await
            .unwrap();
    }

    let store = SqliteStore::builder(pool.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.expect("migrating twice is a no-op");

    let indexes: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pragma_index_list('sessions') ORDER BY name")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(
        indexes.contains(&"sessions_expires_hour_idx".to_owned()),
        "{indexes:?}"
    );
    assert!(
        !indexes.contains(&"sessions_expires_at_idx".to_owned()),
        "{indexes:?}"
    );

    old_rows_still_work(&store, &clock, &rows).await;
}

#[tokio::test]
async fn postgres_upgrades_a_table_of_an_earlier_release() {
    let clock = mid_hour_clock();
    // A migrated store gives us a private schema; the old table goes next to it.
    let Some(fresh) = common::postgres_store(&clock).await else {
        return;
    };
    let pool = fresh.pool().clone();
    let schema = fresh.table_name().split('.').next().unwrap().to_owned();
    let table = format!("{schema}.old_sessions");
    for ddl in old_layout(&table, "old_sessions", "BYTEA", "BIGINT") {
        sqlx::query(&ddl).execute(&pool).await.unwrap();
    }
    let rows = old_rows(&clock);
    for (token, data, expires) in &rows {
        sqlx::query(&format!(
            "INSERT INTO {table} (id, data, expires_at) VALUES ($1, $2, $3)"
        ))
        .bind(token.hash().as_str())
        .bind(data)
        .bind(expires)
        .execute(&pool)
        .await
        .unwrap();
    }

    let store = PostgresStore::builder(pool.clone())
        .table_name(&table)
        .clock(clock.clone())
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.expect("migrating twice is a no-op");

    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = $1 AND tablename = 'old_sessions' \
         ORDER BY indexname",
    )
    .bind(&schema)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        indexes,
        ["old_sessions_expires_hour_idx", "old_sessions_pkey"],
        "the expires_at index is replaced"
    );

    old_rows_still_work(&store, &clock, &rows).await;
}

/// Writes that move the expiry within the same hour change no indexed column, so
/// PostgreSQL updates the row in place without touching an index.
#[tokio::test]
async fn postgres_writes_within_the_hour_are_hot_updates() {
    let clock = mid_hour_clock();
    let Some(store) = common::postgres_store(&clock).await else {
        return;
    };
    // One connection, so the statistics flushed below are the ones of our statements.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&common::database_url())
        .await
        .unwrap();
    let store = PostgresStore::builder(pool.clone())
        .table_name(store.table_name())
        .clock(clock.clone())
        .build()
        .unwrap();
    let key = SessionToken::generate().unwrap().hash();
    let mut record = Record::new(clock.now(), clock.now() + Duration::from_secs(600));
    assert!(store.create(&key, &record).await.unwrap());
    for n in 0..5 {
        clock.advance(Duration::from_secs(10));
        let mut next = record.next_version();
        next.insert("n", &n).unwrap();
        next.expires_at = clock.now() + Duration::from_secs(600);
        assert!(store.update(&key, record.version, &next).await.unwrap());
        record = next;
    }
    assert!(store
        .touch(&key, record.version, clock.now() + Duration::from_secs(900))
        .await
        .unwrap());

    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(&pool)
        .await
        .unwrap();
    let (schema, table) = store.table_name().split_once('.').unwrap();
    let (updates, hot): (i64, i64) = sqlx::query_as(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables \
         WHERE schemaname = $1 AND relname = $2",
    )
    .bind(schema)
    .bind(table)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(updates, 6, "5 updates and a touch");
    assert_eq!(hot, updates, "every write within the hour is a HOT update");
}

/// `migrate` runs at every start; on a table that is already current it must not queue for
/// a table lock behind the application's own transactions.
#[tokio::test]
async fn postgres_migrate_of_a_current_table_takes_no_lock() {
    let clock = ManualClock::starting_now();
    let Some(store) = common::postgres_store(&clock).await else {
        return;
    };
    let mut busy = store.pool().begin().await.unwrap();
    sqlx::query(&format!(
        "LOCK TABLE {} IN ROW EXCLUSIVE MODE",
        store.table_name()
    ))
    .execute(&mut *busy)
    .await
    .unwrap();
    let migrated = tokio::time::timeout(Duration::from_secs(3), store.migrate()).await;
    busy.rollback().await.unwrap();
    assert!(
        matches!(migrated, Ok(Ok(()))),
        "migrate waited for the table lock: {migrated:?}"
    );
}

/// Several instances starting at once on an empty database all migrate it: the first
/// `migrate` of a table is serialized (PostgreSQL's `CREATE TABLE IF NOT EXISTS` is not
/// safe against itself: the loser of a race fails on the catalog's unique index).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_first_migrations_at_once_all_succeed() {
    let clock = ManualClock::starting_now();
    let Some(existing) = common::postgres_store(&clock).await else {
        return;
    };
    let schema = existing.table_name().split('.').next().unwrap().to_owned();
    for round in 0..5 {
        let table = format!("{schema}.fresh_{round}");
        let mut starting = Vec::new();
        for _ in 0..6 {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&common::database_url())
                .await
                .unwrap();
            let store = PostgresStore::builder(pool)
                .table_name(&table)
                .clock(clock.clone())
                .build()
                .unwrap();
            starting.push(tokio::spawn(async move { store.migrate().await }));
        }
        for instance in starting {
            instance
                .await
                .unwrap()
                .expect("every instance's first migrate succeeds");
        }
    }
}
