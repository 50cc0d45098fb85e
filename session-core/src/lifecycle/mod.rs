//! The session lifecycle as pure decisions: what a request does with the session it
//! presented, before and after its handler runs.
//!
//! A web layer (session-actix's middleware) finds the cookie, loads the record, and asks
//! [`start`] what the handler gets; after the handler, it describes what the handler did
//! ([`Handled`]) and asks [`finish`] what to write. It then carries out the [`Finish`]
//! (through [`Sessions`]) and sets the cookie the plan names. Nothing here does I/O,
//! reads a clock or knows a framework, so each row of the tables below is a unit test.
//!
//! # Before the handler: [`start`]
//!
//! Checked in this order; the first row that applies decides.
//!
//! | presented | condition | [`Start`] |
//! |---|---|---|
//! | no session (no cookie, a cookie that does not open, an id with no live record) | – | [`New`](Start::New) |
//! | a record that cannot be checked (its metadata does not decode) | – | [`Replace`](Start::Replace) ([`Unreadable`](Refusal::Unreadable), [`End`](OldRecord::End)) |
//! | a live record | `now ≥ created + absolute_timeout` | `Replace`([`AbsoluteTimeout`](Refusal::AbsoluteTimeout), `End`) |
//! | | `now ≥ expires_at` (idle) | `Replace`([`IdleTimeout`](Refusal::IdleTimeout), `End`) |
//! | | the client does not match the binding | `Replace`([`BindingMismatch`](Refusal::BindingMismatch), [`Keep`](OldRecord::Keep)): presenting a stolen cookie must not end its owner's session; with [`TheftResponse::Revoke`], [`End`](OldRecord::End) |
//! | | `now ≥ issued + rotation`, or its cookie or binding is of a previous key | [`Continue`](Start::Continue) with `rotate` |
//! | | `expires_at − now ≤ ¾ idle_timeout` | `Continue` with `refresh` |
//! | | otherwise | `Continue` |
//!
//! `Continue` also carries `forwarded`: the client presented a rotated-away id in its grace
//! window, and must be handed its session's current id.
//!
//! # After the handler: [`finish`]
//!
//! | start | handler | [`Finish`] | cookie |
//! |---|---|---|---|
//! | any | purged | [`End`](Finish::End) the loaded family (if `Continue` or `Replace`/`End`) | removed |
//! | `Continue` | purged, then stored something (a flash message after a logout) | [`Create`](Finish::Create) under a fresh id, ending the loaded family | set |
//! | `New`, `Replace` | left the session empty | [`Nothing`](Finish::Nothing) (`Replace`/`End`: [`End`](Finish::End) the old family) | removed if the client sent one |
//! | `New`, `Replace` | stored anything | [`Create`](Finish::Create) under a fresh id (`Replace`/`End`: ending the old family) | set |
//! | `Continue` | renewed | [`Renew`](Finish::Renew): the state under a fresh id, the old record claimed by an ended marker naming it | set |
//! | `Continue` with `rotate` | anything else | [`Rotate`](Finish::Rotate) to the successor id, with the changes | set |
//! | `Continue` | changed | [`Write`](Finish::Write) the changes | set if persistent (new expiry) or `forwarded` |
//! | `Continue` with `refresh` | unchanged | [`Touch`](Finish::Touch) (extend the expiry) | set if persistent or `forwarded` |
//! | `Continue`, `forwarded` | unchanged | `Touch`: the current id is handed out only if its record is still the version loaded | set |
//! | `Continue` | unchanged | `Nothing` | – |
//!
//! A `Write` is of the keys the handler changed, not of the whole state: it lands on the
//! record's current version even if another request wrote meanwhile (see
//! [`apply_changes`](crate::store::apply_changes)).

mod family;
mod sessions;
pub mod users;

use std::time::{Duration, SystemTime};

pub use family::RotationKey;
pub use sessions::{unix_millis, Loaded, Outcome, Sessions, SessionsConfig, SessionsError};
pub use users::{UserKey, UserSession};

/// The settings the decisions depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long a session lives without requests.
    pub idle_timeout: Duration,
    /// How long a session lives at most; `None` for no limit.
    pub absolute_timeout: Option<Duration>,
    /// How often the id rotates; `None` for never.
    pub rotation: Option<Duration>,
    /// What a likely theft (a binding mismatch; a rotated-away id replayed after its
    /// grace window) does besides refusing the request.
    pub theft: TheftResponse,
}

