//! Stage 4: hand the session's state to actix-session's `Session` (through its public API)
//! and pending flash messages to [`Flash`](crate::Flash).

use actix_session::SessionExt as _;
use actix_web::{dev::ServiceRequest, HttpMessage as _};
use std::sync::Arc;

use session_core::{
    lifecycle::users::{Principal, UNTIL_KEY, USER_KEY},
    Record,
};

use crate::{flash::FLASH_KEY, frame::Frame, info::SessionInfo, users::Directory};

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
    let mut incoming_flash = Vec::new();
    let mut principal = None;
    if let Some(record) = given {
        let session = req.get_session();
        for (key, value) in &record.state {
            if flash_enabled && key == FLASH_KEY {
                incoming_flash = serde_json::from_str(value.get()).unwrap_or_else(|err| {
                    tracing::warn!(error = %err, "pending flash messages do not decode; dropped");
                    Vec::new()
                });
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
    req.extensions_mut().insert(Frame {
        flash_enabled,
        incoming_flash,
        flash_shown: false,
        flash_pushed: Vec::new(),
        flash_after_purge: Vec::new(),
        info,
        principal,
        user_request: None,
        directory,
    });
}
