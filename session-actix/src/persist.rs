//! Stage 7: carry out the lifecycle's plan, on the store or in the cookie, and say what
//! the cookie becomes.

use std::time::SystemTime;

use actix_web::HttpRequest;
use session_core::{
    lifecycle::{users::USER_KEY, CookieAction, Finish, Outcome, Plan},
    Changes, Metadata, Record, Store, StoreError,
};

use crate::{
    client,
    load::{encode_cookie_record, Found},
    shared::Shared,
    storage::Storage,
};

/// A browser keeps cookies up to about 4 KiB, name and value.
const MAX_COOKIE_BYTES: usize = 4064;

/// What the response does with the session cookie.
pub(crate) enum Issued {
    /// Nothing: the client keeps what it has.
    Keep,
    /// Set it to `value`, expiring at `expires_at`.
    Set {
        /// The sealed value.
        value: String,
        /// When the session expires.
        expires_at: SystemTime,
    },
    /// Remove it.
    Remove,
}

/// Carries out `plan` for the session `found` (which `continues`, or was refused or
/// absent), with the handler's `changes`.
pub(crate) async fn carry_out<S: Store>(
    inner: &Shared<S>,
    plan: &Plan,
    found: Found,
    continues: bool,
    changes: Changes,
    req: &HttpRequest,
    now: SystemTime,
) -> Result<Issued, StoreError> {
    // The common case, a read that changes nothing: no store call, no cookie.
    if plan.finish == Finish::Nothing && plan.cookie == CookieAction::Keep {
        return Ok(Issued::Keep);
    }
    let settings = &inner.settings;
    // New ids are bound afresh, under the current key; attaching a user renews the id.
    let signs_in = changes
        .change_of(USER_KEY)
        .is_some_and(|value| value.is_some());
    let binding = || match plan.finish {
        Finish::Create | Finish::Renew | Finish::Rotate => client::fingerprint(req, settings),
        _ if signs_in => client::fingerprint(req, settings),
        _ => None,
    };
    match &inner.storage {
        Storage::Server(sessions) => {
            let loaded = match found {
                Found::Server(loaded) => Some(loaded),
                Found::Nothing | Found::Cookie(_) => None,
            };
            // The id the client holds, and what it should hold if nothing changes: only for
            // a session that continues. A refused one (a binding mismatch through a grace
            // forward) must never hand out the id it resolved to.
            let continued = loaded.as_ref().filter(|_| continues);
            let held = continued.map(|l| l.held().clone());
            let current = continued.map(|l| Outcome::Live(l.token.clone(), l.record.expires_at));
            let outcome = sessions
                .carry_out(plan, loaded, changes, binding(), now)
                .await?;
            let seal = |token: &session_core::SessionToken, expires_at| {
                let value = settings
                    .sealer
                    .seal(&token.to_bytes())
                    .map_err(StoreError::unavailable)?;
                Ok(Issued::Set { value, expires_at })
            };
            match outcome.or(current) {
                Some(Outcome::Ended) => Ok(Issued::Remove),
                // Renewed by a concurrent request, whose response carries the fresh id.
                Some(Outcome::Moved) => Ok(Issued::Keep),
                Some(Outcome::Live(token, expires_at))
                    if plan.cookie == CookieAction::Set || held.as_ref() != Some(&token) =>
                {
                    seal(&token, expires_at)
                }
                _ if plan.cookie == CookieAction::Remove => Ok(Issued::Remove),
                _ => Ok(Issued::Keep),
            }
        }
        Storage::Cookie => {
            let found = match found {
                Found::Cookie(record) => Some(record),
                Found::Nothing | Found::Server(_) => None,
            };
            let expires_at = now + settings.policy.idle_timeout;
            let record = match plan.finish {
                Finish::Nothing => None,
                Finish::End => return Ok(Issued::Remove),
                Finish::Create => {
                    let mut record = Record::new(now, expires_at);
                    record.meta = Metadata::new_session(binding(), now);
                    Some(record)
                }
                Finish::Touch | Finish::Write | Finish::Rotate | Finish::Renew => {
                    found.map(|found| {
                        let mut record = found.next_version();
                        record.expires_at = expires_at;
                        match plan.finish {
                            Finish::Renew => record.meta = Metadata::new_session(binding(), now),
                            // A cookie of a previous key: re-sealed, and bound, under the
                            // current one.
                            Finish::Rotate => record.meta.binding = binding(),
                            _ => {}
                        }
                        record
                    })
                }
            };
            let Some(mut record) = record else {
                return Ok(match plan.cookie {
                    CookieAction::Remove => Issued::Remove,
                    CookieAction::Keep | CookieAction::Set => Issued::Keep,
                });
            };
            changes.apply(&mut record.state);
            let value = settings
                .sealer
                .seal(&encode_cookie_record(&record)?)
                .map_err(StoreError::unavailable)?;
            let size = settings.cookie_name.len() + 1 + value.len();
            if size > MAX_COOKIE_BYTES {
                return Err(StoreError::TooLarge {
                    size,
                    max: MAX_COOKIE_BYTES,
                });
            }
            Ok(Issued::Set { value, expires_at })
        }
    }
}
