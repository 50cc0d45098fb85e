//! The Mastermind example as a real process, driven over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use e2e_tests::{client, scratch_dir, services, unique_namespace, Server};
use mastermind::game::{score, Code, Score};
use serde_json::{json, Value};

fn state(agent: &ureq::Agent, server: &Server) -> Value {
    agent
        .get(&server.url("/api/state"))
        .call()
        .unwrap()
        .into_json()
        .unwrap()
}

fn new_game(agent: &ureq::Agent, server: &Server) -> Value {
    agent
        .post(&server.url("/api/new"))
        .call()
        .unwrap()
        .into_json()
        .unwrap()
}

/// `GET /api/session`: the session panel as JSON.
fn session_panel(agent: &ureq::Agent, server: &Server) -> Value {
    agent
        .get(&server.url("/api/session"))
        .call()
        .unwrap()
        .into_json()
        .unwrap()
}

/// Posts a guess; returns the status code and the JSON body.
fn guess(agent: &ureq::Agent, server: &Server, code: &str) -> (u16, Value) {
    match agent
        .post(&server.url("/api/guess"))
        .send_json(json!({ "guess": code }))
    {
        Ok(res) => (res.status(), res.into_json().unwrap()),
        Err(ureq::Error::Status(status, res)) => (status, res.into_json().unwrap()),
        Err(err) => panic!("{err}"),
    }
}

fn last_score(body: &Value) -> Score {
    let last = body["guesses"].as_array().unwrap().last().unwrap();
    Score {
        black: u8::try_from(last["black"].as_u64().unwrap()).unwrap(),
        white: u8::try_from(last["white"].as_u64().unwrap()).unwrap(),
    }
}

/// Plays to a win by always guessing the first code consistent with all feedback so far.
fn play_to_win(agent: &ureq::Agent, server: &Server) -> Value {
    let mut candidates: Vec<Code> = Code::all().collect();
    loop {
        let next = candidates[0];
        let (status, body) = guess(agent, server, &next.to_string());
        assert_eq!(status, 200, "{body}");
        let feedback = last_score(&body);
        if body["status"] == "won" {
            return body;
        }
        assert_eq!(
            body["status"], "playing",
            "the solver wins within 10 guesses: {body}"
        );
        assert_eq!(body["secret"], Value::Null, "secret hidden while playing");
        candidates.retain(|c| score(c, &next) == feedback);
    }
}

