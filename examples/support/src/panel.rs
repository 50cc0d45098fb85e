//! The session panel the examples show: what the server keeps for this visitor, what the
//! browser holds, where this request's state came from and what it writes.

use maud::{html, Markup};
use serde::Serialize;
use session_actix::{store::LoadedFrom, SessionInfo, SessionStart};

/// Which tiers an example runs on, in the panel's words.
#[derive(Debug, Clone)]
pub struct Tiers {
    /// The cache tier: `"in-process cache"` or `"Redis"`.
    pub cache: &'static str,
    /// The durable tier: `"SQLite"` or `"PostgreSQL"`.
    pub durable: &'static str,
}

/// One session key, as the panel shows it.
#[derive(Debug, Serialize)]
pub struct KeyView {
    /// The key (`mastermind.v1.guesses`).
    pub key: &'static str,
    /// Its value; `None` when the page does not show it (see `note`).
    pub value: Option<serde_json::Value>,
    /// Whether the value is withheld (`value` is then `None`).
    pub hidden: bool,
    /// What the key is for, or why its value is hidden.
    pub note: String,
}

/// What the browser holds.
#[derive(Debug, Serialize)]
pub struct CookieView {
    /// The cookie's name.
    pub name: String,
    /// Its attributes as sent.
    pub attributes: String,
    /// How long it is kept after the last request; `None`: until the browser closes.
    pub max_age_secs: Option<u64>,
    /// What is in it.
    pub carries: &'static str,
}

/// Everything the panel shows; also the body of the examples' `GET /api/session`.
#[derive(Debug, Serialize)]
pub struct SessionPanel {
    /// The first 8 hex digits of the SHA-256 of the session id (never the id); `None`
    /// before a session exists.
    pub short_id: Option<String>,
    /// The record's version as loaded (every write increases it).
    pub version: Option<u64>,
    /// `"new"`, `"refused"` or `"continued"`.
    pub start: &'static str,
    /// Where this request's state came from, in words.
    pub source: String,
    /// The keys and their values.
    pub keys: Vec<KeyView>,
    /// The keys this request writes (empty: it writes nothing).
    pub writes: Vec<String>,
    /// The cookie.
    pub cookie: CookieView,
}

impl SessionPanel {
    /// The panel for this request: `keys` as the example shows them, `writes` the keys its
    /// handler changed.
    #[must_use]
    pub fn new(info: &SessionInfo, tiers: &Tiers, keys: Vec<KeyView>, writes: Vec<String>) -> Self {
        let (start, source) = match info.start() {
            SessionStart::New => (
                "new",
                "No session came with this request: it starts empty, and is stored only once \
                 something is written to it."
                    .to_owned(),
            ),
            // The reason stays in the server's log: told to the client, it would tell
            // someone presenting a stolen cookie that it is live, and what to imitate.
            SessionStart::Refused { .. } => (
                "refused",
                "The session your browser presented was not accepted (timed out, or not \
                 this browser's): this request starts a fresh one."
                    .to_owned(),
            ),
            SessionStart::Continued { from, forwarded } => {
                let mut text = match from {
                    LoadedFrom::Cache => format!(
                        "{} hit: read without a {} query.",
                        capitalized(tiers.cache),
                        tiers.durable
                    ),
                    LoadedFrom::Refilled => format!(
                        "Not in the {}: read from {} and put back in the cache.",
                        tiers.cache, tiers.durable
                    ),
                    LoadedFrom::Durable => format!(
                        "The {} did not answer: read from {} alone.",
                        tiers.cache, tiers.durable
                    ),
                    other => format!("{}.", capitalized(other.describe())),
                };
                if forwarded {
                    text.push_str(
                        " Your browser presented an id that was just rotated; it gets the \
                         current one.",
                    );
                }
                ("continued", text)
            }
            _ => ("continued", String::new()),
        };
        let cookie = info.cookie();
        Self {
            short_id: info.short_id().map(|id| id.to_string()),
            version: info.version(),
            start,
            source,
            keys,
            writes,
            cookie: CookieView {
                name: cookie.name.clone(),
                attributes: cookie.attributes.clone(),
                max_age_secs: cookie.max_age.map(|age| age.as_secs()),
                carries: if cookie.carries_id_only {
                    "only the session id, encrypted and authenticated (AES-256-GCM): no data"
                } else {
                    "the session data itself, encrypted and authenticated"
                },
            },
        }
    }