/// What a likely theft of a session does, besides refusing the request that showed it: a
/// client that does not match the session's binding, or an id that was rotated away and is
/// presented after its grace window (the refresh-token reuse detection of the OAuth 2.0
/// Security BCP). Both are counted (`session_theft_signals_total`) and logged, without
/// the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TheftResponse {
    /// Log and count; the owner's session is untouched (a false alarm costs nothing).
    #[default]
    Log,
    /// Also end the owner's session, the whole rotation family (counted in
    /// `session_revocations_total`): whoever holds the stolen id, and the owner, start
    /// afresh; the owner signs in again.
    Revoke,
}

impl Policy {
    /// When a session last refreshed (or written) is refreshed again: once less than three
    /// quarters of the idle timeout are left, so an unchanged session costs at most one
    /// write per quarter of the idle timeout.
    #[must_use]
    pub fn refresh_due(&self, expires_at: SystemTime, now: SystemTime) -> bool {
        let left = expires_at.duration_since(now).unwrap_or_default();
        left <= self.idle_timeout - self.idle_timeout / 4
    }
}

/// What the layer found out about the session a request presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// The time of the request.
    pub now: SystemTime,
    /// When the session was created.
    pub created_at: SystemTime,
    /// When the session expires unless refreshed.
    pub expires_at: SystemTime,
    /// When its current id was issued.
    pub issued_at: SystemTime,
    /// Whether the client matches the session's binding (true when binding is off and the
    /// session is unbound).
    pub binding_matches: bool,
    /// Whether the id presented was rotated away and forwarded to its successor.
    pub forwarded: bool,
    /// Whether the cookie or the binding was made under a previous key (key rotation):
    /// the session moves to an id, cookie and binding of the current key now.
    pub stale_key: bool,
}

/// What the request presented, for [`start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    /// No session: no cookie, one that does not open, or an id with no live record.
    Nothing,
    /// A record whose metadata could not be checked.
    Unreadable,
    /// A live record.
    Session(Facts),
}

/// Why a presented session is not continued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// It passed its absolute timeout.
    AbsoluteTimeout,
    /// It passed its idle timeout.
    IdleTimeout,
    /// The client does not match what the session is bound to.
    BindingMismatch,
    /// Its metadata does not decode, so it cannot be checked.
    Unreadable,
}

impl Refusal {
    /// A short description for logs.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::AbsoluteTimeout => "absolute timeout",
            Self::IdleTimeout => "idle timeout",
            Self::BindingMismatch => "client does not match the session's binding",
            Self::Unreadable => "session metadata does not decode",
        }
    }
}

/// What happens to a refused session's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldRecord {
    /// It is ended, with its whole rotation family.
    End,
    /// It is left as it is.
    Keep,
}

/// What the handler gets: [`start`]'s decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// An empty session; nothing is stored unless the handler stores something.
    New,
    /// The loaded session.
    Continue {
        /// The id is due to rotate.
        rotate: bool,
        /// The expiry is due to be extended.
        refresh: bool,
        /// The client presented a rotated-away id; hand it the current one.
        forwarded: bool,
    },
    /// An empty session instead of the one presented, which is not shown to the handler.
    Replace {
        /// Why.
        reason: Refusal,
        /// What happens to the presented record.
        old: OldRecord,
    },
}

/// Decides what the handler gets.
#[must_use]
pub fn start(policy: &Policy, presented: Presented) -> Start {
    let facts = match presented {
        Presented::Nothing => return Start::New,
        Presented::Unreadable => return replace(Refusal::Unreadable, OldRecord::End),
        Presented::Session(facts) => facts,
    };
    let now = facts.now;
    if let Some(limit) = policy.absolute_timeout {
        if now >= facts.created_at + limit {
            return replace(Refusal::AbsoluteTimeout, OldRecord::End);
        }
    }
    if now >= facts.expires_at {
        return replace(Refusal::IdleTimeout, OldRecord::End);
    }
    if !facts.binding_matches {
        // Presenting a stolen cookie must not end its owner's session, unless the policy
        // says a likely theft should.
        let old = match policy.theft {
            TheftResponse::Revoke => OldRecord::End,
            TheftResponse::Log => OldRecord::Keep,
        };
        return replace(Refusal::BindingMismatch, old);
    }
    let rotate = facts.stale_key
        || policy
            .rotation
            .is_some_and(|every| now >= facts.issued_at + every);
    Start::Continue {
        rotate,
        refresh: !rotate && policy.refresh_due(facts.expires_at, now),
        forwarded: facts.forwarded,
    }
}

