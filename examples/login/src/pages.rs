//! The pages: home, sign-in form, the account page that needs a signed-in user (with the
//! user's sessions: "your devices"), sign out.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{error::ErrorInternalServerError, http::header, web, HttpResponse};
use example_support::{KeyView, SessionPanel, Tiers};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use session_actix::{
    Flash, FlashMessage, Level, Session, SessionAccessor, SessionInfo, Typed, UserSession,
    UserSessions,
};
use session_core::SessionSchema as _;

use crate::{
    account::{safe_next, Account, SignedIn},
    csrf,
};

/// Mounts the pages.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home))
        .route("/signin", web::get().to(signin_form))
        .route("/signin", web::post().to(signin))
        .route("/account", web::get().to(account))
        .route("/signout", web::post().to(signout))
        .route("/sessions/end", web::post().to(end_session))
        .route("/sessions/end-others", web::post().to(end_others))
        .route("/api/me", web::get().to(api_me));
}

async fn home(
    account: Typed<Account>,
    session: SessionAccessor,
    flash: Flash,
    info: SessionInfo,
    tiers: web::Data<Tiers>,
) -> actix_web::Result<Markup> {
    let token = if account.user.is_empty() {
        String::new()
    } else {
        csrf::issue(&session).map_err(ErrorInternalServerError)?
    };
    let panel = panel(&account, &info, &tiers)?;
    Ok(layout(
        "Home",
        flash.messages(),
        &panel,
        html! {
            @if account.user.is_empty() {
                p id="who" { "You are not signed in." }
                p { a href="/signin" id="signin-link" { "Sign in" } " to see your account page." }
            } @else {
                p id="who" { "Signed in as " strong { (account.user) } "." }
                p { a href="/account" { "Your account" } }
                (signout_button(&token))
            }
        },
    ))
}

/// `?next=` on the sign-in form.
#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

async fn signin_form(
    account: Typed<Account>,
    session: SessionAccessor,
    flash: Flash,
    info: SessionInfo,
    tiers: web::Data<Tiers>,
    query: web::Query<Next>,
) -> actix_web::Result<Markup> {
    let next = safe_next(query.next.as_deref().unwrap_or("/account")).to_owned();
    let token = csrf::issue(&session).map_err(ErrorInternalServerError)?;
    let panel = panel(&account, &info, &tiers)?;
    Ok(layout(
        "Sign in",
        flash.messages(),
        &panel,
        html! {
            form method="post" action="/signin" {
                input type="hidden" name="next" value=(next);
                input type="hidden" name="csrf" value=(token);
                label for="name" { "Your name" }
                div class="row" {
                    input id="name" name="name" required maxlength="40" autocomplete="username" autofocus;
                    button type="submit" id="signin" { "Sign in" }
                }
                p class="hint" { "A demo: no password. A real app checks one at this point; the rest of the flow is the same." }
            }
        },
    ))
}

/// The sign-in form.
#[derive(Deserialize)]
struct SignInForm {
    name: String,
    next: Option<String>,
    #[serde(default)]
    csrf: String,
}

/// A form that carries only the form token.
#[derive(Deserialize)]
struct TokenForm {
    #[serde(default)]
    csrf: String,
}

/// The answer to a form without this visitor's token.
fn stale_form() -> HttpResponse {
    HttpResponse::Forbidden()
        .content_type("text/plain; charset=utf-8")
        .body(
            "This form has expired or was not sent from this site: reload the page and try again.",
        )
}

