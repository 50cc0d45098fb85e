//! The game's session panel: each `#[session]` field of [`MastermindState`] with its key,
//! its value and what it is for. The secret stays hidden until the game is over.

use example_support::{KeyView, SessionPanel, Tiers};
use session_actix::{SessionInfo, Typed};
use session_core::SessionSchema as _;

use crate::state::MastermindState;

/// The panel for a request that holds `state` (as its handler left it).
///
/// # Errors
///
/// If a field cannot be encoded (it always can: they are plain data).
pub fn panel(
    state: &Typed<MastermindState>,
    info: &SessionInfo,
    tiers: &Tiers,
    flash_shown: bool,
) -> Result<SessionPanel, session_core::SchemaError> {
    let over = state.revealed_secret().is_some();
    let keys = state
        .entries()?
        .into_iter()
        .map(|(key, json)| {
            let value = serde_json::from_str(json.get()).ok();
            match key {
                MastermindState::SECRET_KEY if !over => KeyView {
                    key,
                    value: None,
                    hidden: true,
                    note: "The code to break: stored on the server, never sent to your browser \
                           (shown here once the game is over)."
                        .to_owned(),
                },
                MastermindState::SECRET_KEY => KeyView {
                    key,
                    value,
                    hidden: false,
                    note: "The code you had to break: the game is over, so it may be shown."
                        .to_owned(),
                },
                MastermindState::GUESSES_KEY => KeyView {
                    key,
                    value,
                    hidden: false,
                    note: "Your guesses and their scores, oldest first: each guess rewrites \
                           this key, never the secret."
                        .to_owned(),
                },
                _ => KeyView {
                    key,
                    value,
                    hidden: false,
                    note: "How many guesses this game allows.".to_owned(),
                },
            }
        })
        .collect();
    let mut writes: Vec<String> = state
        .changed_keys()?
        .into_iter()
        .map(str::to_owned)
        .collect();
    if flash_shown {
        // Shown once: reading the messages removes them from the session.
        writes.push(format!("{}.*", session_actix::FLASH_KEY));
    }
    Ok(SessionPanel::new(info, tiers, keys, writes))
}
