//! The click counter as a real process.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use e2e_tests::{client, scratch_dir, Server};

fn clicks(page: &str) -> u64 {
    let start = page.find(r#"id="clicks">"#).unwrap() + r#"id="clicks">"#.len();
    page[start..].split('<').next().unwrap().parse().unwrap()
}

#[test]
fn counts_clicks_per_visitor_and_survives_restart() {
    let dir = scratch_dir("clicks");
    let mut server = Server::start("click-counter", &dir, &[]);
    let (alice, bob) = (client(), client());
    let page = alice
        .get(&server.url("/"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert_eq!(clicks(&page), 0);
    for _ in 0..3 {
        let res = alice.post(&server.url("/click")).call().unwrap();
        assert_eq!(res.status(), 303);
    }
    let page = alice
        .get(&server.url("/"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert_eq!(clicks(&page), 3);
    let page = bob
        .get(&server.url("/"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert_eq!(clicks(&page), 0, "another visitor has their own count");

    server.restart_with(&[]);
    let page = alice
        .get(&server.url("/"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert_eq!(clicks(&page), 3, "kept across a restart");
}
