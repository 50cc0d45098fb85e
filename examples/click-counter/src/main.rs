//! `cargo run -p click-counter`: a page with a button, and the number of times this visitor
//! clicked it. The count lives in the visitor's session, on the server.
#![forbid(unsafe_code)]

use actix_web::{
    error::ErrorInternalServerError, http::header, web, App, HttpResponse, HttpServer,
};
use example_support::{
    bind_error, cookie_key, cookie_secure, init_logging, listen_addr, store_from_env, Fatal,
    KeyView, SessionPanel, Tiers,
};
use maud::{html, Markup, DOCTYPE};
use session_actix::{Session, SessionInfo, SessionLayer, Typed};
use session_core::session;

/// Everything this app keeps about a visitor: one session key, `counter.clicks`.
#[session(namespace = "counter")]
#[derive(Debug, Default)]
struct Counter {
    #[session(default)]
    clicks: u64,
}

async fn index(
    counter: Typed<Counter>,
    info: SessionInfo,
    tiers: web::Data<Tiers>,
) -> actix_web::Result<Markup> {
    let keys = vec![KeyView {
        key: Counter::CLICKS_KEY,
        value: Some(counter.clicks.into()),
        hidden: false,
        note: "how often you clicked".to_owned(),
    }];
    let writes = counter
        .changed_keys()
        .map_err(ErrorInternalServerError)?
        .into_iter()
        .map(str::to_owned)
        .collect();
    let panel = SessionPanel::new(&info, &tiers, keys, writes);
    Ok(html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Click counter" }
                style { "body{font-family:system-ui,sans-serif;text-align:center;margin:4rem 1rem}\
                         button{font-size:1.5rem;padding:.5rem 1.5rem}\
                         form{display:inline-block;margin:.5rem}#reset{font-size:1rem}\
                         .session-line{color:#555;font-size:.9rem;overflow-wrap:anywhere}" }
            }
            body {
                h1 { "Click counter" }
                p id="count" { "You clicked " strong id="clicks" { (counter.clicks) } " " (if counter.clicks == 1 { "time" } else { "times" }) "." }
                form method="post" action="/click" {
                    button type="submit" id="click" { "Click me" }
                }
                form method="post" action="/reset" {
                    button type="submit" id="reset" { "Reset" }
                }
                (panel.render_line())
            }
        }
    })
}

async fn click(mut counter: Typed<Counter>) -> HttpResponse {
    counter.clicks += 1;
    see_other("/")
}

/// Reset ends the session: the server deletes it and the browser drops the cookie.
async fn reset(session: Session) -> HttpResponse {
    session.purge();
    see_other("/")
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

#[actix_web::main]
async fn main() -> Result<(), Fatal> {
    init_logging();
    // The secret first: a bad one fails before any connection is tried.
    let key = cookie_key()?;
    let (store, tiers) = store_from_env("click-counter").await?;
    let layer = SessionLayer::builder(store, key)
        .cookie_secure(cookie_secure())
        .build()?;
    let addr = listen_addr("CLICK_COUNTER_ADDR", "127.0.0.1:8081");
    let tiers = web::Data::new(tiers);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(layer.clone())
            .app_data(tiers.clone())
            .route("/", web::get().to(index))
            .route("/click", web::post().to(click))
            .route("/reset", web::post().to(reset))
    })
    .bind(&addr)
    .map_err(|err| bind_error(&addr, "CLICK_COUNTER_ADDR", &err))?;
    for bound in server.addrs() {
        tracing::info!("Click counter is ready on http://{bound}");
    }
    Ok(server.run().await?)
}
