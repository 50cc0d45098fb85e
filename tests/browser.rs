//! The examples in a real, headless Chromium: Mastermind played through its HTML forms,
//! the counter clicked. Screenshots go to `target/e2e-screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them
//! the test prints a skip, and fails only under CI.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use e2e_tests::{scratch_dir, services_required, workspace, Server};
use fantoccini::{Client, ClientBuilder, Locator};
use mastermind::game::{score, Code, Score};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver process of this test's own.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn driver() -> Option<Driver> {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        assert!(
            !services_required(),
            "Chromium is required under CI: apt-get install chromium chromium-driver"
        );
        eprintln!("SKIPPED: browser test needs {CHROMIUM} and {CHROMEDRIVER} (Debian: chromium, chromium-driver)");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    // Owned by the guard from here on: it kills and waits for the process when dropped.
    let driver = Driver { child, port };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(driver);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("chromedriver did not start");
}

async fn browser(driver: &Driver, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=900,1100",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("connect to chromedriver")
}

/// What the current page shows, read in one script call (no stale element references
/// while a form submission navigates).
#[derive(Debug, Default)]
struct Page {
    url: String,
    status: String,
    outcome: String,
    clicks: String,
    count: String,
    who: String,
    board: Vec<(Code, Score)>,
    /// The session panel: key → value as shown.
    keys: Vec<(String, String)>,
    session_id: String,
    source: String,
    writes: String,
    panel_line: String,
}

impl Page {
    fn key(&self, key: &str) -> &str {
        self.keys
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }
}

const READ_PAGE: &str = r##"
    const text = (css) => (document.querySelector(css) || {}).textContent || "";
    return {
        ready: document.readyState,
        url: location.href,
        status: text("[role=status]"),
        outcome: text("#outcome"),
        clicks: text("#clicks"),
        count: text("#count"),
        who: text("#who"),
        session_id: text("#session-id"),
        source: text("#session-source"),
        writes: text("#session-writes"),
        panel_line: text("p#session-panel"),
        keys: Array.from(document.querySelectorAll("#session-keys tbody tr"))
            .map((row) => [row.dataset.key, row.cells[1].textContent.trim()]),
        rows: Array.from(document.querySelectorAll("#board tbody tr:not(.empty)"))
            .map((row) => Array.from(row.cells).map((cell) => cell.dataset.count ?? cell.textContent.trim())),
    };
"##;

async fn read_page(client: &Client) -> Option<Page> {
    let value = client.execute(READ_PAGE, vec![]).await.ok()?;
    if value["ready"] != "complete" {
        return None;
    }
    let field = |name: &str| value[name].as_str().unwrap_or_default().trim().to_owned();
    let mut board = Vec::new();
    for row in value["rows"].as_array()? {
        let cells: Vec<&str> = row.as_array()?.iter().filter_map(|c| c.as_str()).collect();
        let letters: String = cells
            .get(1)?
            .chars()
            .filter(char::is_ascii_alphabetic)
            .collect();
        board.push((
            letters.parse().ok()?,
            Score {
                black: cells.get(2)?.parse().ok()?,
                white: cells.get(3)?.parse().ok()?,
            },
        ));
    }
    let keys = value["keys"]
        .as_array()?
        .iter()
        .filter_map(|pair| {
            Some((
                pair.get(0)?.as_str()?.to_owned(),
                pair.get(1)?.as_str()?.to_owned(),
            ))
        })
        .collect();
    Some(Page {
        url: field("url"),
        status: field("status"),
        outcome: field("outcome"),
        clicks: field("clicks"),
        count: field("count"),
        who: field("who"),
        board,
        keys,
        session_id: field("session_id"),
        source: field("source"),
        writes: field("writes"),
        panel_line: field("panel_line"),
    })
}

