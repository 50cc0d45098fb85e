//! The one-dependency application, run on both stores it can choose.
#![allow(clippy::expect_used)] // a failed step fails the test

use actix_web::{cookie::Key, test, web, App};
use one_dependency::{add, lines_v2, size_v1, store, Cart};
use session_actix::{
    session_core::{testing, ManualClock},
    SessionLayer, SessionSchema as _,
};

async fn adds_items_on(store: session_actix::store::DynStore) {
    let layer = SessionLayer::builder(store, Key::generate())
        .cookie_secure(false)
        .build()
        .expect("valid settings");
    let app = test::init_service(
        App::new()
            .wrap(layer)
            .route("/add/{item}", web::post().to(add))
            .route("/v1", web::get().to(size_v1))
            .route("/v2", web::get().to(lines_v2)),
    )
    .await;
    let res =
        test::call_service(&app, test::TestRequest::post().uri("/add/tea").to_request()).await;
    let cookie = res
        .response()
        .cookies()
        .next()
        .expect("a new session sets its cookie")
        .into_owned();
    assert_eq!(test::read_body(res).await, "1");
    let again = test::TestRequest::post()
        .uri("/add/milk")
        .cookie(cookie.clone())
        .to_request();
    assert_eq!(test::call_and_read_body(&app, again).await, "2");
    let again = test::TestRequest::post()
        .uri("/add/tea")
        .cookie(cookie.clone())
        .to_request();
    assert_eq!(test::call_and_read_body(&app, again).await, "3");

    // A deploy reads the cart as version 2: migrated on the first load and saved through
    // the layer, so the version-1 keys are gone from the store afterwards.
    let v2 = || {
        test::TestRequest::get()
            .uri("/v2")
            .cookie(cookie.clone())
            .to_request()
    };
    assert_eq!(test::call_and_read_body(&app, v2()).await, "teax2,milkx1");
    let v1 = test::TestRequest::get()
        .uri("/v1")
        .cookie(cookie.clone())
        .to_request();
    assert_eq!(test::call_and_read_body(&app, v1).await, "0");
    assert_eq!(test::call_and_read_body(&app, v2()).await, "teax2,milkx1");
}

#[tokio::test(flavor = "current_thread")]
async fn embedded_store() {
    let store = store(None).await.expect("SQLite in memory opens");
    adds_items_on(store).await;
}

#[tokio::test(flavor = "current_thread")]
async fn redis_in_front_of_postgres_chosen_at_run_time() {
    let clock = ManualClock::starting_now();
    let (Some(redis), Some(postgres)) = (
        testing::redis_store(&clock).await,
        testing::postgres_store(&clock).await,
    ) else {
        return; // skipped (printed), or failed under CI, by the helpers
    };
    let store = store(Some((redis, postgres))).await.expect("tiers join");
    adds_items_on(store).await;
}

#[tokio::test(flavor = "current_thread")]
async fn the_macro_resolves_through_session_actix() {
    assert_eq!(Cart::KEYS, ["cart.v1.items"]);
    assert_eq!(one_dependency::CartV2::KEYS, ["cart.v2.lines"]);
}
