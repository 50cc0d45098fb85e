//! `cargo run -p click-counter`: a page with a button, and the number of times this visitor
//! clicked it. The count lives in the visitor's session, on the server.
#![forbid(unsafe_code)]

use actix_web::{http::header, web, App, HttpResponse, HttpServer};
use example_support::{
    bind_error, cookie_key, cookie_secure, init_logging, listen_addr, store_from_env, Fatal,
};
use maud::{html, Markup, DOCTYPE};
use session_actix::{SessionLayer, Typed};
use session_core::session;

/// Everything this app keeps about a visitor: one session key, `counter.clicks`.
#[session(namespace = "counter")]
#[derive(Debug, Default)]
struct Counter {
    #[session(default)]
    clicks: u64,
}

async fn index(counter: Typed<Counter>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Click counter" }
                style { "body{font-family:system-ui,sans-serif;text-align:center;margin-top:4rem}button{font-size:1.5rem;padding:.5rem 1.5rem}" }
            }
            body {
                h1 { "Click counter" }
                p { "You clicked " strong id="clicks" { (counter.clicks) } " times." }
                form method="post" action="/click" {
                    button type="submit" id="click" { "Click me" }
                }
            }
        }
    }
}

async fn click(mut counter: Typed<Counter>) -> HttpResponse {
    counter.clicks += 1;
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/"))
        .finish()
}

#[actix_web::main]
async fn main() -> Result<(), Fatal> {
    init_logging();
    // The secret first: a bad one fails before any connection is tried.
    let key = cookie_key()?;
    let store = store_from_env("click-counter").await?;
    let layer = SessionLayer::builder(store, key)
        .cookie_secure(cookie_secure())
        .build()?;
    let addr = listen_addr("CLICK_COUNTER_ADDR", "127.0.0.1:8081");
    let server = HttpServer::new(move || {
        App::new()
            .wrap(layer.clone())
            .route("/", web::get().to(index))
            .route("/click", web::post().to(click))
    })
    .bind(&addr)
    .map_err(|err| bind_error(&addr, "CLICK_COUNTER_ADDR", &err))?;
    for bound in server.addrs() {
        tracing::info!("Click counter is ready on http://{bound}");
    }
    Ok(server.run().await?)
}
