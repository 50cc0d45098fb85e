//! Stage 6: what the handler did to its `Session`, against what it was given.

use actix_session::{SessionExt as _, SessionStatus};
use actix_web::HttpRequest;
use serde_json::value::RawValue;
use session_core::{lifecycle::Handled, Changes, State, StoreError};

/// How the handler left the session (`purge`, `renew`, changed, empty) and the keys it
/// set or removed against `given` (the state it was handed, as stored).
pub(crate) fn collect(
    req: &HttpRequest,
    given: Option<&State>,
) -> Result<(Handled, Changes), StoreError> {
    let session = req.get_session();
    let status = session.status();
    let entries = session.entries();
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
        purged: status == SessionStatus::Purged,
        renewed: status == SessionStatus::Renewed,
        changed: !changes.is_empty(),
        empty: entries.is_empty(),
    };
    Ok((handled, changes))
}
