//! An application that depends on `session-actix` alone: its `#[session]` state and the
//! store it picks from configuration. The test next to it drives it.

use actix_web::{web, HttpResponse};
use session_actix::{
    session,
    store::{DynStore, MemoryStore, PostgresStore, RedisStore, SqliteStore, TieredStore},
    StoreError, Typed,
};

/// The application's session state.
#[session(version = 1)]
#[derive(Debug, Default)]
pub struct Cart {
    /// Items in the cart.
    #[session(default)]
    pub items: Vec<String>,
}

/// Where sessions live, chosen at run time: Redis in front of PostgreSQL when the
/// configuration gives both, else an in-process cache in front of SQLite in memory. One
/// type either way.
///
/// # Errors
///
/// If SQLite cannot be opened.
pub async fn store(server: Option<(RedisStore, PostgresStore)>) -> Result<DynStore, StoreError> {
    match server {
        Some((cache, durable)) => Ok(DynStore::new(TieredStore::new(cache, durable))),
        None => {
            let durable = SqliteStore::connect("sqlite::memory:").await?;
            Ok(DynStore::new(TieredStore::new(MemoryStore::new(), durable)))
        }
    }
}

/// `POST /add/{item}`: adds an item and answers with the cart's size.
pub async fn add(mut cart: Typed<Cart>, item: web::Path<String>) -> HttpResponse {
    cart.items.push(item.into_inner());
    HttpResponse::Ok().body(cart.items.len().to_string())
}
