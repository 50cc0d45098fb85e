//! Bad input and failures: never a panic, never a leak.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use actix_web::{
    cookie::{Cookie, Key},
    http::StatusCode,
    test::TestRequest,
};
use common::{both_stores, forge_cookie, Client, Fixture};
use session_core::{
    store::{Counted, Faulty, MemoryStore},
    ManualClock, Record, SessionToken, Store,
};

async fn bad_cookies_get_a_fresh_session<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b)).await;
    let mut owner = Client::new();
    owner.post(&app, "/inc").await;
    let good = owner.cookie.clone().unwrap();

    let mut truncated = good.value().to_owned();
    truncated.truncate(truncated.len() / 2);
    let mut tampered = good.value().as_bytes().to_vec();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let cases: Vec<(&str, TestRequest)> = vec![
        ("missing", TestRequest::get()),
        (
            "empty",
            TestRequest::get().cookie(Cookie::new("session", "")),
        ),
        (
            "truncated",
            TestRequest::get().cookie(Cookie::new("session", truncated)),
        ),
        (
            "tampered",
            TestRequest::get().cookie(Cookie::new("session", tampered)),
        ),
        (
            "oversized",
            TestRequest::get().cookie(Cookie::new("session", "A".repeat(16 * 1024))),
        ),
        (
            "non-utf8",
            TestRequest::get().insert_header((
                "cookie",
                actix_web::http::header::HeaderValue::from_bytes(b"session=\xff\xfe\xfd").unwrap(),
            )),
        ),
        (
            "forged garbage id",
            TestRequest::get().cookie(forge_cookie(&key, "not a token")),
        ),
    ];
    for (name, req) in cases {
        f.clock.advance(std::time::Duration::from_millis(1));
        (f.costs)();
        let stranger = Client::new();
        let reply = stranger
            .send_without_keeping(&app, req.uri("/public"))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{name}");
        assert_eq!(reply.body, "ok", "{name}");
        let (cache, durable) = (f.costs)();
        assert_eq!(
            cache.total() + durable.total(),
            0,
            "{name}: garbage costs no store query"
        );
    }
    // And with a handler that uses the session: empty, fresh.
    let stranger = Client::new();
    let req = TestRequest::get().cookie(Cookie::new("session", "garbage"));
    assert_eq!(
        stranger
            .send_without_keeping(&app, req.uri("/count"))
            .await
            .body,
        "0"
    );
    // The owner is unaffected.
    assert_eq!(owner.get(&app, "/count").await.body, "1");
}

async fn fixation_is_refused<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b)).await;
    // An attacker plants a well-formed id the server never issued.
    let planted = SessionToken::generate().unwrap();
    let mut victim = Client::new();
    victim.cookie = Some(forge_cookie(&key, planted.as_str()));
    victim.post(&app, "/login").await;
    victim.post(&app, "/inc").await;
    assert_eq!(
        f.store.load(&planted.hash()).await.unwrap(),
        None,
        "planted id never adopted"
    );
    let issued = victim.cookie.clone().unwrap();
    assert_ne!(issued, forge_cookie(&key, planted.as_str()));
    assert_eq!(victim.get(&app, "/count").await.body, "1");
}

async fn corrupt_record_gives_fresh_session_under_new_id<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b)).await;
    // A session whose stored bytes are corrupt: planted under a known token.
    let token = SessionToken::generate().unwrap();
    let now = session_core::Clock::now(&f.clock);
    let mut record = Record::new(now, now + std::time::Duration::from_secs(600));
    record.insert("count", &5).unwrap();
    assert!(f.store.create(&token.hash(), &record).await.unwrap());
    corrupt(&f, &token).await;

    let mut client = Client::new();
    client.cookie = Some(forge_cookie(&key, token.as_str()));
    let reply = client.post(&app, "/inc").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "1", "fresh, empty session");
    assert!(reply.set_cookie.is_some());
    assert_ne!(client.cookie, Some(forge_cookie(&key, token.as_str())));
    assert!(
        matches!(f.store.load(&token.hash()).await, Ok(None)),
        "bad record deleted"
    );
    assert_eq!(client.get(&app, "/count").await.body, "1");
}

/// Overwrites the stored record of `token` with bytes that do not decode, in every tier.
async fn corrupt<S: Store>(f: &Fixture<S>, token: &SessionToken) {
    let now = session_core::Clock::now(&f.clock);
    let mut garbage = Record::new(now, now + std::time::Duration::from_secs(600));
    // A value that is valid JSON for the record but not for the state type is not corrupt;
    // write bytes that are not a record at all through a raw update of each backend.
    garbage.insert("count", &"x").unwrap();
    let any: &dyn std::any::Any = &f.store;
    if let Some(memory) = any.downcast_ref::<Counted<MemoryStore>>() {
        memory.inner().insert_raw(
            &token.hash(),
            b"\x00garbage",
            now + std::time::Duration::from_secs(600),
        );
        return;
    }
    if let Some(tiered) = any.downcast_ref::<common::TieredFixtureStore>() {
        let durable = tiered.durable().inner();
        sqlx::query(&format!(
            "UPDATE {} SET data = $1 WHERE id = $2",
            durable.table_name()
        ))
        .bind(&b"\x00garbage"[..])
        .bind(token.hash().as_str())
        .execute(durable.pool())
        .await
        .unwrap();
        tiered.cache().inner().delete(&token.hash()).await.unwrap();
        return;
    }
    panic!("unknown fixture store");
}

