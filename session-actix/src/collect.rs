//! Stage 6: what the handler did to its `Session`, against what it was given.

use std::collections::HashMap;

use actix_session::{SessionExt as _, SessionStatus};
use actix_web::{HttpMessage as _, HttpRequest};
use serde_json::value::RawValue;
use session_core::{lifecycle::Handled, Changes, State, StoreError};

use crate::{flash::FLASH_KEY, frame::Frame};

/// How the handler left the session (`purge`, `renew`, changed, empty) and the keys it
/// set or removed against `given` (the state it was handed, as stored).
pub(crate) fn collect(
    req: &HttpRequest,
    given: Option<&State>,
) -> Result<(Handled, Changes), StoreError> {
    let session = req.get_session();
    let status = session.status();
    let purged = status == SessionStatus::Purged;
    let in_session = session.entries();
    let after_purge;
    let (entries, given) = if purged {
        // Nothing of the ended session carries over; flash messages pushed after the
        // purge start a fresh one, so they are all of its state.
        after_purge = flash_after_purge(req)?;
        (&after_purge, None)
    } else {
        (&*in_session, given)
    };
    let mut changes = Changes::new();
    if let Some(given) = given {
        for key in given.keys() {
            if !entries.contains_key(key) {
                changes.remove(key.clone());
            }
        }
    }
    for (key, json) in entries.iter() {
        let before = given.and_then(|given| given.get(key));
        if before.is_none_or(|before| before.get() != json) {
            let value = RawValue::from_string(json.clone()).map_err(StoreError::corrupt)?;
            changes.set(key.clone(), value);
        }
    }
    let handled = Handled {
        purged,
        renewed: status == SessionStatus::Renewed,
        changed: !changes.is_empty(),
        empty: entries.is_empty(),
    };
    Ok((handled, changes))
}

/// The state a purged session leaves for its successor: the flash messages pushed after
/// the purge, if any.
fn flash_after_purge(req: &HttpRequest) -> Result<HashMap<String, String>, StoreError> {
    let mut state = HashMap::new();
    if let Some(frame) = req.extensions().get::<Frame>() {
        if !frame.flash_after_purge.is_empty() {
            let json =
                serde_json::to_string(&frame.flash_after_purge).map_err(StoreError::corrupt)?;
            state.insert(FLASH_KEY.to_owned(), json);
        }
    }
    Ok(state)
}
