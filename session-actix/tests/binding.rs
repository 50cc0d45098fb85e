//! Binding a session to its client's IP prefix and User-Agent.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::net::IpAddr;

use actix_web::cookie::Key;
use common::{both_stores, Client, Fixture};
use session_core::Store;

/// A client that has a session with count = 1.
async fn with_session<A, B>(app: &A, ip: &str) -> Client
where
    A: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let mut client = Client::from_ip(ip);
    assert_eq!(client.post(app, "/inc").await.body, "1");
    client
}

async fn ip_change_gets_fresh_session_and_old_one_survives<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b.check_ip(true))).await;
    let owner = with_session(&app, "198.51.100.10").await;

    let mut thief = owner.clone();
    thief.peer.set_ip("192.0.2.99".parse().unwrap());
    let reply = thief.get(&app, "/count").await;
    assert_eq!(reply.body, "0", "old state not exposed");
    let reply = thief.post(&app, "/inc").await;
    assert_eq!(reply.body, "1", "a fresh session");
    assert_ne!(thief.cookie, owner.cookie, "under a new id");

    let mut owner = owner;
    assert_eq!(
        owner.get(&app, "/count").await.body,
        "1",
        "owner's session untouched"
    );
}

async fn ip_prefix_tolerance<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| {
        b.check_ip(true).ip_prefixes(24, 64)
    }))
    .await;
    let mut client = with_session(&app, "198.51.100.10").await;
    client.peer.set_ip("198.51.100.200".parse().unwrap());
    assert_eq!(client.get(&app, "/count").await.body, "1", "same /24");
    client.peer.set_ip("198.51.101.10".parse().unwrap());
    assert_eq!(client.get(&app, "/count").await.body, "0", "other /24");

    let mut v6 = with_session(&app, "2001:db8:1:2::10").await;
    v6.peer.set_ip("2001:db8:1:2:ffff::1".parse().unwrap());
    assert_eq!(v6.get(&app, "/count").await.body, "1", "same /64");
    v6.peer.set_ip("2001:db8:1:3::10".parse().unwrap());
    assert_eq!(v6.get(&app, "/count").await.body, "0", "other /64");
}

async fn user_agent_change<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    // User-Agent binding is on by default.
    let app = common::app(common::layer(&f, &key, |b| b)).await;
    let mut client = with_session(&app, "198.51.100.10").await;
    client.peer.set_ip("192.0.2.1".parse().unwrap());
    assert_eq!(
        client.get(&app, "/count").await.body,
        "1",
        "IP is not bound by default"
    );
    client.user_agent = "curl/8.0".into();
    assert_eq!(
        client.get(&app, "/count").await.body,
        "0",
        "UA change refused"
    );

    let app = common::app(common::layer(&f, &key, |b| b.check_user_agent(false))).await;
    let mut client = with_session(&app, "198.51.100.10").await;
    client.user_agent = "curl/8.0".into();
    assert_eq!(
        client.get(&app, "/count").await.body,
        "1",
        "UA not bound when off"
    );
}

async fn forged_forwarded_header_is_ignored<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let proxy: IpAddr = "10.0.0.1".parse().unwrap();
    let app = common::app(common::layer(&f, &key, |b| {
        b.check_ip(true).trusted_proxies([(proxy, 32)])
    }))
    .await;
    // A direct client (not the proxy) with a session...
    let owner = with_session(&app, "198.51.100.10").await;
    // ...stolen by an attacker elsewhere who forges X-Forwarded-For with the owner's IP.
    let mut thief = owner.clone();
    thief.peer.set_ip("192.0.2.99".parse().unwrap());
    thief
        .headers
        .push(("x-forwarded-for".into(), "198.51.100.10".into()));
    assert_eq!(
        thief.get(&app, "/count").await.body,
        "0",
        "forged header changes nothing"
    );
}

