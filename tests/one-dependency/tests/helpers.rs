//! What a user tests with, through `session-actix` alone: `TestSessions` for handlers, and
//! the store conformance suite for a store chosen at run time.
#![allow(clippy::expect_used)] // a failed step fails the test

use actix_web::{test, web, App};
use one_dependency::{add, lines_v2, Cart, CartV2};
use session_actix::{
    session_core::{
        store_conformance,
        testing::{self, conformance::Fixture},
        ManualClock,
    },
    store::{DynStore, TieredStore},
    testing::TestSessions,
};

#[actix_web::test]
async fn a_handler_test_starts_from_a_given_cart() {
    let sessions = TestSessions::new();
    let app = test::init_service(
        App::new()
            .wrap(sessions.layer())
            .route("/add/{item}", web::post().to(add))
            .route("/v2", web::get().to(lines_v2)),
    )
    .await;
    let cookie = sessions
        .cookie_with(&Cart {
            items: vec!["tea".into(), "tea".into()],
        })
        .await;
    let req = test::TestRequest::post()
        .uri("/add/milk")
        .cookie(cookie)
        .to_request();
    let res = test::call_service(&app, req).await;
    let cart: Cart = sessions.state(&res).await.expect("a live session");
    assert_eq!(cart.items, ["tea", "tea", "milk"]);

    // The migration to version 2 runs on the next load; the state after it is version 2.
    let next = sessions.cookie(&res).expect("the session cookie");
    let req = test::TestRequest::get()
        .uri("/v2")
        .cookie(next)
        .to_request();
    let res = test::call_service(&app, req).await;
    let v2: CartV2 = sessions.state(&res).await.expect("migrated");
    assert_eq!(v2.lines, [("tea".to_owned(), 2), ("milk".to_owned(), 1)]);
    assert!(sessions
        .state::<Cart, _>(&res)
        .await
        .expect("live")
        .items
        .is_empty());
}

/// Redis in front of PostgreSQL behind one `DynStore`, as the application picks it.
async fn redis_postgres() -> Option<Fixture<DynStore>> {
    let clock = ManualClock::starting_now();
    let cache = testing::redis_store(&clock).await?;
    let durable = testing::postgres_store(&clock).await?;
    let store = TieredStore::builder(cache, durable)
        .clock(clock.clone())
        .build();
    Some(Fixture::new(DynStore::new(store), clock).cleanup_reclaims(true))
}

store_conformance!(dyn_redis_postgres, redis_postgres());
