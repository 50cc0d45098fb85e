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

/// The form token of the page at `path` (its hidden `csrf` field).
fn form_token(agent: &ureq::Agent, server: &Server, path: &str) -> String {
    let page = agent
        .get(&server.url(path))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let start =
        page.find(r#"name="csrf" value=""#).expect("a form token") + r#"name="csrf" value=""#.len();
    page[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Posts `form`, returning the response whatever its status.
fn post(agent: &ureq::Agent, server: &Server, path: &str, form: &[(&str, &str)]) -> ureq::Response {
    match agent.post(&server.url(path)).send_form(form) {
        Ok(res) | Err(ureq::Error::Status(_, res)) => res,
        Err(err) => panic!("{err}"),
    }
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

    // A sign-in not sent from the site's own form (no token, or another's) is refused:
    // no login CSRF.
    let res = post(&agent, &server, "/signin", &[("name", "Mallory")]);
    assert_eq!(res.status(), 403);
    let other = client();
    let foreign = form_token(&other, &server, "/signin");
    let res = post(
        &agent,
        &server,
        "/signin",
        &[("name", "Mallory"), ("csrf", &foreign)],
    );
    assert_eq!(res.status(), 403, "another visitor's token");

    // The form's page starts a session (it holds the token); signing in gives a new id:
    // an id planted before the sign-in is worth nothing after it.
    let token = form_token(&agent, &server, "/signin");
    let res = post(
        &agent,
        &server,
        "/signin",
        &[("name", ""), ("csrf", &token)],
    );
    assert_eq!(location(&res), "/signin", "a bad name: back to the form");
    let before = agent
        .cookie_store()
        .get("127.0.0.1", "/", "session")
        .map(|c| format!("session={}", c.value()))
        .expect("the form's session");
    let res = post(
        &agent,
        &server,
        "/signin",
        &[("name", "Ada"), ("next", "/account"), ("csrf", &token)],
    );
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
    let token = form_token(&agent, &server, "/signin");
    let res = post(
        &agent,
        &server,
        "/signin",
        &[
            ("name", "Ada"),
            ("next", "https://evil.example/"),
            ("csrf", &token),
        ],
    );
    assert_eq!(location(&res), "/");

    // Sign out: only from the site's own button; then the session ends, and the next page
    // says so, once.
    assert_eq!(
        post(&agent, &server, "/signout", &[]).status(),
        403,
        "a forced sign-out"
    );
    let token = form_token(&agent, &server, "/account");
    let res = post(&agent, &server, "/signout", &[("csrf", &token)]);
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

fn browser(agent: &str) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .redirects(0)
        .user_agent(agent)
        .timeout(std::time::Duration::from_secs(10))
        .build()
}

fn sign_in(agent: &ureq::Agent, server: &Server, name: &str) {
    let token = form_token(agent, server, "/signin");
    let res = post(
        agent,
        server,
        "/signin",
        &[("name", name), ("csrf", &token)],
    );
    assert_eq!(res.status(), 303);
}

fn page(agent: &ureq::Agent, server: &Server, path: &str) -> String {
    agent
        .get(&server.url(path))
        .call()
        .unwrap()
        .into_string()
        .unwrap()
}

fn signed_in(agent: &ureq::Agent, server: &Server) -> bool {
    agent.get(&server.url("/api/me")).call().is_ok()
}

/// "Your sessions": three browsers signed in as one user are listed on the account page;
/// one is ended by its button, then "sign out everywhere else" leaves only this one.
#[test]
fn the_account_page_lists_the_users_sessions_and_ends_them() {
    let dir = scratch_dir("login-devices");
    let server = Server::start("login", &dir, &[]);
    let firefox = browser("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0");
    let chrome = browser("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36");
    let phone = browser("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1");
    let other_user = client();
    for agent in [&firefox, &chrome, &phone] {
        sign_in(agent, &server, "Grace");
    }
    sign_in(&other_user, &server, "Linus");

    let account = page(&firefox, &server, "/account");
    assert_eq!(account.matches(r#"class="device""#).count(), 3, "{account}");
    assert!(account.contains("Firefox on Linux"), "{account}");
    assert!(account.contains("Chrome on Windows"));
    assert!(account.contains("Safari on iOS"));
    assert_eq!(account.matches("this browser").count(), 1);
    assert!(!account.contains("Linus"), "only this user's sessions");

    // End the phone's session by its button (the form of the "Safari on iOS" row).
    let row = &account[account.find("Safari on iOS").unwrap()..];
    let start = row.find(r#"name="id" value=""#).unwrap() + r#"name="id" value=""#.len();
    let id = row[start..].split('"').next().unwrap().to_owned();
    let token = form_token(&firefox, &server, "/account");
    let res = post(
        &firefox,
        &server,
        "/sessions/end",
        &[("csrf", &token), ("id", &id)],
    );
    assert_eq!((res.status(), location(&res)), (303, "/account".to_owned()));
    assert!(!signed_in(&phone, &server), "the phone is signed out");
    assert!(signed_in(&chrome, &server));

    // An id from another user's page ends nothing: ids are looked up in this user's own
    // sessions only.
    let linus_page = page(&other_user, &server, "/account");
    assert!(
        !linus_page.contains(r#"name="id""#),
        "a single session has no End button"
    );
    let token = form_token(&chrome, &server, "/account");
    post(
        &chrome,
        &server,
        "/sessions/end",
        &[("csrf", &token), ("id", "made-up")],
    );
    assert!(signed_in(&other_user, &server));

    // Sign out everywhere else.
    let token = form_token(&firefox, &server, "/account");
    let res = post(
        &firefox,
        &server,
        "/sessions/end-others",
        &[("csrf", &token)],
    );
    assert_eq!(res.status(), 303);
    assert!(!signed_in(&chrome, &server), "signed out everywhere else");
    assert!(signed_in(&firefox, &server), "but here");
    assert!(signed_in(&other_user, &server), "another user is untouched");
    let account = page(&firefox, &server, "/account");
    assert!(
        account.contains("Signed out everywhere else (1 session)."),
        "{account}"
    );
    assert_eq!(account.matches(r#"class="device""#).count(), 1, "{account}");
    // A forged request (no form token) ends nothing.
    sign_in(&chrome, &server, "Grace");
    assert_eq!(
        post(&firefox, &server, "/sessions/end-others", &[]).status(),
        403
    );
    assert!(signed_in(&chrome, &server));
}
