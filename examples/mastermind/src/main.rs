//! `cargo run -p mastermind`: the game on http://127.0.0.1:8080.

use std::time::Duration;

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
    let (store, tiers) = store_from_env("mastermind").await?;
    let layer = SessionLayer::builder(store, key)
        .cookie_secure(cookie_secure())
        // Shown on purpose: a session is bound to the client's address and browser, and its
        // id changes every 5 minutes (the old one keeps working for 30 seconds).
        .check_ip(true)
        .check_user_agent(true)
        .token_rotation(Duration::from_secs(5 * 60))
        .idle_timeout(Duration::from_secs(2 * 60 * 60))
        .build()?;
    // The session layer's metrics (session_core::telemetry), for Prometheus to scrape.
    if let Ok(metrics_addr) = std::env::var("METRICS_ADDR") {
        let socket: std::net::SocketAddr = metrics_addr
            .parse()
            .map_err(|err| Fatal::from(format!("METRICS_ADDR is {metrics_addr:?}: {err}")))?;
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(socket)
            .install()
            .map_err(|err| Fatal::from(format!("metrics on {socket} (METRICS_ADDR): {err}")))?;
        tracing::info!("metrics on http://{socket}/metrics");
    }
    let addr = listen_addr("MASTERMIND_ADDR", "127.0.0.1:8080");
    let tiers = web::Data::new(tiers);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(layer.clone())
            .app_data(tiers.clone())
            .configure(mastermind::web::routes)
    })
    .bind(&addr)
    .map_err(|err| bind_error(&addr, "MASTERMIND_ADDR", &err))?;
    for bound in server.addrs() {
        tracing::info!("Mastermind is ready on http://{bound}");
    }
    Ok(server.run().await?)
}
