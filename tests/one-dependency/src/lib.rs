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

/// The next version of the cart: items with a quantity. Carts of version 1 are carried
/// over on their first load.
#[session(namespace = "cart", version = 2, migrate(from = 1, with = cart_v1_to_v2))]
#[derive(Debug, Default)]
pub struct CartV2 {
    /// Items and how many of each.
    #[session(default)]
    pub lines: Vec<(String, u32)>,
}

/// One line per item of a version-1 cart.
///
/// # Errors
///
/// Never; the signature allows a migration to fail.
pub fn cart_v1_to_v2(old: Cart) -> Result<CartV2, std::convert::Infallible> {
    let mut lines: Vec<(String, u32)> = Vec::new();
    for item in old.items {
        match lines.iter_mut().find(|(name, _)| *name == item) {
            Some((_, count)) => *count += 1,
            None => lines.push((item, 1)),
        }
    }
    Ok(CartV2 { lines })
}

/// `GET /v1`: the version-1 cart's size.
pub async fn size_v1(cart: Typed<Cart>) -> HttpResponse {
    HttpResponse::Ok().body(cart.items.len().to_string())
}

/// `GET /v2`: the version-2 cart as `name×count` lines.
pub async fn lines_v2(cart: Typed<CartV2>) -> HttpResponse {
    let body: Vec<String> = cart.lines.iter().map(|(n, c)| format!("{n}x{c}")).collect();
    HttpResponse::Ok().body(body.join(","))
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
