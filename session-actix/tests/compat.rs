//! Crates written for actix-session work under the layer: actix-identity 0.9's login and
//! logout flow, end to end.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use actix_identity::{Identity, IdentityMiddleware};
use actix_web::{cookie::Key, test, web, App, HttpMessage as _, HttpRequest, HttpResponse};
use common::{both_stores, Client, Fixture};
use session_core::Store;

async fn actix_identity_login_and_logout<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = test::init_service(
        App::new()
            .wrap(IdentityMiddleware::default())
            .wrap(common::layer(&f, &key, |b| b))
            .route(
                "/login",
                web::post().to(|req: HttpRequest| async move {
                    Identity::login(&req.extensions(), "alice".to_owned()).unwrap();
                    HttpResponse::Ok().body("signed in")
                }),
            )
            .route(
                "/whoami",
                web::get().to(|user: Option<Identity>| async move {
                    match user {
                        Some(user) => user.id().unwrap(),
                        None => "anonymous".to_owned(),
                    }
                }),
            )
            .route(
                "/logout",
                web::post().to(|user: Identity| async move {
                    user.logout();
                    HttpResponse::Ok().body("signed out")
                }),
            ),
    )
    .await;

    let mut client = Client::new();
    assert_eq!(client.get(&app, "/whoami").await.body, "anonymous");
    let reply = client.post(&app, "/login").await;
    assert_eq!(reply.body, "signed in");
    let signed_in = reply.set_cookie.expect("a session cookie at login");
    assert_eq!(client.get(&app, "/whoami").await.body, "alice");
    assert_eq!(client.get(&app, "/whoami").await.body, "alice");

    // Logout purges the session: the cookie is removed and the old one no longer works.
    let reply = client.post(&app, "/logout").await;
    assert_eq!(reply.body, "signed out");
    let removal = reply.set_cookie.expect("the cookie is removed");
    assert_eq!(
        removal.max_age(),
        Some(actix_web::cookie::time::Duration::ZERO)
    );
    assert_eq!(client.get(&app, "/whoami").await.body, "anonymous");
    let mut replay = Client::new();
    replay.cookie = Some(signed_in);
    assert_eq!(
        replay.get(&app, "/whoami").await.body,
        "anonymous",
        "the session ended on the server too"
    );
}

both_stores!(actix_identity_login_and_logout);
