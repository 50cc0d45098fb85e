//! The sessions of a user through the layer: sign in on three clients, list them, end one,
//! end all others, sign out; what each costs. Over the memory store and the tiered Redis +
//! PostgreSQL store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use actix_web::{
    body::MessageBody,
    cookie::Key,
    dev::{Service, ServiceResponse},
    test, web, App, HttpResponse,
};
use common::{Client, Fixture};
use session_actix::{Session, SessionLayer, UserSessions};
use session_core::{lifecycle::UserKey, Store};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
const SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";

async fn app<S: Store + Clone>(
    layer: SessionLayer<S>,
) -> impl Service<
    actix_http::Request,
    Response = ServiceResponse<impl MessageBody>,
    Error = actix_web::Error,
> {
    test::init_service(
        App::new()
            .wrap(layer)
            .route(
                "/sign-in/{user}",
                web::post().to(
                    |session: Session, users: UserSessions, user: web::Path<String>| async move {
                        session.renew();
                        users.attach(user.into_inner())?;
                        Ok::<_, actix_web::Error>("signed in")
                    },
                ),
            )
            .route(
                "/attach-only/{user}",
                web::post().to(|users: UserSessions, user: web::Path<String>| async move {
                    // A sign-in that forgets `renew()`: attaching renews the id anyway.
                    users.attach(user.into_inner())?;
                    Ok::<_, actix_web::Error>("signed in")
                }),
            )
            .route(
                "/whoami",
                web::get().to(|users: UserSessions| async move {
                    users.user().unwrap_or_else(|| "nobody".to_owned())
                }),
            )
            .route(
                "/devices",
                web::get().to(|users: UserSessions| async move {
                    let mut page = String::new();
                    for s in users.list().await? {
                        let mark = if s.current { "*" } else { "" };
                        page.push_str(&format!("{}|{}{mark}\n", s.id, s.agent));
                    }
                    Ok::<_, actix_web::Error>(page)
                }),
            )
            .route(
                "/end/{id}",
                web::post().to(|users: UserSessions, id: web::Path<String>| async move {
                    Ok::<_, actix_web::Error>(users.end(&id).await?.to_string())
                }),
            )
            .route(
                "/end-others",
                web::post().to(|users: UserSessions| async move {
                    Ok::<_, actix_web::Error>(users.end_others().await?.to_string())
                }),
            )
            .route(
                "/end-all",
                web::post().to(|users: UserSessions| async move {
                    Ok::<_, actix_web::Error>(users.end_all().await?.to_string())
                }),
            )
            .route(
                "/detach",
                web::post().to(|users: UserSessions| async move {
                    users.detach();
                    "detached"
                }),
            )
            .route(
                "/sign-out",
                web::post().to(|session: Session| async move {
                    session.purge();
                    "bye"
                }),
            )
            .route(
                "/inc",
                web::post().to(|session: Session| async move {
                    let n = session.get::<u32>("count").unwrap().unwrap_or(0) + 1;
                    session.insert("count", n).unwrap();
                    n.to_string()
                }),
            )
            .route(
                "/count",
                web::get().to(|session: Session| async move {
                    let keys = session.entries().keys().cloned().collect::<Vec<_>>();
                    assert!(!keys.iter().any(|k| k.starts_with("__")), "{keys:?}");
                    session
                        .get::<u32>("count")
                        .unwrap()
                        .unwrap_or(0)
                        .to_string()
                }),
            )
            .route(
                "/raw-user",
                web::post().to(|session: Session| async move {
                    // A handler cannot attach by writing the reserved key.
                    session.insert("__user", "mallory").unwrap();
                    HttpResponse::Ok().body("tried")
                }),
            ),
    )
    .await
}

fn client(agent: &str) -> Client {
    let mut client = Client::new();
    client.user_agent = agent.to_owned();
    client
}

/// The entries of `user`'s index, as stored.
async fn index_entries<S: Store>(store: &S, user: &str) -> usize {
    store
        .load(&UserKey::namespaced("session").index_of(user))
        .await
        .unwrap()
        .map_or(0, |index| index.state.len())
}

