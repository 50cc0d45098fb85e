//! Stage 6: what the handler did to its `Session` (and its flash messages), against what
//! it was given.

use actix_session::{SessionExt as _, SessionStatus};
use actix_web::{HttpMessage as _, HttpRequest};
use serde_json::value::RawValue;
use session_core::{
    lifecycle::{
        users::{Principal, UNTIL_KEY, USER_KEY},
        Handled,
    },
    Changes, State, StoreError,
};

use crate::{
    flash::{is_flash_key, message_key},
    flash_message::FlashMessage,
    frame::Frame,
    users::UserRequest,
};

/// How the handler left the session (`purge`, `renew`, changed, empty) and the keys it
/// set or removed against `given` (the state it was handed, as stored).
///
/// Flash messages are kept out of the handler's `Session`; their key is worked out here
/// from the frame: the pending ones stay unless a handler read them, and pushed ones are
/// added. After a purge, only the messages pushed after it remain, and they are all of the
/// fresh session's state. The session's user is kept out of the handler's `Session` too,
/// and changes only by what the handler asked of [`UserSessions`](crate::UserSessions).
pub(crate) fn collect(
    req: &HttpRequest,
    given: Option<&State>,
) -> Result<(Handled, Changes), StoreError> {
    let session = req.get_session();
    let status = session.status();
    let purged = status == SessionStatus::Purged;
    let given = if purged { None } else { given };
    let entries = session.entries();
    let extensions = req.extensions();
    let frame = extensions.get::<Frame>();
    let flash_enabled = frame.is_some_and(|frame| frame.flash_enabled);
    // Keys the handler's `Session` never held: a key of that name it set is not stored.
    let reserved =
        |key: &str| key == USER_KEY || key == UNTIL_KEY || (flash_enabled && is_flash_key(key));

    let mut changes = Changes::new();
    let mut stored = 0;
    if !purged {
        if let Some(given) = given {
            for key in given.keys() {
                if !reserved(key) && !entries.contains_key(key) {
                    changes.remove(key.clone());
                }
            }
        }
        for (key, json) in entries.iter().filter(|(key, _)| !reserved(key)) {
            stored += 1;
            let before = given.and_then(|given| given.get(key));
            if before.is_none_or(|before| before.get() != json) {
                let value = RawValue::from_string(json.clone()).map_err(StoreError::corrupt)?;
                changes.set(key.clone(), value);
            }
        }
    }
    if let Some(frame) = frame.filter(|frame| frame.flash_enabled) {
        // Each message under a key of its own: a request that shows the earlier messages
        // removes their keys, one that pushes adds keys, and the two never overwrite each
        // other's change.
        if !purged {
            for key in &frame.broken_flash_keys {
                changes.remove(key.clone());
            }
            if frame.flash_shown {
                for key in &frame.incoming_flash_keys {
                    changes.remove(key.clone());
                }
            } else {
                stored += frame.incoming_flash_keys.len();
            }
        }
        let pushed: &[FlashMessage] = if purged { &[] } else { &frame.flash_pushed };
        for message in pushed.iter().chain(&frame.flash_after_purge) {
            stored += 1;
            let json = serde_json::to_string(message).map_err(StoreError::corrupt)?;
            let value = RawValue::from_string(json).map_err(StoreError::corrupt)?;
            changes.set(message_key()?, value);
        }
    }
    if let Some(frame) = frame {
        let before = given.and_then(|given| given.get(USER_KEY));
        match &frame.user_request {
            None if before.is_some() => stored += 1,
            None => {}
            Some(UserRequest::Detach) if before.is_some() => {
                changes.remove(USER_KEY.to_owned());
                if given.is_some_and(|given| given.contains_key(UNTIL_KEY)) {
                    changes.remove(UNTIL_KEY.to_owned());
                }
            }
            Some(UserRequest::Detach) => {}
            Some(UserRequest::Attach(user)) => {
                stored += 1;
                let attached =
                    before.is_some() && frame.principal.as_ref().is_some_and(|p| &p.user == user);
                if !attached {
                    let agent = req
                        .headers()
                        .get(actix_web::http::header::USER_AGENT)
                        .and_then(|value| value.to_str().ok());
                    let principal = Principal::attach(user.clone(), agent)?;
                    let value =
                        serde_json::value::to_raw_value(&principal).map_err(StoreError::corrupt)?;
                    changes.set(USER_KEY, value);
                }
            }
        }
    }
    let handled = Handled {
        purged,
        renewed: status == SessionStatus::Renewed,
        changed: !changes.is_empty(),
        empty: stored == 0,
    };
    Ok((handled, changes))
}
