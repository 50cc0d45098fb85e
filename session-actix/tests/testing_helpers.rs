//! `session_actix::testing::TestSessions`: the helpers users write handler tests with.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use actix_session::Session;
use actix_web::{
    dev::{Service, ServiceResponse},
    http::header,
    test, web, App, HttpResponse,
};
use session_actix::{session, testing::TestSessions, Typed};

#[session]
#[derive(Debug, Default, PartialEq)]
struct Cart {
    #[session(default)]
    items: Vec<String>,
    coupon: Option<String>,
}

async fn add(mut cart: Typed<Cart>, item: web::Path<String>) -> String {
    cart.items.push(item.into_inner());
    cart.items.join(",")
}

async fn show(cart: Typed<Cart>) -> String {
    cart.items.join(",")
}

async fn login(session: Session) -> HttpResponse {
    session.renew();
    session.insert("user", "ada").unwrap();
    HttpResponse::Ok().finish()
}

async fn logout(session: Session) -> HttpResponse {
    session.purge();
    HttpResponse::Ok().finish()
}

async fn user(session: Session) -> String {
    session.get::<String>("user").unwrap().unwrap_or_default()
}

async fn app(
    sessions: &TestSessions,
) -> impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error> {
    test::init_service(
        App::new()
            .wrap(sessions.layer())
            .route("/add/{item}", web::post().to(add))
            .route("/cart", web::get().to(show))
            .route("/login", web::post().to(login))
            .route("/logout", web::post().to(logout))
            .route("/user", web::get().to(user)),
    )
    .await
}

#[actix_web::test]
async fn a_request_starts_with_the_given_state_and_the_response_leaves_the_new_one() {
    let sessions = TestSessions::new();
    let app = app(&sessions).await;
    let start = Cart {
        items: vec!["tea".into()],
        coupon: Some("SPRING".into()),
    };
    let cookie = sessions.cookie_with(&start).await;
    assert!(cookie.secure().is_none(), "Secure off for plain-HTTP tests");
    let req = test::TestRequest::post()
        .uri("/add/milk")
        .cookie(cookie.clone())
        .to_request();
    let res = test::call_service(&app, req).await;
    assert!(res.status().is_success());
    let after: Cart = sessions.state(&res).await.expect("a live session");
    assert_eq!(after.items, ["tea", "milk"]);
    assert_eq!(
        after.coupon.as_deref(),
        Some("SPRING"),
        "untouched field kept"
    );
    let next = sessions.cookie(&res).expect("the session cookie");
    assert_eq!(test::read_body(res).await, "tea,milk");
    // A read sets no cookie: the helper follows the one the request carried.
    let req = test::TestRequest::get()
        .uri("/cart")
        .cookie(next.clone())
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.response().cookies().count(), 0);
    assert_eq!(sessions.cookie(&res).unwrap().value(), next.value());
    assert_eq!(sessions.state::<Cart, _>(&res).await, Some(after));
}

#[actix_web::test]
async fn plain_session_entries_and_a_renewed_then_purged_session() {
    let sessions = TestSessions::new();
    let app = app(&sessions).await;
    let cookie = sessions
        .cookie_with_entries([("user", "grace"), ("theme", "dark")])
        .await;
    let req = test::TestRequest::get()
        .uri("/user")
        .cookie(cookie.clone())
        .to_request();
    assert_eq!(test::call_and_read_body(&app, req).await, "grace");

    let req = test::TestRequest::post()
        .uri("/login")
        .cookie(cookie.clone())
        .to_request();
    let res = test::call_service(&app, req).await;
    let renewed = sessions.cookie(&res).expect("renew sets a cookie");
    assert_ne!(renewed.value(), cookie.value(), "a new id at login");
    let record = sessions.record(&res).await.expect("the renewed session");
    assert_eq!(
        record.get::<String>("user").unwrap().as_deref(),
        Some("ada")
    );
    assert_eq!(
        record.get::<String>("theme").unwrap().as_deref(),
        Some("dark")
    );

    let req = test::TestRequest::post()
        .uri("/logout")
        .cookie(renewed)
        .to_request();
    let res = test::call_service(&app, req).await;
    assert!(sessions.cookie(&res).is_none(), "the cookie is removed");
    assert!(sessions.state::<Cart, _>(&res).await.is_none());
}

#[actix_web::test]
async fn the_clock_moves_only_when_the_test_moves_it() {
    let idle = Duration::from_secs(60);
    let sessions = TestSessions::with(|b| b.idle_timeout(idle).no_absolute_timeout()).unwrap();
    let app = app(&sessions).await;
    let cookie = sessions
        .cookie_with(&Cart {
            items: vec!["tea".into()],
            coupon: None,
        })
        .await;
    let get = |cookie| {
        test::TestRequest::get()
            .uri("/cart")
            .cookie(cookie)
            .to_request()
    };
    sessions.clock().advance(idle - Duration::from_secs(1));
    assert_eq!(
        test::call_and_read_body(&app, get(cookie.clone())).await,
        "tea"
    );
    // That read refreshed the expiry (more than a quarter of the idle timeout had passed);
    // a whole idle timeout after it, the session is gone.
    sessions.clock().advance(idle + Duration::from_secs(1));
    assert_eq!(
        test::call_and_read_body(&app, get(cookie)).await,
        "",
        "idle timeout passed: an empty session"
    );
}

#[actix_web::test]
async fn sessions_are_bound_to_the_client_they_were_made_for() {
    let sessions = TestSessions::new();
    let app = app(&sessions).await;
    let cart = Cart {
        items: vec!["tea".into()],
        coupon: None,
    };
    let client = || {
        test::TestRequest::get()
            .uri("/cart")
            .peer_addr("192.0.2.10:4000".parse().unwrap())
            .insert_header((header::USER_AGENT, "test-browser/1"))
    };
    let bound = sessions
        .cookie_for(&client().to_http_request(), &cart)
        .await;
    let req = client().cookie(bound.clone()).to_request();
    assert_eq!(test::call_and_read_body(&app, req).await, "tea");
    // Another User-Agent presenting the same cookie gets an empty session.
    let req = test::TestRequest::get()
        .uri("/cart")
        .peer_addr("192.0.2.10:4000".parse().unwrap())
        .insert_header((header::USER_AGENT, "other-browser/2"))
        .cookie(bound)
        .to_request();
    assert_eq!(test::call_and_read_body(&app, req).await, "");
    // The default cookie is made for `TestRequest::default()`'s client, not this one.
    let unbound = sessions.cookie_with(&cart).await;
    let req = client().cookie(unbound).to_request();
    assert_eq!(test::call_and_read_body(&app, req).await, "");
}