/// Polls the page until `done` holds (a click's navigation has landed), for up to 10 s.
async fn wait_for(client: &Client, what: &str, done: impl Fn(&Page) -> bool) -> Page {
    for _ in 0..200 {
        if let Some(page) = read_page(client).await {
            if done(&page) {
                return page;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "timed out waiting for {what}; page: {:?}",
        read_page(client).await
    );
}

async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn screenshot(client: &Client, name: &str) {
    let dir = workspace().join("target").join("e2e-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = client.screenshot().await.unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

/// Opens the collapsible session panel (its buttons are not clickable while closed).
async fn open_panel(client: &Client) {
    client
        .execute(
            "document.getElementById('session-panel').open = true",
            vec![],
        )
        .await
        .unwrap();
}

/// Whether the page is wider than the window (a horizontal scroll bar).
async fn overflows(client: &Client) -> bool {
    let value = client
        .execute(
            "return document.documentElement.scrollWidth > window.innerWidth",
            vec![],
        )
        .await
        .unwrap();
    value.as_bool().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_in_a_browser_mastermind_the_counter_and_login() {
    let Some(driver) = driver() else { return };
    let dir = scratch_dir("browser");
    let mastermind = Server::start("mastermind", &dir, &[]);
    let counter = Server::start("click-counter", &dir, &[]);
    let login = Server::start("login", &dir, &[]);
    let client = browser(&driver, &dir.join("profile")).await;

    // Mastermind: the first visit starts a game, and the session panel says what that
    // stored: the secret (hidden), before any session existed.
    client.goto(&mastermind.url("/")).await.unwrap();
    assert_eq!(client.title().await.unwrap(), "Mastermind");
    let page = wait_for(&client, "the game page", |p| {
        p.outcome.contains("10 guesses left")
    })
    .await;
    assert_eq!(page.key("mastermind.v1.secret"), "hidden", "{page:?}");
    assert_eq!(page.key("mastermind.v1.guesses"), "[]", "{page:?}");
    assert!(page.source.contains("No session came"), "{page:?}");
    assert!(page.writes.contains("mastermind.v1.secret"), "{page:?}");
    // The next visit reads it back from the in-process cache and writes nothing.
    client.goto(&mastermind.url("/")).await.unwrap();
    let page = wait_for(&client, "the game page again", |p| !p.session_id.is_empty()).await;
    assert!(page.source.contains("cache hit"), "{page:?}");
    assert!(page.writes.contains("nothing"), "{page:?}");
    let first_session = page.session_id.clone();

    // An invalid guess shows a flash message...
    // The input's pattern stops "XXXX" in the browser; remove it to see the server's answer.
    client
        .execute(
            "document.getElementById('guess').removeAttribute('pattern')",
            vec![],
        )
        .await
        .unwrap();
    let input = client.find(Locator::Css("#guess")).await.unwrap();
    input.send_keys("XXXX").await.unwrap();
    click(&client, "#submit-guess").await;
    wait_for(&client, "the flash message", |p| {
        p.status.contains("is not a colour")
    })
    .await;

    // ...then the game is won by typing guesses into the form. Each guess changes the
    // guesses key; the secret stays hidden until the end.
    let mut candidates: Vec<Code> = Code::all().collect();
    let mut page = Page::default();
    for played in 1..=10 {
        let next = candidates[0];
        let input = client.find(Locator::Css("#guess")).await.unwrap();
        input.send_keys(&next.to_string()).await.unwrap();
        click(&client, "#submit-guess").await;
        page = wait_for(&client, "the guess on the board", |p| {
            p.board.len() == played
        })
        .await;
        let (shown, feedback) = *page.board.last().unwrap();
        assert_eq!(shown, next);
        assert!(
            page.key("mastermind.v1.guesses")
                .contains(&next.to_string()),
            "{page:?}"
        );
        if played == 1 {
            screenshot(&client, "mastermind-playing.png").await;
        }
        if feedback.black == 4 {
            break;
        }
        assert_eq!(page.key("mastermind.v1.secret"), "hidden", "{page:?}");
        candidates.retain(|c| score(c, &next) == feedback);
    }
    assert!(page.outcome.contains("You won"), "{page:?}");
    assert!(page.status.contains("You broke the code"), "{page:?}");
    let (code, _) = *page.board.last().unwrap();
    assert!(
        page.key("mastermind.v1.secret").contains(&code.to_string()),
        "the secret is shown once the game is over: {page:?}"
    );
    open_panel(&client).await;
    screenshot(&client, "mastermind-won.png").await;
    client.set_window_size(390, 1400).await.unwrap();
    open_panel(&client).await;
    assert!(
        !overflows(&client).await,
        "the page fits a 390 px wide screen"
    );
    screenshot(&client, "mastermind-390.png").await;
    client.set_window_size(900, 1100).await.unwrap();

    // A new game from the button.
    click(&client, "#new-game").await;
    wait_for(&client, "a new game", |p| {
        p.board.is_empty() && p.outcome.contains("10 guesses left")
    })
    .await;

    // "Forget me" ends the session: a fresh game in a new session, and a message that says so.
    open_panel(&client).await;
    click(&client, "#forget-me").await;
    let page = wait_for(&client, "a forgotten session", |p| {
        p.status.contains("Your session was deleted")
    })
    .await;
    assert!(
        page.board.is_empty() && page.outcome.contains("10 guesses left"),
        "{page:?}"
    );
    assert_ne!(page.session_id, first_session, "{page:?}");

    // The click counter: "1 time", "2 times", and a reset.
    client.goto(&counter.url("/")).await.unwrap();
    let page = wait_for(&client, "the counter", |p| p.clicks == "0").await;
    assert!(page.count.contains("0 times"), "{page:?}");
    assert!(page.panel_line.contains("No session yet"), "{page:?}");
    for n in 1..=3 {
        click(&client, "#click").await;
        let page = wait_for(&client, "the click to count", |p| p.clicks == n.to_string()).await;
        let unit = if n == 1 { "time." } else { "times." };
        assert!(page.count.ends_with(unit), "{page:?}");
        assert!(
            page.panel_line.contains(&format!("counter.clicks = {n}")),
            "{page:?}"
        );
        assert!(page.panel_line.contains("cache hit"), "{page:?}");
    }
    screenshot(&client, "click-counter.png").await;
    click(&client, "#reset").await;
    let page = wait_for(&client, "the reset", |p| p.clicks == "0").await;
    assert!(page.panel_line.contains("No session yet"), "{page:?}");

    // The login example: a page that needs a user sends the visitor to sign in, and back.
    client.goto(&login.url("/account")).await.unwrap();
    wait_for(&client, "the sign-in form", |p| {
        p.url.contains("/signin?next=/account")
    })
    .await;
    let input = client.find(Locator::Css("#name")).await.unwrap();
    input.send_keys("Ada").await.unwrap();
    click(&client, "#signin").await;
    let page = wait_for(&client, "the account page", |p| {
        p.who.contains("Signed in as Ada")
    })
    .await;
    assert!(page.url.ends_with("/account"), "{page:?}");
    assert!(page.status.contains("Welcome, Ada!"), "{page:?}");
    assert!(page.key("login.user").contains("Ada"), "{page:?}");
    let signed_in_session = page.session_id.clone();
    open_panel(&client).await;
    screenshot(&client, "login-signed-in.png").await;
    // Sign out ends the session, and the next page still says so.
    click(&client, "#signout").await;
    let page = wait_for(&client, "the signed-out home page", |p| {
        p.who.contains("not signed in")
    })
    .await;
    assert!(page.status.contains("You are signed out."), "{page:?}");
    assert_ne!(page.session_id, signed_in_session, "{page:?}");
    client.goto(&login.url("/account")).await.unwrap();
    let page = wait_for(&client, "the sign-in form again", |p| {
        p.url.contains("/signin")
    })
    .await;
    assert!(
        !page.status.contains("signed out"),
        "a flash is shown once: {page:?}"
    );
    client.close().await.unwrap();
}
