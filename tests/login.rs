//! The login example as a real process, driven over HTTP: the sign-in flow a real app uses.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use e2e_tests::{client, scratch_dir, Server};

fn location(res: &ureq::Response) -> String {
    res.header("location").unwrap_or_default().to_owned()
}

fn session_cookie(res: &ureq::Response) -> Option<String> {
    res.all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("session="))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
}

#[test]
fn sign_in_renews_the_id_and_sign_out_ends_the_session_with_a_message() {
    let dir = scratch_dir("login");
    let server = Server::start("login", &dir, &[]);
    let agent = client();

    // A page that needs a user: a redirect to the form (back here afterwards); the API: 401.
    let res = agent.get(&server.url("/account")).call().unwrap();
    assert_eq!(
        (res.status(), location(&res)),
        (303, "/signin?next=/account".to_owned())
    );
    match agent.get(&server.url("/api/me")).call() {
        Err(ureq::Error::Status(401, _)) => {}
        other => panic!("expected 401, got {other:?}"),
    }

    // A visitor with a session before signing in (a flash from a bad name) gets a new id
    // at sign-in: an id planted before it is worth nothing after it.
    let res = agent
        .post(&server.url("/signin"))
        .send_form(&[("name", "")])
        .unwrap();
    let before = session_cookie(&res).expect("the error message started a session");
    let res = agent
        .post(&server.url("/signin"))
        .send_form(&[("name", "Ada"), ("next", "/account")])
        .unwrap();
    assert_eq!((res.status(), location(&res)), (303, "/account".to_owned()));
    let after = session_cookie(&res).expect("a new id");
    assert_ne!(before, after);
    let me: serde_json::Value = agent
        .get(&server.url("/api/me"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(me["user"], "Ada");

    // An outside `next` is never followed.
    let res = agent
        .post(&server.url("/signin"))
        .send_form(&[("name", "Ada"), ("next", "https://evil.example/")])
        .unwrap();
    assert_eq!(location(&res), "/");

    // Sign out: the session ends, the next page says so, once.
    let res = agent.post(&server.url("/signout")).call().unwrap();
    assert_eq!(res.status(), 303);
    assert!(
        agent.get(&server.url("/api/me")).call().is_err(),
        "signed out"
    );
    let home = agent
        .get(&server.url("/"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(home.contains("You are signed out."), "{home}");
    assert!(home.contains("You are not signed in."));
    let again = agent
        .get(&server.url("/"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(!again.contains("You are signed out."), "shown once");
}
