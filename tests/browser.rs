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
    status: String,
    outcome: String,
    clicks: String,
    board: Vec<(Code, Score)>,
}

const READ_PAGE: &str = r##"
    const text = (css) => (document.querySelector(css) || {}).textContent || "";
    return {
        ready: document.readyState,
        status: text("[role=status]"),
        outcome: text("#outcome"),
        clicks: text("#clicks"),
        rows: Array.from(document.querySelectorAll("#board tbody tr"))
            .map((row) => Array.from(row.cells).map((cell) => cell.textContent.trim())),
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
    Some(Page {
        status: field("status"),
        outcome: field("outcome"),
        clicks: field("clicks"),
        board,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mastermind_is_played_through_the_forms_and_the_counter_clicked() {
    let Some(driver) = driver() else { return };
    let dir = scratch_dir("browser");
    let mastermind = Server::start("mastermind", &dir, &[]);
    let counter = Server::start("click-counter", &dir, &[]);
    let client = browser(&driver, &dir.join("profile")).await;

    // Mastermind: an invalid guess shows a flash message...
    client.goto(&mastermind.url("/")).await.unwrap();
    assert_eq!(client.title().await.unwrap(), "Mastermind");
    wait_for(&client, "the game page", |p| {
        p.outcome.contains("10 guesses left")
    })
    .await;
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

    // ...then the game is won by typing guesses into the form.
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
        if feedback.black == 4 {
            break;
        }
        candidates.retain(|c| score(c, &next) == feedback);
    }
    assert!(page.outcome.contains("You won"), "{page:?}");
    assert!(page.status.contains("You broke the code"), "{page:?}");
    screenshot(&client, "mastermind-won.png").await;

    // A new game from the button.
    click(&client, "#new-game").await;
    wait_for(&client, "a new game", |p| {
        p.board.is_empty() && p.outcome.contains("10 guesses left")
    })
    .await;

    // The click counter.
    client.goto(&counter.url("/")).await.unwrap();
    wait_for(&client, "the counter", |p| p.clicks == "0").await;
    for n in 1..=3 {
        click(&client, "#click").await;
        wait_for(&client, "the click to count", |p| p.clicks == n.to_string()).await;
    }
    screenshot(&client, "click-counter.png").await;
    client.close().await.unwrap();
}
