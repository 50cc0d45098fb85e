//! Stage 4: hand the session's state to actix-session's `Session` (through its public API)
//! and pending flash messages to [`Flash`](crate::Flash).

use actix_session::SessionExt as _;
use actix_web::{dev::ServiceRequest, HttpMessage as _};
use std::sync::Arc;

use session_core::{
    lifecycle::users::{Principal, UNTIL_KEY, USER_KEY},
    Record,
};

use crate::{
    flash::{is_flash_key, FLASH_KEY},
    flash_message::FlashMessage,
    frame::Frame,
    info::SessionInfo,
    users::Directory,
};

/// Puts `given` (the continued session's record, if any) into the request's `Session`, all
/// but pending flash messages, which go to the [`Frame`]: they leave the session only when
/// a handler reads them ([`Flash::messages`](crate::Flash::messages)), so each is shown once,
/// and a request that does not show them (an API call, an asset) leaves them for the page
/// that will ([`collect`](crate::collect) writes the outcome). The session's user (if it
/// is attached to one) goes to the frame too, for [`UserSessions`](crate::UserSessions).
pub(crate) fn hand_over(
    req: &ServiceRequest,
    given: Option<&Record>,
    flash_enabled: bool,
    info: SessionInfo,
    directory: Option<Arc<dyn Directory>>,
) {
    let mut flash: Vec<(&str, Vec<FlashMessage>)> = Vec::new();
    let mut broken_flash_keys = Vec::new();
    let mut principal = None;
    if let Some(record) = given {
        let session = req.get_session();
        for (key, value) in &record.state {
            if flash_enabled && is_flash_key(key) {
                // One message per key; the list of an earlier release under `__flash`.
                let decoded = if key == FLASH_KEY {
                    serde_json::from_str(value.get())
                } else {
                    serde_json::from_str(value.get()).map(|message| vec![message])
                };
                match decoded {
                    Ok(messages) => flash.push((key.as_str(), messages)),
                    Err(err) => {
                        tracing::warn!(error = %err, "a pending flash message does not decode; dropped");
                        broken_flash_keys.push(key.clone());
                    }
                }
                continue;
            }
            if key == USER_KEY {
                principal = Principal::of(&record.state);
                continue;
            }
            if key == UNTIL_KEY {
                continue;
            }
            // A raw JSON value serializes as itself: the handler sees the stored text.
            if let Err(err) = session.insert(key.as_str(), value) {
                tracing::warn!(key, error = %err, "session value could not be handed over");
            }
        }
    }
    // In the order they were pushed (the keys say when; the old list first).
    flash.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let incoming_flash_keys = flash.iter().map(|(key, _)| (*key).to_owned()).collect();
    let incoming_flash = flash
        .into_iter()
        .flat_map(|(_, messages)| messages)
        .collect();
    req.extensions_mut().insert(Frame {
        flash_enabled,
        incoming_flash,
        incoming_flash_keys,
        broken_flash_keys,
        flash_shown: false,
        flash_pushed: Vec::new(),
        flash_after_purge: Vec::new(),
        info,
        principal,
        user_request: None,
        directory,
    });
}