    /// The panel as HTML: a collapsible section. `forget` is the action of a "Forget me"
    /// form, if the page has one.
    #[must_use]
    pub fn render(&self, forget: Option<&str>) -> Markup {
        html! {
            details id="session-panel" class="session-panel" {
                summary { "Your session: what the server keeps for you" }
                h3 { "On the server" }
                p {
                    @match (&self.short_id, self.version) {
                        (Some(id), Some(version)) => {
                            "Session " code id="session-id" { (id) }
                            " (the start of the SHA-256 of its id: the id itself is stored nowhere), record version "
                            span id="session-version" { (version) } "."
                        }
                        _ => { "No session is stored for you yet." }
                    }
                }
                table id="session-keys" {
                    thead { tr { th scope="col" { "Key" } th scope="col" { "Value" } th scope="col" { "What it is" } } }
                    tbody {
                        @for key in &self.keys {
                            tr data-key=(key.key) {
                                td { code { (key.key) } }
                                td class="value" {
                                    @match (&key.value, key.hidden) {
                                        (Some(value), false) => code { (value) },
                                        _ => em { "hidden" },
                                    }
                                }
                                td { (key.note) }
                            }
                        }
                    }
                }
                h3 { "In your browser" }
                p id="session-cookie" {
                    "One cookie, " code { (self.cookie.name) } ". It carries " (self.cookie.carries) ". "
                    code { (self.cookie.attributes) } ". "
                    @if !self.cookie.attributes.contains("Secure") {
                        "(No " code { "Secure" } ": this demo runs on plain HTTP; behind HTTPS, set "
                        code { "SESSION_COOKIE_SECURE=1" } ".) "
                    }
                    @match self.cookie.max_age_secs {
                        Some(secs) => { "It is kept for " (duration(secs)) " after your last request." }
                        None => { "It is deleted when the browser closes." }
                    }
                }
                h3 { "This request" }
                p id="session-source" { (self.source) }
                p id="session-writes" {
                    @if self.writes.is_empty() {
                        "It writes nothing back."
                    } @else {
                        "It writes "
                        @for (n, key) in self.writes.iter().enumerate() {
                            @if n > 0 { ", " }
                            code { (key) }
                        }
                        " (one database statement and one cache write, whatever the number of keys)."
                    }
                }
                @if let Some(action) = forget {
                    form method="post" action=(action) {
                        button type="submit" id="forget-me" { "Forget me" }
                        " ends this session: the server deletes it, the browser drops the cookie."
                    }
                }
            }
        }
    }
}

impl SessionPanel {
    /// The panel in its smallest form, one line: the short id, each key and value, and
    /// where the state came from.
    #[must_use]
    pub fn render_line(&self) -> Markup {
        html! {
            p id="session-panel" class="session-line" {
                @match &self.short_id {
                    Some(id) => { "Session " code id="session-id" { (id) } }
                    None => { "No session yet" }
                }
                @for key in &self.keys {
                    " · " code { (key.key) } " = "
                    @match (&key.value, key.hidden) {
                        (Some(value), false) => code class="value" { (value) },
                        _ => em { "hidden" },
                    }
                }
                " · " span id="session-source" { (self.source) }
            }
        }
    }
}

/// The panel's styles, for the examples' pages.
pub const PANEL_CSS: &str = "
.session-panel { margin-top: 1.5rem; padding: .5rem .75rem; border: 1px solid #ccd; border-radius: 8px; background: #fafaff; }
.session-panel summary { cursor: pointer; font-weight: 600; }
.session-panel th { text-align: left; }
.session-panel h3 { font-size: 1rem; margin: 1rem 0 .3rem; }
.session-panel table { width: 100%; table-layout: fixed; font-size: .9rem; }
.session-panel td, .session-panel th { vertical-align: top; overflow-wrap: anywhere; }
.session-panel th:first-child { width: 32%; } .session-panel th:nth-child(2) { width: 38%; }
.session-panel code { font-size: .85rem; overflow-wrap: anywhere; }
@media (max-width: 480px) {
  .session-panel thead { display: none; }
  .session-panel tr { display: block; padding: .4rem 0; border-bottom: 1px solid #ddd; }
  .session-panel td { display: block; border: 0; padding: .1rem 0; }
}
";

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn duration(secs: u64) -> String {
    match secs {
        s if s % 3600 == 0 && s >= 3600 => plural(s / 3600, "hour"),
        s if s % 60 == 0 && s >= 60 => plural(s / 60, "minute"),
        s => plural(s, "second"),
    }
}

/// `1 hour`, `2 hours`.
fn plural(n: u64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}
