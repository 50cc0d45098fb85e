//! `cargo run -p login`: sign in with a name, a page that needs it, sign out. The third
//! lesson of the README's tutorial.
#![forbid(unsafe_code)]

use actix_web::{web, App, HttpServer};
use example_support::{
    bind_error, cookie_key, cookie_secure, init_logging, listen_addr, store_from_env, Fatal,
};
use session_actix::SessionLayer;

#[actix_web::main]
async fn main() -> Result<(), Fatal> {
    init_logging();
    // The secret first: a bad one fails before any connection is tried.
    let key = cookie_key()?;
    let (store, tiers) = store_from_env("login").await?;
    let layer = SessionLayer::builder(store, key)
        .cookie_secure(cookie_secure())
        // A login is worth binding to the browser that made it.
        .check_user_agent(true)
        .build()?;
    let addr = listen_addr("LOGIN_ADDR", "127.0.0.1:8082");
    let tiers = web::Data::new(tiers);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(layer.clone())
            .app_data(tiers.clone())
            .configure(login::pages::routes)
    })
    .bind(&addr)
    .map_err(|err| bind_error(&addr, "LOGIN_ADDR", &err))?;
    for bound in server.addrs() {
        tracing::info!("The login example is ready on http://{bound}");
    }
    Ok(server.run().await?)
}