async fn three_clients_end_all_but_one<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let layer = common::layer(&f, &key, |b| b.cookie_secure(false));
    let admin = layer.clone();
    let app = app(layer).await;
    let mut clients = [client(FIREFOX), client(CHROME), client(SAFARI)];
    for c in &mut clients {
        assert_eq!(c.post(&app, "/sign-in/alice").await.body, "signed in");
        assert_eq!(c.post(&app, "/inc").await.body, "1");
        assert_eq!(c.get(&app, "/whoami").await.body, "alice");
    }
    let mut bob = client(FIREFOX);
    bob.post(&app, "/sign-in/bob").await;
    assert_eq!(index_entries(&f.store, "alice").await, 3);

    let page = clients[0].get(&app, "/devices").await.body;
    let lines: Vec<&str> = page.lines().collect();
    assert_eq!(lines.len(), 3, "{page}");
    assert_eq!(
        lines.iter().filter(|l| l.ends_with('*')).count(),
        1,
        "{page}"
    );
    assert!(page.contains("|Firefox on Linux*"), "{page}");
    assert!(page.contains("|Chrome on Windows\n"), "{page}");
    assert!(page.contains("|Safari on iOS\n"), "{page}");

    assert_eq!(clients[0].post(&app, "/end-others").await.body, "2");
    for c in &mut clients[1..] {
        assert_eq!(c.get(&app, "/count").await.body, "0", "an empty session");
        assert_eq!(c.get(&app, "/whoami").await.body, "nobody");
    }
    assert_eq!(index_entries(&f.store, "alice").await, 1, "one entry left");
    assert_eq!(clients[0].get(&app, "/count").await.body, "1", "kept");
    let page = clients[0].get(&app, "/devices").await.body;
    assert_eq!(page.lines().count(), 1, "{page}");
    assert_eq!(
        admin.user_sessions("bob").await.unwrap().len(),
        1,
        "bob untouched"
    );
    assert_eq!(bob.get(&app, "/whoami").await.body, "bob");

    // End one by its id, from another device of the same user.
    clients[1].post(&app, "/sign-in/alice").await;
    let page = clients[1].get(&app, "/devices").await.body;
    let other = page
        .lines()
        .find(|l| !l.ends_with('*'))
        .and_then(|l| l.split('|').next())
        .unwrap()
        .to_owned();
    assert_eq!(
        clients[1].post(&app, &format!("/end/{other}")).await.body,
        "true"
    );
    assert_eq!(
        clients[0].get(&app, "/whoami").await.body,
        "nobody",
        "ended"
    );
    assert_eq!(clients[1].post(&app, "/end/unknown").await.body, "false");

    // End all: this one too, with this response.
    let reply = clients[1].post(&app, "/end-all").await;
    assert_eq!(reply.body, "1");
    assert!(
        reply.set_cookie.is_some_and(|c| c.value().is_empty()),
        "cookie removed"
    );
    assert_eq!(clients[1].get(&app, "/whoami").await.body, "nobody");
    assert!(admin.user_sessions("alice").await.unwrap().is_empty());
    assert_eq!(index_entries(&f.store, "alice").await, 0);
    assert_eq!(admin.end_user_sessions("bob").await.unwrap(), 1);
    assert_eq!(bob.get(&app, "/whoami").await.body, "nobody");
}

async fn sign_out_and_detach<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = app(common::layer(&f, &key, |b| b.cookie_secure(false))).await;
    let (mut a, mut b) = (client(FIREFOX), client(CHROME));
    a.post(&app, "/sign-in/dora").await;
    b.post(&app, "/sign-in/dora").await;
    b.post(&app, "/inc").await;
    assert_eq!(index_entries(&f.store, "dora").await, 2);
    a.post(&app, "/sign-out").await;
    assert_eq!(
        index_entries(&f.store, "dora").await,
        1,
        "signing out removes the entry"
    );
    assert_eq!(b.post(&app, "/detach").await.body, "detached");
    assert_eq!(index_entries(&f.store, "dora").await, 0, "detaching too");
    assert_eq!(b.get(&app, "/whoami").await.body, "nobody");
    assert_eq!(b.get(&app, "/count").await.body, "1", "the session stays");
    // The reserved key cannot be written by a handler.
    b.post(&app, "/raw-user").await;
    assert_eq!(b.get(&app, "/whoami").await.body, "nobody");
    assert_eq!(b.get(&app, "/devices").await.body, "");
}