async fn trusted_proxy_forwards_the_client_ip<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let proxy: IpAddr = "10.0.0.1".parse().unwrap();
    let app = common::app(common::layer(&f, &key, |b| {
        b.check_ip(true).trusted_proxies([(proxy, 8)])
    }))
    .await;
    let mut client = Client::from_ip("10.0.0.1");
    client
        .headers
        .push(("x-forwarded-for".into(), "198.51.100.10".into()));
    assert_eq!(client.post(&app, "/inc").await.body, "1");
    // Same client, through another proxy of the trusted network, with a spoofed entry
    // prepended by the client itself: the right-most untrusted entry counts.
    client.peer.set_ip("10.0.0.2".parse().unwrap());
    client.headers = vec![("x-forwarded-for".into(), "6.6.6.6, 198.51.100.10".into())];
    assert_eq!(
        client.get(&app, "/count").await.body,
        "1",
        "proxied client recognised"
    );
    // The real client moved.
    client.headers = vec![("x-forwarded-for".into(), "198.51.100.99".into())];
    assert_eq!(
        client.get(&app, "/count").await.body,
        "0",
        "forwarded IP changed"
    );
}

mod all {
    use super::*;
    both_stores!(
        ip_change_gets_fresh_session_and_old_one_survives,
        ip_prefix_tolerance,
        user_agent_change,
        forged_forwarded_header_is_ignored,
        trusted_proxy_forwards_the_client_ip,
    );
}

async fn stored_binding_is_an_hmac_not_raw_values<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b.check_ip(true))).await;
    let client = with_session(&app, "198.51.100.10").await;
    let token = common::token_of(&key, client.cookie.as_ref().unwrap());
    let record = f.store.load(&token.hash()).await.unwrap().unwrap();
    let stored = String::from_utf8(record.encode().unwrap()).unwrap();
    assert!(
        record.meta.binding.as_ref().is_some_and(|b| b.len() == 43),
        "a binding is stored, as a digest: {stored}"
    );
    assert!(!stored.contains("198.51.100"), "{stored}");
    assert!(!stored.contains("Mozilla"), "{stored}");
}

both_stores!(stored_binding_is_an_hmac_not_raw_values);

/// Two clients behind one trusted proxy whose forwarded entries carry ports (or an
/// `unknown` hop further out): each keeps its own address, they do not share a binding.
async fn forwarded_entries_with_ports_keep_clients_apart<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let proxy: IpAddr = "10.0.0.1".parse().unwrap();
    let app = common::app(common::layer(&f, &key, |b| {
        b.check_ip(true).trusted_proxies([(proxy, 32)])
    }))
    .await;
    let mut owner = Client::from_ip("10.0.0.1");
    owner.headers = vec![(
        "x-forwarded-for".into(),
        "unknown, 203.0.113.7:40000".into(),
    )];
    assert_eq!(owner.post(&app, "/inc").await.body, "1");
    assert_eq!(
        owner.get(&app, "/count").await.body,
        "1",
        "the owner keeps it"
    );
    // Another client, its cookie stolen, through the same proxy.
    let mut thief = owner.clone();
    thief.headers = vec![("x-forwarded-for".into(), "198.51.100.8:1234".into())];
    assert_eq!(
        thief.get(&app, "/count").await.body,
        "0",
        "a different client behind the proxy does not share the owner's binding"
    );
    // A Forwarded header the proxy does not write (it writes X-Forwarded-For) is the
    // client's own: the thief cannot claim the owner's address with it.
    thief.headers = vec![
        ("forwarded".into(), "for=203.0.113.7".into()),
        ("x-forwarded-for".into(), "198.51.100.8".into()),
    ];
    assert_eq!(thief.get(&app, "/count").await.body, "0");
}

/// A session that holds nothing but a pending flash message is bound like any other: a
/// stolen cookie used from another User-Agent does not read the victim's messages.
async fn a_flash_only_session_is_bound<S: Store + Clone>(f: Fixture<S>) {
    let key = Key::generate();
    let app = common::app(common::layer(&f, &key, |b| b)).await;
    let mut victim = Client::new();
    victim.post(&app, "/flash").await;
    let mut thief = victim.clone();
    thief.user_agent = "curl/8.0".into();
    assert_eq!(
        thief.get(&app, "/flash").await.body,
        "",
        "nothing for the thief"
    );
    assert_eq!(
        victim.get(&app, "/flash").await.body,
        "success:saved|error:but mind the gap",
        "the victim still gets them"
    );
}

mod hardening {
    use super::*;
    both_stores!(
        forwarded_entries_with_ports_keep_clients_apart,
        a_flash_only_session_is_bound
    );
}
