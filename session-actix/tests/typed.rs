//! The typed extractor: `Typed<T>` for a `#[session]` struct.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use actix_web::cookie::Key;
use common::{both_stores, token_of, Client, Fixture, Profile};
use session_core::Store;

async fn writes_back_only_changed_fields<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b.clean_check_percent(0))).await;
    let mut client = Client::new();
    assert_eq!(client.post(&app, "/profile/visit").await.body, "1");
    let token = token_of(&key, client.cookie.as_ref().unwrap());
    let record = f.store.load(&token.hash()).await.unwrap().unwrap();
    assert_eq!(record.get::<u32>(Profile::VISITS_KEY).unwrap(), Some(1));
    assert!(
        !record.state.contains_key(Profile::NAME_KEY),
        "unchanged field not written"
    );

    assert_eq!(client.post(&app, "/profile/visit").await.body, "2");
    assert_eq!(client.get(&app, "/profile").await.body, "2:");

    // Reading, or assigning an equal value, writes nothing.
    (f.costs)();
    client.get(&app, "/profile").await;
    client.post(&app, "/profile/same").await;
    let (cache, durable) = (f.costs)();
    assert_eq!(
        cache.writes() + durable.writes(),
        0,
        "{cache:?} {durable:?}"
    );
    assert_eq!(cache.load + durable.load, 2);
}

/// `SessionAccessor` and the typed view, from a visitor's first request on (the
/// request's `Session` is created while the extractor runs).
async fn the_accessor_works_from_the_first_request<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b)).await;
    let mut client = Client::new();
    let first = client.post(&app, "/accessor/visit").await;
    assert_eq!((first.status.as_u16(), first.body.as_str()), (200, "1"));
    assert_eq!(client.post(&app, "/accessor/visit").await.body, "2");
    assert_eq!(client.get(&app, "/profile").await.body, "2:");
}

async fn nothing_stored_for_a_visitor_who_changes_nothing<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b)).await;
    let mut client = Client::new();
    let reply = client.get(&app, "/profile").await;
    assert_eq!(reply.body, "0:");
    assert!(reply.set_cookie.is_none(), "no session created");
}

both_stores!(
    writes_back_only_changed_fields,
    nothing_stored_for_a_visitor_who_changes_nothing,
    the_accessor_works_from_the_first_request
);

/// Without `.wrap(layer)`, the extractors fail with a 500 that says what is missing,
/// instead of handing out a throwaway session.
#[actix_web::test]
async fn a_forgotten_layer_is_a_clear_error() {
    use actix_web::{test, web, App};
    use session_actix::{Flash, SessionAccessor, SessionInfo, Typed};

    let app = test::init_service(
        App::new()
            .route("/typed", web::get().to(|_: Typed<Profile>| async { "ok" }))
            .route("/flash", web::get().to(|_: Flash| async { "ok" }))
            .route(
                "/accessor",
                web::get().to(|_: SessionAccessor| async { "ok" }),
            )
            .route("/info", web::get().to(|_: SessionInfo| async { "ok" })),
    )
    .await;
    for path in ["/typed", "/flash", "/accessor", "/info"] {
        let res = test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
        assert_eq!(res.status(), 500, "{path}");
        let body = test::read_body(res).await;
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains("the session middleware is not installed")
                && text.contains(".wrap(session_layer)"),
            "{path}: {text}"
        );
    }
}
