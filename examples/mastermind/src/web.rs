//! The game's pages (HTML forms, no JavaScript needed) and its JSON API, on one session.

use actix_web::{
    error::ErrorInternalServerError,
    http::{header, StatusCode},
    web, HttpResponse,
};
use example_support::{SessionPanel, Tiers, PANEL_CSS};
use maud::{html, Markup, DOCTYPE};
use serde::{Deserialize, Serialize};
use session_actix::{Flash, Level, Session, SessionInfo, Typed};

use crate::{
    game::{Code, COLORS},
    panel::panel,
    state::{GuessError, MastermindState, Status},
};

/// Mounts the pages and the API. The app must also hold the store's [`Tiers`] as
/// `web::Data`, for the session panel.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/guess", web::post().to(guess_form))
        .route("/new", web::post().to(new_form))
        .route("/forget", web::post().to(forget_form))
        .route("/api/state", web::get().to(api_state))
        .route("/api/guess", web::post().to(api_guess))
        .route("/api/new", web::post().to(api_new))
        .route("/api/session", web::get().to(api_session))
        .route("/api/session", web::delete().to(api_forget));
}

type State = Typed<MastermindState>;

fn rng_failed(_: ring::error::Unspecified) -> actix_web::Error {
    ErrorInternalServerError("random source failed")
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

async fn index(
    mut state: State,
    flash: Flash,
    info: SessionInfo,
    tiers: web::Data<Tiers>,
) -> actix_web::Result<Markup> {
    state.ensure_game().map_err(rng_failed)?;
    let panel = panel(&state, &info, &tiers, !flash.messages().is_empty())
        .map_err(ErrorInternalServerError)?;
    Ok(page(&state, flash.messages(), &panel))
}

/// The form a player submits.
#[derive(Deserialize)]
struct GuessForm {
    guess: String,
}

async fn guess_form(
    mut state: State,
    flash: Flash,
    form: web::Form<GuessForm>,
) -> actix_web::Result<HttpResponse> {
    let secret = state.ensure_game().map_err(rng_failed)?;
    match form.guess.parse::<Code>() {
        Err(err) => flash.push(Level::Error, err.to_string())?,
        Ok(guess) => match state.play(secret, guess) {
            Ok(_) if state.status() == Status::Won => {
                flash.push(Level::Success, "You broke the code!")?;
            }
            Ok(_) if state.status() == Status::Lost => {
                flash.push(
                    Level::Warning,
                    format!("Out of guesses: the code was {secret}. Try another game!"),
                )?;
            }
            Ok(_) => {}
            Err(GuessError::GameOver) => {
                flash.push(Level::Warning, "This game is over: start a new one.")?;
            }
        },
    }
    Ok(see_other("/"))
}

async fn new_form(mut state: State, flash: Flash) -> actix_web::Result<HttpResponse> {
    state.new_game().map_err(rng_failed)?;
    flash.push(Level::Info, "New game: a fresh secret code is ready.")?;
    Ok(see_other("/"))
}

/// "Forget me": the session ends (the server deletes it, the browser's cookie is removed);
/// the message that says so travels in a fresh session of its own.
async fn forget_form(session: Session, flash: Flash) -> actix_web::Result<HttpResponse> {
    session.purge();
    flash.push(
        Level::Info,
        "Your session was deleted: the server forgot your game. This is a new one.",
    )?;
    Ok(see_other("/"))
}

/// The API's view of a game.
#[derive(Serialize)]
struct StateBody<'a> {
    status: Status,
    guesses: &'a [crate::state::Guess],
    remaining: u8,
    secret: Option<Code>,
}

fn state_body(state: &MastermindState) -> HttpResponse {
    HttpResponse::Ok().json(StateBody {
        status: state.status(),
        guesses: &state.guesses,
        remaining: state.remaining(),
        secret: state.revealed_secret(),
    })
}

fn api_error(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json_error(message))
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

fn serde_json_error(message: &str) -> ErrorBody<'_> {
    ErrorBody { error: message }
}

async fn api_state(mut state: State) -> actix_web::Result<HttpResponse> {
    state.ensure_game().map_err(rng_failed)?;
    Ok(state_body(&state))
}

/// `POST /api/guess` body.
#[derive(Deserialize)]
struct GuessBody {
    guess: String,
}

async fn api_guess(
    mut state: State,
    body: Result<web::Json<GuessBody>, actix_web::Error>,
) -> actix_web::Result<HttpResponse> {
    let secret = state.ensure_game().map_err(rng_failed)?;
    let Ok(body) = body else {
        return Ok(api_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            r#"expected a JSON body like {"guess":"RGBY"}"#,
        ));
    };
    let guess = match body.guess.parse::<Code>() {
        Ok(guess) => guess,
        Err(err) => {
            return Ok(api_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &err.to_string(),
            ))
        }
    };
    match state.play(secret, guess) {
        Ok(_) => Ok(state_body(&state)),
        Err(GuessError::GameOver) => Ok(api_error(
            StatusCode::CONFLICT,
            "the game is over: POST /api/new to start another",
        )),
    }
}

async fn api_new(mut state: State) -> actix_web::Result<HttpResponse> {
    state.new_game().map_err(rng_failed)?;
    Ok(state_body(&state))
}

/// `GET /api/session`: the session panel as JSON. Reading it starts no game and writes
/// nothing.
async fn api_session(
    state: State,
    info: SessionInfo,
    tiers: web::Data<Tiers>,
) -> actix_web::Result<web::Json<SessionPanel>> {
    Ok(web::Json(
        panel(&state, &info, &tiers, false).map_err(ErrorInternalServerError)?,
    ))
}