/// An attached session costs what any session costs: a read is one store read, a write
/// one write (one statement and one cache command in the tiered store); only the sign-in
/// and, once per idle timeout, the index extension touch the index.
async fn costs<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = app(common::layer(&f, &key, |b| {
        // No cleanup on a share of writes: it would count.
        b.cookie_secure(false)
            .idle_timeout(Duration::from_secs(600))
            .clean_check_percent(0)
    }))
    .await;
    let mut c = client(FIREFOX);
    c.post(&app, "/inc").await;
    c.post(&app, "/sign-in/erin").await;
    (f.costs)();
    c.get(&app, "/count").await;
    let (cache, durable) = (f.costs)();
    assert_eq!(
        cache.total() + durable.total(),
        1,
        "a read: {cache:?} {durable:?}"
    );
    assert_eq!(cache.load, 1, "from the cache");
    c.post(&app, "/inc").await;
    let (cache, durable) = (f.costs)();
    let tiered = durable.total() > 0;
    let write = if tiered { 3 } else { 2 }; // the load, the update (and the cache put)
    assert_eq!(
        cache.total() + durable.total(),
        write,
        "a write: {cache:?} {durable:?}"
    );
    f.clock.advance(Duration::from_secs(300));
    c.post(&app, "/inc").await;
    let (cache, durable) = (f.costs)();
    assert_eq!(
        cache.total() + durable.total(),
        write,
        "no extension yet: {cache:?} {durable:?}"
    );
    // Past an idle timeout since the sign-in, the index is extended, once.
    f.clock.advance(Duration::from_secs(310));
    c.post(&app, "/inc").await;
    let (cache, durable) = (f.costs)();
    let extension = cache.total() + durable.total() - write;
    // The index read from the store of record and written (in the tiered store: a
    // statement and a cache put each way, the read refilling the cache).
    let expected = if tiered { 4 } else { 2 };
    assert_eq!(
        extension, expected,
        "the index read and written once: {cache:?} {durable:?}"
    );
    c.post(&app, "/inc").await;
    let (cache, durable) = (f.costs)();
    assert_eq!(
        cache.total() + durable.total(),
        write,
        "{cache:?} {durable:?}"
    );
    assert_eq!(c.get(&app, "/count").await.body, "5");
    f.clock.advance(Duration::from_secs(590));
    assert_eq!(c.get(&app, "/whoami").await.body, "erin");
    let layer = common::layer(&f, &key, |b| b.cookie_secure(false));
    assert_eq!(
        layer.user_sessions("erin").await.unwrap().len(),
        1,
        "still listed"
    );
    (f.costs)();
    // Signing out: the load; the session claimed by a conditional write and its family
    // ended (a delete and a marker for each of the two derived successors); then the
    // index lets go of the entry: read, a read of the entry's one key the request did not
    // write itself, the conditional removal (read and written). 10 calls;
    // in the tiered store a statement and a cache command for most (19).
    c.post(&app, "/sign-out").await;
    let (cache, durable) = (f.costs)();
    assert_eq!(
        cache.total() + durable.total(),
        if tiered { 19 } else { 10 },
        "a sign-out: {cache:?} {durable:?}"
    );
    assert_eq!(c.get(&app, "/whoami").await.body, "nobody");
}

/// What a "your devices" page shows moves with use: the session used last is listed first,
/// with a later `last_seen` (to within a quarter of the idle timeout), and `signed_in`
/// stays when the session was signed in.
async fn last_seen_moves_with_use<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let layer = common::layer(&f, &key, |b| {
        b.cookie_secure(false)
            .idle_timeout(Duration::from_secs(600))
    });
    let admin = layer.clone();
    let app = app(layer).await;
    let (mut a, mut b) = (client(FIREFOX), client(CHROME));
    a.post(&app, "/sign-in/gus").await;
    b.post(&app, "/sign-in/gus").await;
    let signed_in = session_core::Clock::now(&f.clock);
    // Past a quarter of the idle timeout, a read of A's refreshes it.
    f.clock.advance(Duration::from_secs(200));
    assert_eq!(a.get(&app, "/count").await.body, "0");
    let listed = admin.user_sessions("gus").await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(
        listed[0].agent, "Firefox on Linux",
        "most recently used first"
    );
    assert!(
        listed[0].last_seen >= signed_in + Duration::from_secs(200),
        "{listed:?}"
    );
    assert!(
        listed[1].last_seen < signed_in + Duration::from_secs(10),
        "{listed:?}"
    );
    for session in &listed {
        assert!(session.signed_in <= signed_in, "{session:?}");
        assert!(session.created <= session.signed_in, "{session:?}");
    }
}

/// A session past its absolute timeout is refused at its next request: it is not listed
/// either, even while its idle expiry is ahead.
async fn past_the_absolute_timeout<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = app(common::layer(&f, &key, |b| {
        b.cookie_secure(false)
            .idle_timeout(Duration::from_secs(600))
            .absolute_timeout(Duration::from_secs(720))
    }))
    .await;
    let (mut a, mut b) = (client(FIREFOX), client(CHROME));
    a.post(&app, "/sign-in/fay").await;
    f.clock.advance(Duration::from_secs(480));
    a.post(&app, "/inc").await;
    b.post(&app, "/sign-in/fay").await;
    assert_eq!(b.get(&app, "/devices").await.body.lines().count(), 2);
    f.clock.advance(Duration::from_secs(300));
    let page = b.get(&app, "/devices").await.body;
    assert_eq!(page.lines().count(), 1, "{page}");
    assert!(page.contains("Chrome on Windows*"), "{page}");
    assert_eq!(a.get(&app, "/whoami").await.body, "nobody", "refused");
}

