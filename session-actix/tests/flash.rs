//! Flash messages: set in one request, read exactly once in a later one.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use actix_web::{cookie::Key, http::StatusCode, test::TestRequest};
use common::{both_stores, Client, Fixture};
use session_core::{
    store::{Held, HoldAt},
    Store,
};

async fn read_exactly_once_with_levels<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b)).await;
    let mut client = Client::new();
    assert_eq!(client.post(&app, "/flash").await.body, "queued");
    assert_eq!(
        client.get(&app, "/flash").await.body,
        "success:saved|error:but mind the gap"
    );
    assert_eq!(client.get(&app, "/flash").await.body, "", "read once");
    // Another client never sees them.
    let mut other = Client::new();
    other.post(&app, "/flash").await;
    assert_eq!(client.get(&app, "/flash").await.body, "");
}

/// A request whose handler does not take `Flash` (an API call, an asset) leaves pending
/// messages for the page that shows them, and writes nothing.
async fn requests_that_do_not_show_messages_leave_them<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b)).await;
    let mut client = Client::new();
    client.post(&app, "/flash").await;
    (f.costs)();
    assert_eq!(client.get(&app, "/count").await.body, "0");
    let (cache, durable) = (f.costs)();
    assert_eq!(
        cache.writes() + durable.writes(),
        0,
        "{cache:?} {durable:?}"
    );
    assert_eq!(
        client.get(&app, "/flash").await.body,
        "success:saved|error:but mind the gap"
    );
    assert_eq!(client.get(&app, "/flash").await.body, "", "then gone");
}

/// Messages leave the session only when a handler reads them: not when it only pushes,
/// and not when another extractor of the same handler fails before it runs.
async fn only_reading_messages_removes_them<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b)).await;
    let mut client = Client::new();
    client.post(&app, "/flash").await;
    assert_eq!(client.post(&app, "/flash/more").await.body, "queued");
    let refused = client.get(&app, "/flash/strict?n=not-a-number").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        client.get(&app, "/flash").await.body,
        "success:saved|error:but mind the gap|info:and one more"
    );
    assert_eq!(client.get(&app, "/flash").await.body, "");
}

async fn disabled_flash_is_an_error<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b.integrate_flash(false))).await;
    assert_eq!(
        Client::new().get(&app, "/flash").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

/// A logout's "signed out" message: the session ends (its id is dead, its data gone) and
/// the message reaches the next page, once, from a fresh session under a new id.
async fn a_flash_pushed_after_a_purge_reaches_the_next_page<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b)).await;
    let mut client = Client::new();
    client.post(&app, "/login").await;
    assert_eq!(client.post(&app, "/inc").await.body, "1");
    let signed_in = client.clone();
    let old = common::token_of(&key, signed_in.cookie.as_ref().unwrap());

    let reply = client.post(&app, "/signout").await;
    let new_cookie = reply.set_cookie.expect("a fresh session holds the message");
    assert_ne!(common::token_of(&key, &new_cookie), old, "a new id");
    assert!(
        common::ended(&f.store, &old.hash()).await,
        "the old session is gone"
    );

    assert_eq!(client.get(&app, "/flash").await.body, "info:signed out");
    assert_eq!(
        client.get(&app, "/count").await.body,
        "0",
        "nothing of the old session"
    );
    assert_eq!(client.get(&app, "/flash").await.body, "", "read once");
    // The old cookie leads nowhere.
    let mut stale = signed_in;
    assert_eq!(stale.get(&app, "/count").await.body, "0");
    assert_eq!(stale.get(&app, "/flash").await.body, "");
}

/// A purge with nothing after it stores nothing and removes the cookie.
async fn a_plain_purge_leaves_no_session<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b)).await;
    let mut client = Client::new();
    client.post(&app, "/inc").await;
    let old = common::token_of(&key, client.cookie.as_ref().unwrap());
    let reply = client.post(&app, "/logout").await;
    let removal = reply.set_cookie.expect("the cookie is removed");
    assert_eq!(removal.value(), "");
    assert!(common::ended(&f.store, &old.hash()).await);
}