async fn purge_racing_a_slow_request_does_not_resurrect<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let layer = common::layer(&f, &key, |b| b);
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    let entered = std::sync::Arc::new(tokio::sync::Notify::new());
    let (g, e) = (gate.clone(), entered.clone());
    let app = actix_web::test::init_service(
        actix_web::App::new()
            .wrap(layer)
            .route(
                "/slow",
                actix_web::web::post().to(move |session: session_actix::Session| {
                    let (g, e) = (g.clone(), e.clone());
                    async move {
                        e.notify_one();
                        g.notified().await;
                        session.insert("count", 99).unwrap();
                        "slow done"
                    }
                }),
            )
            .route(
                "/logout",
                actix_web::web::post().to(|session: session_actix::Session| async move {
                    session.purge();
                    "bye"
                }),
            )
            .route(
                "/inc",
                actix_web::web::post().to(|session: session_actix::Session| async move {
                    session.insert("count", 1).unwrap();
                    "1"
                }),
            ),
    )
    .await;
    let mut client = Client::new();
    client.post(&app, "/inc").await;
    let slow_client = client.clone();
    let slow = slow_client.send_without_keeping(&app, TestRequest::post().uri("/slow"));
    let logout = async {
        entered.notified().await;
        let reply = client.clone().post(&app, "/logout").await;
        gate.notify_one();
        reply
    };
    let (slow, logout) = futures::join!(slow, logout);
    assert_eq!(logout.body, "bye");
    assert_eq!(slow.body, "slow done");
    // The logged-out session stays gone, even though the slow request saved after.
    let token = common::token_of(&key, client.cookie.as_ref().unwrap());
    assert!(
        common::ended(&f.store, &token.hash()).await,
        "not resurrected"
    );
}

both_stores!(
    bad_cookies_get_a_fresh_session,
    fixation_is_refused,
    corrupt_record_gives_fresh_session_under_new_id,
    purge_racing_a_slow_request_does_not_resurrect,
);

#[actix_web::test]
async fn store_errors_are_opaque_5xx() {
    let clock = ManualClock::starting_now();
    let store = Faulty::new(MemoryStore::builder().clock(clock.clone()).build());
    let key = Key::generate();
    let layer = session_actix::SessionLayer::builder(store.clone(), key.clone())
        .clock(clock)
        .build()
        .unwrap();
    let app = common::app(layer).await;
    let mut client = Client::new();
    client.post(&app, "/inc").await;
    let cookie = client.cookie.clone().unwrap();

    store.set_down(true);
    // Load fails.
    let reply = client.get(&app, "/count").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.body, "session error");
    assert!(!reply.body.contains(cookie.value()));
    // Save of a new session fails.
    let reply = Client::new().post(&app, "/inc").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.body, "session error");
    // A request that needs no session still works.
    assert_eq!(
        Client::new().get(&app, "/public").await.status,
        StatusCode::OK
    );

    store.set_down(false);
    assert_eq!(client.get(&app, "/count").await.body, "1");
}

/// A record without a binding fingerprint, under a policy that binds (the default binds
/// the User-Agent), cannot be checked: the session is refused (a fresh one), never served
/// with its checks switched off. (Metadata that does not decode is a corrupt record: see
/// the logs test.)
async fn unbound_record_fails_closed<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b)).await;
    let token = SessionToken::generate().unwrap();
    let now = session_core::Clock::now(&f.clock);
    let mut record = Record::new(now, now + std::time::Duration::from_secs(600));
    record.insert("count", &41).unwrap();
    assert!(f.store.create(&token.hash(), &record).await.unwrap());
    let mut client = Client::new();
    client.cookie = Some(forge_cookie(&key, token.as_str()));
    assert_eq!(
        client.get(&app, "/count").await.body,
        "0",
        "refused, not trusted"
    );
}

/// A value larger than the layer's maximum is refused with an opaque error and nothing
/// is stored; the session keeps what it had.
async fn an_oversized_record_is_refused_and_nothing_is_stored<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = actix_web::test::init_service(
        actix_web::App::new()
            .wrap(common::layer(&f, &key, |b| b.max_record_bytes(32 * 1024)))
            .route(
                "/inc",
                actix_web::web::post().to(|session: actix_session::Session| async move {
                    let n = session.get::<u32>("count").unwrap().unwrap_or(0) + 1;
                    session.insert("count", n).unwrap();
                    n.to_string()
                }),
            )
            .route(
                "/big",
                actix_web::web::post().to(|session: actix_session::Session| async move {
                    session.insert("blob", "x".repeat(8 * 1024 * 1024)).unwrap();
                    "stored?"
                }),
            ),
    )
    .await;
    let mut client = Client::new();
    assert_eq!(client.post(&app, "/inc").await.body, "1");
    let token = common::token_of(&key, client.cookie.as_ref().unwrap());
    let reply = client.post(&app, "/big").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        !reply.body.contains("max_record_bytes"),
        "opaque: {}",
        reply.body
    );
    let stored = f.store.load(&token.hash()).await.unwrap().unwrap();
    assert!(
        stored.get::<String>("blob").unwrap().is_none(),
        "nothing stored"
    );
    assert_eq!(stored.get::<u32>("count").unwrap(), Some(1));
    // A new session that would be too large is not created either.
    let mut fresh = Client::new();
    assert_eq!(
        fresh.post(&app, "/big").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert!(fresh.cookie.is_none(), "no session was created");
}

mod review {
    use super::*;
    both_stores!(
        unbound_record_fails_closed,
        an_oversized_record_is_refused_and_nothing_is_stored
    );
}
