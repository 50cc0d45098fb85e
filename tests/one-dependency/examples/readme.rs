//! The application snippet of the README, compiled with the workspace so it stays true.

use actix_web::{cookie::Key, web, App, HttpServer};
use session_actix::{
    session,
    store::{MemoryStore, SqliteStore, TieredStore},
    SessionLayer, Typed,
};

#[session]
#[derive(Default)]
struct Visits {
    #[session(default)]
    count: u32,
}

async fn index(mut visits: Typed<Visits>) -> String {
    visits.count += 1;
    format!("visit number {}", visits.count)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let durable = SqliteStore::connect("sqlite://sessions.db").await?;
    let store = TieredStore::new(MemoryStore::new(), durable);
    // Production: a secret of 64+ random bytes from configuration, the same in every process.
    let layer = SessionLayer::new(store, Key::generate());
    HttpServer::new(move || {
        App::new()
            .wrap(layer.clone())
            .route("/", web::get().to(index))
    })
    .bind("127.0.0.1:8080")?
    .run()
    .await
}