fn replace(reason: Refusal, old: OldRecord) -> Start {
    Start::Replace { reason, old }
}

/// What the handler did to its session, as the layer observed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Handled {
    /// It ended the session (`purge`, a logout). What it stored afterwards (only flash
    /// messages can be) starts a fresh session.
    pub purged: bool,
    /// It asked for a new id (`renew`, at a login).
    pub renewed: bool,
    /// Its state differs from what it was given.
    pub changed: bool,
    /// Its state is now empty.
    pub empty: bool,
}

/// What to do after the handler: [`finish`]'s decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// No store call.
    Nothing,
    /// Extend the loaded record's expiry.
    Touch,
    /// Write the handler's changes onto the loaded record.
    Write,
    /// Move the session, with the handler's changes, to its successor id; the old id
    /// forwards to it for the grace window.
    Rotate,
    /// Store the handler's state as a new session under a fresh id.
    Create,
    /// Store the session's state (as loaded, with the handler's changes) under a fresh id,
    /// and end the old id: a marker that names the fresh key replaces the old record, if
    /// it is still the version loaded (requests in flight follow it; see
    /// [`Sessions::carry_out`]).
    Renew,
    /// End the loaded (or refused) session's family; store nothing.
    End,
}

/// What [`finish`] decides: the store work, whether an old record's family is ended
/// before a [`Finish::Create`], and what the cookie becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The store work.
    pub finish: Finish,
    /// With [`Finish::Create`] or [`Finish::Nothing`] after a refused session: end the
    /// refused session's family too.
    pub end_old: bool,
    /// What the response does with the cookie.
    pub cookie: CookieAction,
}

/// What the response does with the session cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieAction {
    /// Leave it as the client has it.
    Keep,
    /// Set it (a new id, or a new expiry).
    Set,
    /// Remove it from the client.
    Remove,
}

/// Decides what to write once the handler is done. `persistent`: whether the cookie
/// carries an expiry (which moves with every write and refresh).
#[must_use]
pub fn finish(start: Start, handled: Handled, persistent: bool) -> Plan {
    let plan = |finish, end_old, cookie| Plan {
        finish,
        end_old,
        cookie,
    };
    match start {
        Start::New | Start::Replace { .. } => {
            let end_old = matches!(
                start,
                Start::Replace {
                    old: OldRecord::End,
                    ..
                }
            );
            let presented = matches!(start, Start::Replace { .. });
            // Purged and left empty, or never filled: nothing to store.
            if handled.empty {
                let cookie = if presented {
                    CookieAction::Remove
                } else {
                    CookieAction::Keep
                };
                let finish = if end_old {
                    Finish::End
                } else {
                    Finish::Nothing
                };
                plan(finish, false, cookie)
            } else {
                plan(Finish::Create, end_old, CookieAction::Set)
            }
        }
        Start::Continue {
            rotate,
            refresh,
            forwarded,
        } => {
            let expiry_moves = if persistent || forwarded {
                CookieAction::Set
            } else {
                CookieAction::Keep
            };
            if handled.purged && handled.empty {
                plan(Finish::End, false, CookieAction::Remove)
            } else if handled.purged {
                // Ended, but something was stored after the end (a "signed out" flash
                // message): a fresh session holds it, under a new id.
                plan(Finish::Create, true, CookieAction::Set)
            } else if handled.renewed {
                plan(Finish::Renew, false, CookieAction::Set)
            } else if rotate {
                plan(Finish::Rotate, false, CookieAction::Set)
            } else if handled.changed {
                plan(Finish::Write, false, expiry_moves)
            } else if refresh {
                plan(Finish::Touch, false, expiry_moves)
            } else if forwarded {
                // The client is handed its current id: touched, so that the id is checked
                // against the version loaded (one renewed or ended meanwhile is not given).
                plan(Finish::Touch, false, CookieAction::Set)
            } else {
                plan(Finish::Nothing, false, CookieAction::Keep)
            }
        }
    }
}

#[cfg(test)]
mod tests;
