//! Cookie attributes, cache headers, and layer configuration.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use actix_web::{
    cookie::{Key, SameSite},
    http::header,
};
use common::{both_stores, Client, Fixture};
use session_actix::{ConfigError, SessionLayer};
use session_core::{store::MemoryStore, Store};

async fn strict_defaults<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b)).await;
    let mut client = Client::new();

    // A request that stores nothing sets no cookie.
    let reply = client.get(&app, "/public").await;
    assert!(reply.set_cookie.is_none());
    assert!(reply.headers.get(header::CACHE_CONTROL).is_none());

    let reply = client.post(&app, "/inc").await;
    let cookie = reply.set_cookie.expect("session cookie");
    assert_eq!(cookie.name(), "session");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(cookie.same_site(), Some(SameSite::Lax));
    assert_eq!(cookie.path(), Some("/"));
    assert_eq!(cookie.domain(), None);
    assert_eq!(
        cookie.max_age(),
        Some(actix_web::cookie::time::Duration::hours(2))
    );
    // Encrypted: the value is not a bare token.
    assert_ne!(cookie.value().len(), 43);
    assert_eq!(
        reply.headers.get(header::CACHE_CONTROL).unwrap(),
        "no-store"
    );
    assert_eq!(reply.headers.get(header::VARY).unwrap(), "Cookie");
}

async fn browser_session_cookie_and_custom_attributes<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| {
        b.persistent_cookie(false)
            .cookie_same_site(SameSite::Strict)
            .cookie_path("/")
            .cookie_domain("example.test")
    }))
    .await;
    let cookie = Client::new().post(&app, "/inc").await.set_cookie.unwrap();
    assert_eq!(
        cookie.max_age(),
        None,
        "set_cookie_expires = false: no Max-Age"
    );
    assert_eq!(cookie.expires(), None);
    assert_eq!(cookie.same_site(), Some(SameSite::Strict));
    assert_eq!(cookie.domain(), Some("example.test"));
}

async fn idle_timeout_sets_max_age<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| {
        b.idle_timeout(Duration::from_secs(600))
    }))
    .await;
    let cookie = Client::new().post(&app, "/inc").await.set_cookie.unwrap();
    assert_eq!(
        cookie.max_age(),
        Some(actix_web::cookie::time::Duration::minutes(10))
    );
}

both_stores!(
    strict_defaults,
    browser_session_cookie_and_custom_attributes,
    idle_timeout_sets_max_age
);

#[actix_web::test]
async fn host_prefix_cookie() {
    let store = MemoryStore::new();
    let ok = SessionLayer::builder(store.clone(), Key::generate())
        .cookie_name("__Host-session")
        .build();
    assert!(ok.is_ok());
    let err = SessionLayer::builder(store.clone(), Key::generate())
        .cookie_name("__Host-session")
        .cookie_domain("example.test")
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::HostPrefix));
    let err = SessionLayer::builder(store.clone(), Key::generate())
        .cookie_name("__Host-session")
        .cookie_secure(false)
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::HostPrefix));
    for bad in ["", "a b", "semi;colon"] {
        assert!(matches!(
            SessionLayer::builder(store.clone(), Key::generate())
                .cookie_name(bad)
                .build(),
            Err(ConfigError::CookieName(_))
        ));
    }
    assert!(matches!(
        SessionLayer::builder(store, Key::generate())
            .idle_timeout(Duration::ZERO)
            .build(),
        Err(ConfigError::ZeroDuration("idle_timeout"))
    ));
}

#[actix_web::test]
async fn host_prefix_cookie_round_trip() {
    let layer = SessionLayer::builder(MemoryStore::new(), Key::generate())
        .cookie_name("__Host-session")
        .build()
        .unwrap();
    let app = common::app(layer).await;
    let req = actix_web::test::TestRequest::post()
        .uri("/inc")
        .to_request();
    let res = actix_web::test::call_service(&app, req).await;
    let cookie = res.response().cookies().next().unwrap().into_owned();
    assert_eq!(cookie.name(), "__Host-session");
    let req = actix_web::test::TestRequest::post()
        .uri("/inc")
        .cookie(cookie)
        .to_request();
    assert_eq!(actix_web::test::call_and_read_body(&app, req).await, "2");
}