async fn signin(
    session: Session,
    users: UserSessions,
    flash: Flash,
    form: web::Form<SignInForm>,
) -> actix_web::Result<HttpResponse> {
    if !csrf::is_valid(&SessionAccessor(session.clone()), &form.csrf) {
        return Ok(stale_form());
    }
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > 40 {
        flash.push(Level::Error, "A name of 1 to 40 characters, please.")?;
        return Ok(see_other("/signin"));
    }
    // (A real app checks the password here.)
    // Nothing of the visitor's earlier session carries over to the account (another
    // user's keys, if someone signs in over them), and a new id at every change of
    // privilege: an id an attacker planted before the sign-in (session fixation) is worth
    // nothing after it.
    session.clear();
    session.renew();
    // Listed among the user's sessions from now on ("your devices"), and ended with them.
    users.attach(name)?;
    let account = Account {
        user: name.to_owned(),
        signed_in_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs()),
    };
    account
        .save(&SessionAccessor(session))
        .map_err(ErrorInternalServerError)?;
    flash.push(Level::Success, format!("Welcome, {name}!"))?;
    Ok(see_other(safe_next(
        form.next.as_deref().unwrap_or("/account"),
    )))
}

async fn account(
    user: SignedIn,
    account: Typed<Account>,
    session: SessionAccessor,
    users: UserSessions,
    flash: Flash,
    info: SessionInfo,
    tiers: web::Data<Tiers>,
) -> actix_web::Result<Markup> {
    let token = csrf::issue(&session).map_err(ErrorInternalServerError)?;
    let panel = panel(&account, &info, &tiers)?;
    let sessions = users.list().await?;
    Ok(layout(
        "Your account",
        flash.messages(),
        &panel,
        html! {
            p id="who" { "Signed in as " strong { (user.user) } "." }
            p { "Only a signed-in visitor reaches this page: its handler takes a "
                code { "SignedIn" } " argument, which sends everyone else to the sign-in form." }
            (signout_button(&token))
            (devices(&sessions, &token))
        },
    ))
}

/// "Your sessions": every browser signed in as this user, the current one marked, each
/// other with a button that ends it.
fn devices(sessions: &[UserSession], token: &str) -> Markup {
    let now = SystemTime::now();
    html! {
        h2 { "Your sessions" }
        p class="hint" { "Every browser signed in as you. Ending one signs it out at once: its next request finds an empty session." }
        ul id="sessions" {
            @for s in sessions {
                li class="device" data-current=(s.current) {
                    strong { (if s.agent.is_empty() { "Unknown browser" } else { &s.agent }) }
                    @if s.current { " " span class="badge" { "this browser" } }
                    br;
                    span class="hint" { "signed in " (ago(now, s.signed_in)) ", last seen " (ago(now, s.last_seen)) }
                    @if !s.current {
                        form method="post" action="/sessions/end" class="inline" {
                            input type="hidden" name="csrf" value=(token);
                            input type="hidden" name="id" value=(s.id);
                            button type="submit" class="end" { "End" }
                        }
                    }
                }
            }
        }
        @if sessions.len() > 1 {
            form method="post" action="/sessions/end-others" {
                input type="hidden" name="csrf" value=(token);
                button type="submit" id="end-others" { "Sign out everywhere else" }
            }
        }
    }
}

/// "3 minutes ago", to the precision a sessions page needs.
fn ago(now: SystemTime, then: SystemTime) -> String {
    let secs = now.duration_since(then).map_or(0, |d| d.as_secs());
    match secs {
        0..=59 => "just now".to_owned(),
        60..=119 => "a minute ago".to_owned(),
        120..=3599 => format!("{} minutes ago", secs / 60),
        3600..=7199 => "an hour ago".to_owned(),
        _ => format!("{} hours ago", secs / 3600),
    }
}

/// The "End" button of one session.
#[derive(Deserialize)]
struct EndForm {
    #[serde(default)]
    csrf: String,
    id: String,
}

async fn end_session(
    _user: SignedIn,
    session: Session,
    users: UserSessions,
    flash: Flash,
    form: web::Form<EndForm>,
) -> actix_web::Result<HttpResponse> {
    if !csrf::is_valid(&SessionAccessor(session), &form.csrf) {
        return Ok(stale_form());
    }
    // Only an id of this user's own sessions ends anything.
    if users.end(&form.id).await? {
        flash.push(Level::Info, "That session is signed out.")?;
    }
    Ok(see_other("/account"))
}