/// `DELETE /api/session`: ends the session.
async fn api_forget(session: Session) -> HttpResponse {
    session.purge();
    HttpResponse::NoContent().finish()
}

fn peg(color: crate::game::Color) -> Markup {
    html! {
        span class={ "peg " (color.name()) } role="img" aria-label=(color.name()) title=(color.name()) {
            (color.letter())
        }
    }
}

/// A score as small pegs, with its number for screen readers and scripts.
fn score_pegs(kind: &str, n: u8) -> Markup {
    html! {
        span class={ "score " (kind) } data-count=(n) {
            @for _ in 0..n { span class={ "key-peg " (kind) } aria-hidden="true" {} }
            @if n == 0 { span class="none" aria-hidden="true" { "–" } }
            span class="sr-only" { (n) " " (kind) }
        }
    }
}

fn page(
    state: &MastermindState,
    flash: &[session_actix::FlashMessage],
    panel: &SessionPanel,
) -> Markup {
    let status = state.status();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Mastermind" }
                style { (maud::PreEscaped(CSS)) (maud::PreEscaped(PANEL_CSS)) }
            }
            body {
                main {
                    h1 { "Mastermind" }
                    p class="rules" {
                        "Break the secret code: 4 pegs from six colours, repeats allowed. "
                        "After each guess, " strong { "black" } " counts pegs of the right colour in the right place, "
                        strong { "white" } " the right colour in the wrong place."
                    }
                    div role="status" aria-live="polite" {
                        @for message in flash {
                            p class={ "flash " (message.level.as_str()) } { (message.text) }
                        }
                    }
                    @match status {
                        Status::Won => p id="outcome" class="outcome won" { "You won in " (state.guesses.len()) " guesses!" },
                        Status::Lost => p id="outcome" class="outcome lost" { "Out of guesses: you lost this one." },
                        Status::Playing => p id="outcome" class="outcome" { (state.remaining()) " guesses left." },
                    }
                    @if let Some(secret) = state.revealed_secret() {
                        p id="secret" { "The secret was " @for color in secret.0 { (peg(color)) } " (" (secret) ")." }
                    }
                    table id="board" {
                        caption { "Your guesses" }
                        thead { tr { th scope="col" { "#" } th scope="col" { "Guess" } th scope="col" { "Black" } th scope="col" { "White" } } }
                        tbody {
                            @for (n, guess) in state.guesses.iter().enumerate() {
                                tr {
                                    td { (n + 1) }
                                    td class="code" { @for color in guess.guess.0 { (peg(color)) } }
                                    td class="black" data-count=(guess.black) { (score_pegs("black", guess.black)) }
                                    td class="white" data-count=(guess.white) { (score_pegs("white", guess.white)) }
                                }
                            }
                            @if state.guesses.is_empty() {
                                tr class="empty" { td colspan="4" { "No guesses yet." } }
                            }
                        }
                    }
                    @if status == Status::Playing {
                        form method="post" action="/guess" class="guess" {
                            label for="guess" { "Your guess: four letters from "
                                @for color in COLORS { (peg(color)) } }
                            div class="row" {
                                input id="guess" name="guess" required autocomplete="off" autofocus
                                    maxlength="4" pattern="[RGBYOPrgbyop]{4}" placeholder="RGBY";
                                button type="submit" id="submit-guess" { "Guess" }
                            }
                        }
                    }
                    form method="post" action="/new" {
                        button type="submit" id="new-game" { "New game" }
                    }
                    (panel.render(Some("/forget")))
                }
            }
        }
    }
}

const CSS: &str = "
body { font-family: system-ui, sans-serif; background: #f6f6f4; color: #1d1d1f; margin: 0; }
main { max-width: 40rem; margin: 2rem auto; padding: 1rem 2rem; background: #fff; border-radius: 12px; box-shadow: 0 1px 4px #0002; }
@media (max-width: 480px) { main { margin: 0; padding: .75rem 1rem; border-radius: 0; } .peg { width: 1.4rem; height: 1.4rem; line-height: 1.4rem; } }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.score { display: inline-flex; gap: .2rem; align-items: center; min-height: 1rem; }
.key-peg { display: inline-block; width: .7rem; height: .7rem; border-radius: 50%; border: 1px solid #333; }
.key-peg.black { background: #111; } .key-peg.white { background: #fff; }
.score .none { color: #999; }
tr.empty td { color: #666; font-style: italic; }
.guess label { display: block; margin-bottom: .4rem; }
.guess .row { display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; }
.peg { display: inline-block; width: 1.6rem; height: 1.6rem; line-height: 1.6rem; margin: 0 .1rem; border-radius: 50%;
       text-align: center; font-size: .75rem; font-weight: bold; color: #fff; text-shadow: 0 0 2px #000; vertical-align: middle; }
.red { background: #d62828; } .green { background: #2a9d43; } .blue { background: #1d5fd1; }
.yellow { background: #e9c400; } .orange { background: #f07c12; } .purple { background: #7b3fb5; }
table { border-collapse: collapse; margin: 1rem 0; width: 100%; }
th, td { padding: .3rem .5rem; border-bottom: 1px solid #ddd; text-align: left; }
.flash { padding: .5rem .75rem; border-radius: 6px; }
.flash.error { background: #fde2e1; } .flash.success { background: #dcf5e3; }
.flash.warning { background: #fff3cd; } .flash.info { background: #e3ecfd; }
.outcome.won { color: #1b7a34; font-weight: bold; } .outcome.lost { color: #b3261e; font-weight: bold; }
form { margin: .75rem 0; } input { font-size: 1.2rem; width: 7rem; text-transform: uppercase; letter-spacing: .2rem; }
button { font-size: 1rem; padding: .35rem .9rem; }
";