#[actix_web::test]
async fn signed_cookie_content_round_trips() {
    let key = Key::generate();
    let layer = SessionLayer::builder(MemoryStore::new(), key.clone())
        .cookie_content_security(session_actix::CookieContentSecurity::Signed)
        .build()
        .unwrap();
    let app = common::app(layer).await;
    let mut client = Client::new();
    assert_eq!(client.post(&app, "/inc").await.body, "1");
    let cookie = client.cookie.clone().unwrap();
    // Signed, not encrypted: the value is the token plus a MAC, readable by the client.
    let codec = session_actix::CookieCodec::server_side(
        &key,
        "session",
        session_actix::CookieContentSecurity::Signed,
    );
    let token = codec.open_id(cookie.value()).expect("valid signature");
    let (payload, _mac) = cookie.value()[1..].split_once('.').unwrap();
    use base64::Engine as _;
    let readable = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    assert_eq!(readable, token.to_bytes());
    assert_eq!(client.get(&app, "/count").await.body, "1");
    // A changed signature is refused: a fresh session. The last character of the MAC is
    // replaced by another one, so the value differs by construction.
    let value = cookie.value();
    let last = value.as_bytes()[value.len() - 1];
    let other = if last == b'A' { 'B' } else { 'A' };
    let mut forged = client.clone();
    forged.cookie = Some(actix_web::cookie::Cookie::new(
        "session",
        format!("{}{other}", &value[..value.len() - 1]),
    ));
    assert_ne!(forged.cookie.as_ref().unwrap().value(), value);
    assert_eq!(forged.get(&app, "/count").await.body, "0");
}

/// A response to a request that carried the session, even one that sets no cookie, is
/// private to that visitor: a shared cache must not serve it to anyone else.
async fn responses_that_depend_on_the_session_are_private<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b)).await;
    let mut client = Client::new();
    client.post(&app, "/inc").await;
    let reply = client.get(&app, "/count").await;
    assert!(reply.set_cookie.is_none(), "no cookie re-issued");
    assert_eq!(reply.headers.get(header::CACHE_CONTROL).unwrap(), "private");
    assert_eq!(reply.headers.get(header::VARY).unwrap(), "Cookie");
    // Without a session cookie nothing is added.
    let reply = Client::new().get(&app, "/public").await;
    assert!(reply.headers.get(header::VARY).is_none());
}

mod private_responses {
    use super::*;
    both_stores!(responses_that_depend_on_the_session_are_private);
}

#[test]
fn the_defaults_need_no_error_handling() {
    // `new` cannot fail: only settings a builder was given can be wrong.
    let layer: SessionLayer<MemoryStore> = SessionLayer::new(MemoryStore::new(), Key::generate());
    assert!(layer.store().is_some());
}

#[test]
fn settings_that_would_be_clamped_or_contradict_are_refused_with_what_to_change() {
    let builder = || SessionLayer::builder(MemoryStore::new(), Key::generate());
    let err = builder()
        .idle_timeout(Duration::from_secs(3600))
        .absolute_timeout(Duration::from_secs(600))
        .build()
        .unwrap_err();
    assert!(
        matches!(err, ConfigError::AbsoluteShorterThanIdle { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("no_absolute_timeout()"), "{err}");
    assert!(builder()
        .idle_timeout(Duration::from_secs(3600))
        .no_absolute_timeout()
        .build()
        .is_ok());

    let err = builder().clean_check_percent(101).build().unwrap_err();
    assert!(matches!(err, ConfigError::CleanCheckPercent(101)), "{err}");
    assert!(builder().clean_check_percent(100).build().is_ok());

    let err = builder().ip_prefixes(33, 64).build().unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::IpPrefix {
                family: "IPv4",
                given: 33,
                max: 32
            }
        ),
        "{err}"
    );
    let err = builder().ip_prefixes(24, 129).build().unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::IpPrefix {
                family: "IPv6",
                given: 129,
                max: 128
            }
        ),
        "{err}"
    );
    assert!(builder().ip_prefixes(32, 128).build().is_ok());
}

#[test]
fn rotation_shorter_than_its_grace_window_is_refused() {
    let err = SessionLayer::builder(MemoryStore::new(), Key::generate())
        .token_rotation(Duration::from_secs(5))
        .rotation_grace(Duration::from_secs(30))
        .build()
        .unwrap_err();
    assert!(
        matches!(err, ConfigError::RotationShorterThanGrace { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("rotation_grace"), "{err}");
    // Rotation off: any grace is fine.
    assert!(SessionLayer::builder(MemoryStore::new(), Key::generate())
        .no_token_rotation()
        .rotation_grace(Duration::from_secs(30))
        .build()
        .is_ok());
}