/// Attaching a user renews the session's id even when the handler does not ask for it
/// (no fixation): the pre-sign-in id opens nothing, the new one keeps the state, and it
/// stays bound to the client's User-Agent.
async fn attaching_renews_the_id<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = app(common::layer(&f, &key, |b| b.cookie_secure(false))).await;
    let mut a = client(FIREFOX);
    a.post(&app, "/inc").await;
    let before = a.clone();
    let signed_in = a.post(&app, "/attach-only/gus").await;
    let (old, new) = (
        before.cookie.as_ref().unwrap().value().to_owned(),
        signed_in
            .set_cookie
            .expect("a new cookie")
            .value()
            .to_owned(),
    );
    assert_ne!(old, new, "a new id");
    assert_eq!(a.get(&app, "/whoami").await.body, "gus");
    assert_eq!(
        a.get(&app, "/count").await.body,
        "1",
        "the state carried over"
    );
    let mut fixated = before;
    assert_eq!(fixated.get(&app, "/whoami").await.body, "nobody");
    assert_eq!(
        fixated.get(&app, "/count").await.body,
        "0",
        "the old id is ended"
    );
    let mut other_browser = a.clone();
    other_browser.user_agent = CHROME.to_owned();
    assert_eq!(
        other_browser.get(&app, "/whoami").await.body,
        "nobody",
        "still bound to the User-Agent"
    );
    assert_eq!(index_entries(&f.store, "gus").await, 1);
}

/// With `max_sessions_per_user(1)`, signing in on a second browser signs the first out.
async fn one_session_per_user<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = app(common::layer(&f, &key, |b| {
        b.cookie_secure(false).max_sessions_per_user(1)
    }))
    .await;
    let (mut a, mut b) = (client(FIREFOX), client(CHROME));
    a.post(&app, "/sign-in/hal").await;
    a.post(&app, "/inc").await;
    f.clock.advance(Duration::from_secs(1));
    b.post(&app, "/sign-in/hal").await;
    assert_eq!(b.get(&app, "/whoami").await.body, "hal");
    assert_eq!(a.get(&app, "/whoami").await.body, "nobody", "signed out");
    assert_eq!(a.get(&app, "/count").await.body, "0");
    assert_eq!(index_entries(&f.store, "hal").await, 1);
    let page = b.get(&app, "/devices").await.body;
    assert!(page.contains("Chrome on Windows*"), "{page}");
    assert_eq!(page.lines().count(), 1, "{page}");
    // Signing in again on the same client replaces its own entry: it stays signed in.
    f.clock.advance(Duration::from_secs(1));
    b.post(&app, "/sign-in/hal").await;
    assert_eq!(
        b.get(&app, "/whoami").await.body,
        "hal",
        "not signed out by itself"
    );
    assert_eq!(index_entries(&f.store, "hal").await, 1);
}

macro_rules! per_store {
    ($($case:ident),*) => {
        mod memory {
            use super::*;
            $(
                #[actix_web::test]
                async fn $case() {
                    let Some(f) = common::memory().await else { return };
                    super::$case(f).await;
                }
            )*
        }
        mod tiered_redis_postgres {
            use super::*;
            $(
                #[actix_web::test]
                async fn $case() {
                    let Some(f) = common::tiered().await else { return };
                    super::$case(f).await;
                }
            )*
        }
    };
}

/// The same requests on every other store: the index works wherever sessions live.
macro_rules! on_every_other_store {
    ($($case:ident),*) => {
        $(
            mod $case {
                use super::*;

                #[actix_web::test]
                async fn redis() {
                    let Some(f) = common::redis().await else { return };
                    super::$case(f).await;
                }

                #[actix_web::test]
                async fn postgres() {
                    let Some(f) = common::postgres().await else { return };
                    super::$case(f).await;
                }

                #[actix_web::test]
                async fn sqlite() {
                    let Some(f) = common::sqlite().await else { return };
                    super::$case(f).await;
                }

                #[actix_web::test]
                async fn tiered_memory_sqlite() {
                    let Some(f) = common::tiered_sqlite().await else { return };
                    super::$case(f).await;
                }
            }
        )*
    };
}

on_every_other_store!(
    three_clients_end_all_but_one,
    sign_out_and_detach,
    one_session_per_user
);

per_store!(
    three_clients_end_all_but_one,
    sign_out_and_detach,
    costs,
    past_the_absolute_timeout,
    attaching_renews_the_id,
    one_session_per_user,
    last_seen_moves_with_use
);