#[test]
fn a_game_is_won() {
    let dir = scratch_dir("won");
    let server = Server::start("mastermind", &dir, &[]);
    let agent = client();
    let fresh = state(&agent, &server);
    assert_eq!(
        fresh,
        json!({"status":"playing","guesses":[],"remaining":10,"secret":null})
    );

    let body = play_to_win(&agent, &server);
    let guesses = body["guesses"].as_array().unwrap();
    let winning = guesses.last().unwrap();
    assert_eq!(winning["black"], 4);
    assert_eq!(winning["white"], 0);
    assert_eq!(body["secret"], winning["guess"], "secret revealed once won");
    assert_eq!(body["remaining"], 10 - guesses.len());

    let (status, err) = guess(&agent, &server, "RGBY");
    assert_eq!(status, 409, "a guess after the game is over");
    assert!(err["error"].is_string());

    // The HTML page agrees.
    let page = agent
        .get(&server.url("/"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(page.contains("You won in"), "{page}");
}

#[test]
fn a_game_is_lost_and_the_secret_revealed() {
    let dir = scratch_dir("lost");
    let server = Server::start("mastermind", &dir, &[]);
    let agent = client();
    let (first, feedback) = loop {
        new_game(&agent, &server);
        let (_, body) = guess(&agent, &server, "RRRR");
        if body["status"] == "playing" {
            break ("RRRR".parse::<Code>().unwrap(), last_score(&body));
        }
    };
    // A code whose score against the first guess differs cannot be the secret.
    let wrong = Code::all().find(|c| score(c, &first) != feedback).unwrap();
    for _ in 0..8 {
        let (status, _) = guess(&agent, &server, &wrong.to_string());
        assert_eq!(status, 200);
    }
    // The last guess through the page's form: a loss gets its message, as a win does.
    let res = agent
        .post(&server.url("/guess"))
        .send_form(&[("guess", &wrong.to_string())])
        .unwrap();
    assert_eq!(res.status(), 303);
    let body = state(&agent, &server);
    assert_eq!(body["status"], "lost");
    assert_eq!(body["remaining"], 0);
    let secret: Code = body["secret"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        score(&secret, &first),
        feedback,
        "the revealed secret explains the feedback"
    );
    assert_eq!(guess(&agent, &server, "RGBY").0, 409);
    let page = agent
        .get(&server.url("/"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(page.contains("Out of guesses") && page.contains("The secret was"));
    assert!(
        page.contains(&format!("Out of guesses: the code was {secret}")),
        "the loss's flash message"
    );
}

/// `GET /api/session`: what the server keeps (the secret withheld while the game runs),
/// what the browser holds, where the state came from; `DELETE` ends the session.
#[test]
fn the_session_api_explains_the_session_and_forgets_it() {
    let dir = scratch_dir("session-api");
    let server = Server::start("mastermind", &dir, &[]);
    let agent = client();
    let session = |agent: &ureq::Agent| session_panel(agent, &server);
    let key = |body: &Value, key: &str| -> Value {
        body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["key"] == key)
            .cloned()
            .unwrap_or_else(|| panic!("no {key} in {body}"))
    };

    let body = session(&agent);
    assert_eq!(body["start"], "new", "{body}");
    assert_eq!(
        body["writes"],
        json!([]),
        "reading it starts no game: {body}"
    );
    assert!(
        agent.cookie_store().iter_any().next().is_none(),
        "nothing stored"
    );

    new_game(&agent, &server);
    let body = session(&agent);
    assert_eq!(body["start"], "continued", "{body}");
    assert_eq!(body["short_id"].as_str().unwrap().len(), 8, "{body}");
    let secret = key(&body, "mastermind.v1.secret");
    assert_eq!(
        (secret["hidden"].clone(), secret["value"].clone()),
        (json!(true), Value::Null)
    );
    assert_eq!(key(&body, "mastermind.v1.guesses")["value"], json!([]));
    assert!(
        body["source"].as_str().unwrap().contains("cache hit"),
        "{body}"
    );
    assert!(body["cookie"]["carries"]
        .as_str()
        .unwrap()
        .contains("only the session id"));
    assert!(body["cookie"]["attributes"]
        .as_str()
        .unwrap()
        .contains("HttpOnly"));
    let version = body["version"].as_u64().unwrap();

    guess(&agent, &server, "RRRR");
    let body = session(&agent);
    assert_eq!(
        key(&body, "mastermind.v1.guesses")["value"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(
        body["version"].as_u64().unwrap() > version,
        "a guess is a write: {body}"
    );

    let res = agent.delete(&server.url("/api/session")).call().unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(session(&agent)["start"], "new", "the session is gone");
}

#[test]
fn invalid_guesses_are_422_and_a_flash_on_the_page() {
    let dir = scratch_dir("invalid");
    let server = Server::start("mastermind", &dir, &[]);
    let agent = client();
    for bad in ["RGB", "RGBYY", "RGBX", "", "🙂🙂🙂🙂"] {
        let (status, body) = guess(&agent, &server, bad);
        assert_eq!(status, 422, "{bad:?}");
        assert!(
            body["error"].as_str().unwrap().contains("R G B Y O P"),
            "{body}"
        );
    }
    let res = agent
        .post(&server.url("/api/guess"))
        .set("content-type", "application/json")
        .send_string("{not json");
    assert!(matches!(res, Err(ureq::Error::Status(422, _))));
    assert_eq!(
        state(&agent, &server)["guesses"],
        json!([]),
        "nothing counted"
    );

    // The form: a redirect, then the message once.
    let res = agent
        .post(&server.url("/guess"))
        .send_form(&[("guess", "ZZZZ")])
        .unwrap();
    assert_eq!(res.status(), 303);
    let page = agent
        .get(&server.url("/"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(page.contains("is not a colour"), "{page}");
    let again = agent
        .get(&server.url("/"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(!again.contains("is not a colour"), "flash shown once");
}

#[test]
fn games_survive_a_restart_on_the_embedded_default() {
    let dir = scratch_dir("restart");
    let mut server = Server::start("mastermind", &dir, &[]);
    let agent = client();
    // A first guess that happens to be the secret (1 game in 1,296) ends the game, and the
    // second guess would rightly be refused: start another game then (bounded).
    let mut first = guess(&agent, &server, "RGBY");
    for _ in 0..5 {
        if first.1["status"] != "won" {
            break;
        }
        new_game(&agent, &server);
        first = guess(&agent, &server, "RGBY");
    }
    let second = guess(&agent, &server, "OOPP");
    assert_eq!(first.0, 200, "{first:?}");
    assert_eq!(second.0, 200, "{second:?}");
    let before = state(&agent, &server);
    server.restart_with(&[]);
    let after = state(&agent, &server);
    let answers = format!("first: {first:?}; second: {second:?}; before: {before}; after: {after}");
    assert_eq!(
        before["guesses"].as_array().unwrap().len(),
        2,
        "both acknowledged guesses are in the game: {answers}"
    );
    assert_eq!(after["guesses"], before["guesses"], "{answers}");
    // After the restart the in-process cache is empty: the panel says where the state
    // came from (read above: SQLite, then put back), and the next read is a cache hit.
    let panel = session_panel(&agent, &server);
    assert!(
        panel["source"].as_str().unwrap().contains("cache hit"),
        "{panel}"
    );
    server.restart_with(&[]);
    let panel = session_panel(&agent, &server);
    assert!(
        panel["source"]
            .as_str()
            .unwrap()
            .contains("read from SQLite and put back in the cache"),
        "{panel}"
    );
    assert!(dir.join("mastermind-sessions.sqlite").exists());
    assert!(
        dir.join(".session-secret").exists(),
        "development key kept for restarts"
    );
}

#[test]
fn runs_on_redis_and_postgres() {
    let Some((redis, database)) = services() else {
        return;
    };
    let dir = scratch_dir("redis-pg");
    // A namespace of this test's own (Redis prefix, PostgreSQL table). Redis database 1
    // first, then 2: after the restart the cache is empty, so the game can only come back
    // from PostgreSQL.
    let namespace = unique_namespace("e2e_mastermind");
    let base = redis.trim_end_matches('/').to_owned();
    let first_cache = format!("{base}/1");
    let second_cache = format!("{base}/2");
    let mut server = Server::start(
        "mastermind",
        &dir,
        &[
            ("REDIS_URL", first_cache.as_str()),
            ("DATABASE_URL", database.as_str()),
            ("SESSION_NAMESPACE", namespace.as_str()),
        ],
    );
    let agent = client();
    guess(&agent, &server, "RGBY");
    let before = state(&agent, &server);
    server.restart_with(&[
        ("REDIS_URL", second_cache.as_str()),
        ("DATABASE_URL", database.as_str()),
        ("SESSION_NAMESPACE", namespace.as_str()),
    ]);
    let after = state(&agent, &server);
    assert_eq!(after["guesses"], before["guesses"]);
    assert!(
        !dir.join("mastermind-sessions.sqlite").exists(),
        "no SQLite file used"
    );
    play_to_win(&agent, &server);
}

#[test]
fn two_clients_are_isolated() {
    let dir = scratch_dir("isolated");
    let server = Server::start("mastermind", &dir, &[]);
    let (alice, bob) = (client(), client());
    guess(&alice, &server, "RGBY");
    guess(&alice, &server, "RRRR");
    guess(&bob, &server, "PPPP");
    let a = state(&alice, &server);
    let b = state(&bob, &server);
    assert_eq!(a["guesses"].as_array().unwrap().len(), 2);
    assert_eq!(b["guesses"].as_array().unwrap().len(), 1);
    assert_eq!(b["guesses"][0]["guess"], "PPPP");
    play_to_win(&alice, &server);
    assert_eq!(
        state(&bob, &server)["status"],
        "playing",
        "alice's win is not bob's"
    );
}

/// `METRICS_ADDR` serves the session layer's metrics for Prometheus.
#[test]
fn metrics_are_exposed_for_prometheus() {
    let dir = scratch_dir("metrics");
    let port = e2e_tests::free_port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let server = Server::start("mastermind", &dir, &[("METRICS_ADDR", &metrics_addr)]);
    let agent = client();
    new_game(&agent, &server);
    guess(&agent, &server, "RGBY");
    let body = ureq::get(&format!("http://{metrics_addr}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(body.contains("session_created_total 1"), "{body}");
    assert!(body.contains("session_record_bytes"), "{body}");
    assert!(body.contains("session_cache_hits_total"), "{body}");
}