async fn end_others(
    _user: SignedIn,
    session: Session,
    users: UserSessions,
    flash: Flash,
    form: web::Form<TokenForm>,
) -> actix_web::Result<HttpResponse> {
    if !csrf::is_valid(&SessionAccessor(session), &form.csrf) {
        return Ok(stale_form());
    }
    let ended = users.end_others().await?;
    flash.push(
        Level::Info,
        format!(
            "Signed out everywhere else ({ended} {}).",
            if ended == 1 { "session" } else { "sessions" }
        ),
    )?;
    Ok(see_other("/account"))
}

/// Sign out: the session ends (deleted on the server, the cookie removed), and the
/// message pushed after the purge reaches the next page from a fresh session.
async fn signout(
    session: Session,
    flash: Flash,
    form: web::Form<TokenForm>,
) -> actix_web::Result<HttpResponse> {
    if !csrf::is_valid(&SessionAccessor(session.clone()), &form.csrf) {
        return Ok(stale_form());
    }
    session.purge();
    flash.push(Level::Info, "You are signed out.")?;
    Ok(see_other("/"))
}

/// `GET /api/me`: who is signed in, or `401`.
async fn api_me(user: SignedIn) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "user": user.user }))
}

fn panel(
    account: &Typed<Account>,
    info: &SessionInfo,
    tiers: &Tiers,
) -> actix_web::Result<SessionPanel> {
    let keys = account
        .entries()
        .map_err(ErrorInternalServerError)?
        .into_iter()
        .map(|(key, json)| KeyView {
            key,
            value: serde_json::from_str(json.get()).ok(),
            hidden: false,
            note: if key == Account::USER_KEY {
                "who you are signed in as (absent: signed out)".to_owned()
            } else {
                "when you signed in (Unix seconds)".to_owned()
            },
        })
        .collect();
    let writes = account
        .changed_keys()
        .map_err(ErrorInternalServerError)?
        .into_iter()
        .map(str::to_owned)
        .collect();
    Ok(SessionPanel::new(info, tiers, keys, writes))
}

fn signout_button(token: &str) -> Markup {
    html! {
        form method="post" action="/signout" {
            input type="hidden" name="csrf" value=(token);
            button type="submit" id="signout" { "Sign out" }
        }
    }
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

fn layout(title: &str, flash: &[FlashMessage], panel: &SessionPanel, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Login example" }
                style { (maud::PreEscaped(CSS)) (maud::PreEscaped(example_support::PANEL_CSS)) }
            }
            body {
                main {
                    nav { a href="/" { "Home" } " · " a href="/account" { "Account" } }
                    h1 { (title) }
                    div role="status" aria-live="polite" {
                        @for message in flash {
                            p class={ "flash " (message.level.as_str()) } { (message.text) }
                        }
                    }
                    (body)
                    (panel.render(None))
                }
            }
        }
    }
}

const CSS: &str = "
body { font-family: system-ui, sans-serif; background: #f6f6f4; color: #1d1d1f; margin: 0; }
main { max-width: 36rem; margin: 2rem auto; padding: 1rem 2rem; background: #fff; border-radius: 12px; box-shadow: 0 1px 4px #0002; }
@media (max-width: 480px) { main { margin: 0; padding: .75rem 1rem; border-radius: 0; } }
.flash { padding: .5rem .75rem; border-radius: 6px; }
.flash.error { background: #fde2e1; } .flash.success { background: #dcf5e3; }
.flash.warning { background: #fff3cd; } .flash.info { background: #e3ecfd; }
label { display: block; margin-bottom: .3rem; } .row { display: flex; gap: .5rem; flex-wrap: wrap; }
.device { margin: .5rem 0; } .badge { background: #e3ecfd; border-radius: 4px; padding: 0 .35rem; font-size: .85rem; }
form.inline { display: inline; margin-left: .5rem; } #sessions { padding-left: 1.2rem; }
input { font-size: 1.1rem; } button { font-size: 1rem; padding: .35rem .9rem; } .hint { color: #666; font-size: .9rem; }
";