/// A page that shows the pending messages, racing a request that pushes another: the
/// pushed message survives for the next page (each message is a key of its own, so the
/// two writes change different keys).
async fn a_push_racing_a_read_keeps_the_new_message<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let held = Held::new(f.store.clone());
    let layer = session_actix::SessionLayer::builder(held.clone(), key.clone())
        .clock(f.clock.clone())
        .build()
        .unwrap();
    let app = common::app(layer).await;
    let mut client = Client::new();
    client.post(&app, "/flash").await;
    // The page loads the session and is held there...
    let page_tab = client.clone();
    held.arm(HoldAt::AfterLoad);
    let page = page_tab.send_without_keeping(&app, TestRequest::get().uri("/flash"));
    let mut page = std::pin::pin!(page);
    tokio::select! {
        _ = &mut page => panic!("the page should be held at its load"),
        () = held.reached() => {}
    }
    // ...while another request pushes a message...
    assert_eq!(client.post(&app, "/flash/more").await.body, "queued");
    // ...then the page shows (and removes) the messages it loaded.
    held.release();
    assert_eq!(page.await.body, "success:saved|error:but mind the gap");
    assert_eq!(
        client.get(&app, "/flash").await.body,
        "info:and one more",
        "the message pushed meanwhile was lost"
    );
    assert_eq!(client.get(&app, "/flash").await.body, "");
}

both_stores!(
    a_push_racing_a_read_keeps_the_new_message,
    read_exactly_once_with_levels,
    disabled_flash_is_an_error,
    requests_that_do_not_show_messages_leave_them,
    only_reading_messages_removes_them,
    a_flash_pushed_after_a_purge_reaches_the_next_page,
    a_plain_purge_leaves_no_session
);

/// Messages an earlier release stored (one list under `__flash`) are shown once, before
/// those pushed since, and then leave the session.
#[actix_web::test]
async fn messages_of_an_earlier_release_are_shown_once() {
    use actix_web::{test, web, App};
    use session_actix::{testing::TestSessions, Flash, Level};

    async fn page(flash: Flash) -> String {
        let texts: Vec<&str> = flash.messages().iter().map(|m| m.text.as_str()).collect();
        texts.join("|")
    }
    async fn push(flash: Flash) -> &'static str {
        flash.push(Level::Info, "new").unwrap();
        "queued"
    }
    let sessions = TestSessions::new();
    let app = test::init_service(
        App::new()
            .wrap(sessions.layer())
            .route("/", web::get().to(page))
            .route("/push", web::post().to(push)),
    )
    .await;
    let old = serde_json::json!([
        {"level": "success", "text": "old one"},
        {"level": "error", "text": "old two"},
    ]);
    let cookie = sessions
        .cookie_with_entries([(session_actix::FLASH_KEY, old)])
        .await;
    let pushed = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/push")
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    let cookie = sessions.cookie(&pushed).unwrap_or(cookie);
    let shown = test::TestRequest::get().uri("/").cookie(cookie.clone());
    assert_eq!(
        test::call_and_read_body(&app, shown.to_request()).await,
        "old one|old two|new"
    );
    let again = test::TestRequest::get().uri("/").cookie(cookie);
    assert_eq!(test::call_and_read_body(&app, again.to_request()).await, "");
}

/// A pending message that does not decode is dropped by the next request, whether or not
/// its handler reads messages (it would otherwise stay for good).
#[actix_web::test]
async fn an_undecodable_message_is_dropped() {
    use actix_web::{test, web, App};
    use session_actix::{testing::TestSessions, Session};

    let sessions = TestSessions::new();
    let app = test::init_service(App::new().wrap(sessions.layer()).route(
        "/",
        web::post().to(|session: Session| async move {
            session.insert("seen", true).unwrap();
            "ok"
        }),
    ))
    .await;
    let broken = format!("{}.0000000000000000000", session_actix::FLASH_KEY);
    let cookie = sessions
        .cookie_with_entries([(broken.clone(), serde_json::json!({"not": "a message"}))])
        .await;
    let res = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/")
            .cookie(cookie)
            .to_request(),
    )
    .await;
    let record = sessions.record(&res).await.expect("the session lives");
    assert!(!record.state.contains_key(&broken), "{:?}", record.state);
    assert!(record.state.contains_key("seen"));
}
