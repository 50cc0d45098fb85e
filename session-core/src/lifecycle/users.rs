//! Sessions of a user: the index behind a "your devices" page and "sign out everywhere".
//!
//! # How it is kept
//!
//! A session attached to a user holds a [`Principal`] in its state, under the reserved key
//! [`USER_KEY`]: the user id, the session's *entry id* in the user's index (random, stable
//! across id rotations), and (under [`UNTIL_KEY`]) until when the index is known to live.
//! The user's **index**
//! is a record of its own in the same store, under a key derived from the user id
//! ([`UserKey`], per layer): one entry per session, naming the keys the session may live
//! under (the successor a rotation in progress is moving it to, the fresh key of a renewal
//! in progress). Writes add keys to an entry and never replace them, so whichever of two
//! racing requests of one session lands (a renewal and a rotation), the key it leaves the
//! session under is reachable.
//!
//! Attaching a user renews the session's id ([`Finish::Renew`](super::Finish::Renew)), so
//! an attachment never reuses the key of an earlier one, and ending a session through an
//! entry leaves alone a session that holds another entry (or none): an entry left behind
//! by an interrupted sign-out never ends someone else's session.
//!
//! The index is always written **before** the session it describes: a session is never
//! attached without an entry that reaches it, so ending a user's sessions cannot miss one,
//! whatever instance crashes where. The keys the entry names are known in advance: a new
//! or renewed session's id is drawn before it is created; a rotation's successor is
//! derived. Index writes are conditional on the index's version, like every update, so
//! concurrent sign-ins and rotations of one user never lose an entry.
//!
//! # Ending
//!
//! Ending a session from the index replaces each record of its family (following the
//! forwards rotations left, and the successor a rotation in progress names) by an *ended*
//! marker, with a conditional update: a rotation racing it either lands first (and its
//! successor is ended next) or fails its own conditional write (and undoes its successor).
//! A request of that session that is still in flight then finds its entry gone and ends
//! its session instead of writing it. Ending is immediate in every tier: the marker is a
//! newer version than any the cache holds.
//!
//! # Expiry
//!
//! The index lives at least as long as the longest-lived of its sessions: a session that
//! would outlive what it remembers ([`UNTIL_KEY`]) extends the index (to two idle
//! timeouts ahead) before its own expiry moves, at most once per idle timeout, and its
//! entry records the same bound. Every write of the index drops the entries past their
//! bound (with a margin of two minutes for the clocks of instances), without a store
//! call: an entry outlives its session by at most two idle timeouts, until the next
//! write of the index, or until the index itself expires (and is cleaned up) at most two
//! idle timeouts after its last session's last request. Listing, and a sign-in once the
//! index is large, also prune entries whose sessions ended, after a check in the store
//! of record, never while younger than two minutes (their session may still be being
//! created).
//!
//! # Limits
//!
//! A user keeps at most [`SessionsConfig::max_user_sessions`](super::SessionsConfig)
//! sessions: attaching one more first ends those signed in longest ago (never the asking
//! session's own entry, when it signs in again). Two sign-ins at the same instant may both
//! find room; the next sign-in ends the excess. With a limit of 1, a sign-in submitted
//! twice at once may end its twin (the browser keeps whichever response came last). An
//! entry holds the key each branch of the session lives under and the successor of a
//! rotation in flight (a key rotated away from goes once its successor is used), at most
//! eight unless all were added within two idle timeouts (up to 32), and a short client
//! description, so an index stays small whatever the sessions hold; it is not bound by
//! `max_record_bytes`.
//!
//! # Costs
//!
//! A request of an attached session costs what any request costs, except: signing in
//! (the index read and written), a rotation (the index read and written, naming the
//! successor), and once per idle timeout an index extension (the index read and
//! written; a refresh that would only touch the session writes it instead, at the same
//! count). Signing out or detaching lets go of the entry: the index read, a read of each
//! of the entry's keys the request did not write itself (ids the session rotated away
//! from; a live one still holding the entry, a fork of two renewals at once, is ended),
//! and the conditional removal. Listing costs one read of the index and one per session;
//! ending costs a read and a write per key of each session.

use std::time::SystemTime;

use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::{
    clock::{from_millis, to_millis},
    store::MAX_UPDATE_ATTEMPTS,
    Record, SessionToken, State, Store, StoreError, TokenHash,
};

use super::Sessions;

/// The reserved state key under which a session keeps its [`Principal`]. Web layers keep
/// it out of the handler's view, like flash messages.
pub const USER_KEY: &str = "__user";

/// The reserved state key under which an attached session keeps until when its user's
/// index is known to live (milliseconds since the Unix epoch). A key of its own, so that
/// extending the index never rewrites the principal: a concurrent detach or attach of
/// the same session is never undone by it.
pub const UNTIL_KEY: &str = "__user_until";

/// Until when a session's state says its user's index lives (`0`: unknown).
#[must_use]
pub fn index_until(state: &State) -> u64 {
    state
        .get(UNTIL_KEY)
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
        .unwrap_or(0)
}

/// How many records of one family an ending follows at most.
const MAX_CHAIN: usize = 64;

/// How often ending a user's sessions reads the index again when entries moved meanwhile
/// (a rotation in flight).
const END_ROUNDS: usize = 4;

/// Above this many entries, attaching another session first prunes the index of sessions
/// that no longer live.
const PRUNE_AT: usize = 32;

/// Derives the key of a user's index from the user id: `SHA-256(HMAC-SHA256(key, user))`,
/// shaped as a session key. Index records are marked and never load as a session.
///
/// The key must be the same on every instance and must not change while sessions live
/// (an index under another key is not found). It need not be secret, since the sessions
/// themselves name their user: session-actix uses [`UserKey::standard`], which survives
/// cookie key rotations.
#[derive(Clone)]
pub struct UserKey(hmac::Key);

impl std::fmt::Debug for UserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserKey(..)")
    }
}

impl UserKey {
    /// A key from secret bytes (32 recommended); the same on every instance.
    #[must_use]
    pub fn new(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// The key every session-actix layer uses: a fixed label, the same for every
    /// deployment and cookie key.
    #[must_use]
    pub fn standard() -> Self {
        Self::new(b"session-core user index v1")
    }

    /// The key of the layer whose cookie is `namespace` (session-actix uses the cookie
    /// name): two layers that share a store keep separate indexes, and a cookie key
    /// rotation changes nothing.
    #[must_use]
    pub fn namespaced(namespace: &str) -> Self {
        Self::new(format!("session-core user index v1/{namespace}").as_bytes())
    }

    /// The key of `user`'s index.
    #[must_use]
    pub fn index_of(&self, user: &str) -> TokenHash {
        let tag = hmac::sign(&self.0, user.as_bytes());
        let mut bytes = [0u8; crate::token::TOKEN_BYTES];
        for (byte, tag) in bytes.iter_mut().zip(tag.as_ref()) {
            *byte = *tag;
        }
        SessionToken::from_bytes(&bytes).hash()
    }
}

/// Who a session belongs to, kept in its state under [`USER_KEY`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// The user id the application attached.
    pub user: String,
    /// The session's entry in the user's index: random, the same across id rotations.
    pub entry: String,
    /// A short description of the client (browser and system) when it signed in.
    #[serde(default)]
    pub agent: String,
}

impl Principal {
    /// A fresh attachment of `user`, from a client whose `User-Agent` is `agent`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the random source fails.
    pub fn attach(user: impl Into<String>, agent: Option<&str>) -> Result<Self, StoreError> {
        Ok(Self {
            user: user.into(),
            entry: SessionToken::generate()?.as_str()[..22].to_owned(),
            agent: agent.map(agent_summary).unwrap_or_default(),
        })
    }

    /// The principal a session's state holds; `None` if it holds none, or one that does
    /// not decode (logged).
    #[must_use]
    pub fn of(state: &State) -> Option<Self> {
        let raw = state.get(USER_KEY)?;
        serde_json::from_str(raw.get())
            .inspect_err(|err| tracing::warn!(error = %err, "session's user does not decode"))
            .ok()
    }
}

/// One session in a user's index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    /// The keys the session may live under, most recent last: where it lives, the
    /// successor a rotation in progress moves it to, and (when requests of one session
    /// forked it, e.g. a sign-in submitted twice) the keys of each branch. Writes add keys,
    /// never replace them, so no branch is left unreached; see [`add`](Entry::add) for
    /// how many are kept.
    keys: Vec<String>,
    /// When each of `keys` was last added (milliseconds since the Unix epoch; missing or
    /// `0`: unknown, an entry of an earlier release). A live session's key is added again
    /// at least once per idle timeout (with the index's extension).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    added: Vec<u64>,
    /// For each of `keys` a rotation named as the successor: the key it rotates from
    /// (empty otherwise). Once the successor is used, the key it came from is only a
    /// forward, and goes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    from: Vec<String>,
    /// The client, as [`Principal::agent`].
    #[serde(default)]
    agent: String,
    /// When the session was attached (milliseconds since the Unix epoch).
    #[serde(default)]
    at: u64,
    /// Until when the session can live at most (milliseconds since the Unix epoch; `0`:
    /// unknown, an entry of an earlier release): it extends this before its own expiry
    /// passes it, as it extends the index.
    #[serde(default)]
    until: u64,
}

impl Entry {
    fn keys(&self) -> impl Iterator<Item = TokenHash> + '_ {
        self.keys
            .iter()
            .rev()
            .filter_map(|key| TokenHash::from_stored(key))
    }

    /// Whether the session certainly no longer lives: past [`until`](Entry::until), with a
    /// margin for clocks of instances that differ.
    fn expired(&self, now: SystemTime) -> bool {
        self.until != 0 && from_millis(self.until) + CLOCK_MARGIN <= now
    }

    /// Adds `current` (the key a request's session lives under, or a new session's) and
    /// the `successor` a rotation of it moves it to, as the most recent, at `now`.
    ///
    /// A key used means the rotation that made it landed: the key it was rotated from is
    /// a forward by then, and goes. Beyond [`MAX_KEYS`], the oldest keys not added since
    /// `stale_before` go too (no session can still live under them: a live one's key is
    /// added again at least once per idle timeout); a key added since stays (the branch
    /// of a forked session that idles while the other is used), up to [`MAX_KEYS_HELD`].
    fn add(&mut self, current: &str, successor: Option<&str>, now: u64, stale_before: u64) {
        self.added.resize(self.keys.len(), 0);
        self.from.resize(self.keys.len(), String::new());
        let rotated_from = self.take(current).unwrap_or_default();
        if !rotated_from.is_empty() {
            self.take(&rotated_from);
        }
        self.push(current, String::new(), now);
        if let Some(successor) = successor {
            self.take(successor);
            self.push(successor, current.to_owned(), now);
        }
        while self.keys.len() > MAX_KEYS {
            let stale = self.added.iter().position(|&added| added < stale_before);
            let at = match stale {
                Some(at) => at,
                None if self.keys.len() > MAX_KEYS_HELD => 0,
                None => break,
            };
            self.remove_at(at);
        }
        if self.from.iter().all(String::is_empty) {
            self.from.clear();
        }
    }

    /// Removes `key`; the key it was rotated from, if it was.
    fn take(&mut self, key: &str) -> Option<String> {
        let at = self.keys.iter().position(|known| known == key)?;
        Some(self.remove_at(at))
    }

    fn remove_at(&mut self, at: usize) -> String {
        self.keys.remove(at);
        self.added.remove(at);
        self.from.remove(at)
    }

    fn push(&mut self, key: &str, from: String, now: u64) {
        self.keys.push(key.to_owned());
        self.added.push(now);
        self.from.push(from);
    }
}

/// Whether `record` is a session itself: neither an ended marker nor a rotation's forward.
fn is_session(record: &Record) -> bool {
    !record.meta.ended && record.meta.successor().is_none()
}

/// How many keys an entry keeps when older ones are stale.
const MAX_KEYS: usize = 8;

/// How many keys an entry keeps at most, stale or not.
const MAX_KEYS_HELD: usize = 32;

/// How far the clocks of two instances may differ, for decisions on expiry one instance
/// makes about another's writes.
const CLOCK_MARGIN: std::time::Duration = std::time::Duration::from_secs(120);

/// Removes the entries of `state` (an index) whose sessions expired; whether it did.
fn drop_expired(state: &mut State, now: SystemTime) -> bool {
    let before = state.len();
    state.retain(|_, raw| {
        serde_json::from_str::<Entry>(raw.get()).map_or(true, |entry| !entry.expired(now))
    });
    state.len() != before
}

/// How long an entry whose session cannot be found is kept anyway: the request that wrote
/// it may still be creating or attaching the session.
const YOUNG_ENTRY: std::time::Duration = std::time::Duration::from_secs(120);

/// A session of a user, as listed by [`Sessions::user_sessions`]: what a "your devices"
/// page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserSession {
    /// The session's entry id: what to pass to [`Sessions::end_user_session`]. Stable
    /// across id rotations, and not the session id (it opens nothing).
    pub id: String,
    /// When the session was created (before the sign-in, if it was renewed at sign-in).
    pub created: SystemTime,
    /// When the user signed in with it.
    pub signed_in: SystemTime,
    /// When it was last used, to within a quarter of the idle timeout (the precision of
    /// the refreshes).
    pub last_seen: SystemTime,
    /// The client, e.g. "Firefox on Linux".
    pub agent: String,
    /// Whether it is the session of the request that asked.
    pub current: bool,
}

/// What one edit of an index found.
enum Edit {
    /// Changed the state: write it.
    Changed,
    /// Nothing to write.
    Unchanged,
    /// The entry the edit needed is gone.
    Missing,
}

/// What the user index needs done around one request's plan: see
/// [`Sessions::carry_out`].
#[derive(Debug, Default)]
pub(crate) struct UserSteps {
    /// The attachment the loaded session had, if it is gone after this request.
    pub(crate) dropped: Option<Principal>,
    /// A new attachment, to remove again if the session does not live.
    pub(crate) added: Option<Principal>,
    /// The id a created or renewed session must take (its entry names it already).
    pub(crate) fresh: Option<SessionToken>,
    /// The session's entry is gone: it was ended through the index while this request ran.
    pub(crate) ended: bool,
}

impl<S: Store> Sessions<S> {
    /// Lists `user`'s live sessions, most recently used first; `current` is the entry id
    /// of the asking session. Entries of sessions that no longer live are pruned.
    ///
    /// # Errors
    ///
    /// The store's.
    pub async fn user_sessions(
        &self,
        user: &str,
        current: Option<&str>,
        now: SystemTime,
    ) -> Result<Vec<UserSession>, StoreError> {
        let index = self.users.index_of(user);
        let Some(record) = self.load_index(&index, false).await? else {
            return Ok(Vec::new());
        };
        let mut listed = Vec::new();
        let mut dead = Vec::new();
        for (id, raw) in &record.state {
            let entry = serde_json::from_str::<Entry>(raw.get()).ok();
            let found = match &entry {
                Some(entry) if !entry.expired(now) => self.resolve(id, entry, false).await?,
                _ => None,
            };
            // Past its absolute timeout, a session is refused at its next request.
            let found = found.filter(|session| self.within_absolute(session, now));
            match (entry, found) {
                (Some(entry), Some(session)) => listed.push(UserSession {
                    id: id.clone(),
                    created: session.created_at,
                    signed_in: from_millis(entry.at),
                    last_seen: session
                        .expires_at
                        .checked_sub(self.idle_timeout)
                        .unwrap_or(session.created_at)
                        .max(session.created_at),
                    agent: entry.agent,
                    current: current == Some(id.as_str()),
                }),
                (entry, _) => {
                    if self.is_dead(id, entry.as_ref(), now).await? {
                        dead.push((id.clone(), raw.get().to_owned()));
                    }
                }
            }
        }
        if !dead.is_empty() {
            self.remove_entries(&index, now, &dead).await?;
        }
        listed.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.id.cmp(&b.id)));
        Ok(listed)
    }

    /// Ends `user`'s session `id` (an entry id from [`user_sessions`](Self::user_sessions)):
    /// its whole family, in every tier. `false` if the user has no such session.
    ///
    /// # Errors
    ///
    /// The store's.
    pub async fn end_user_session(
        &self,
        user: &str,
        id: &str,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let index = self.users.index_of(user);
        Ok(self.end_entries(&index, now, |entry| entry == id).await? > 0)
    }

    /// Ends all of `user`'s sessions but the one whose entry id is `except` (the current
    /// one, for "sign out everywhere else"; `None` ends them all). Returns how many it
    /// ended.
    ///
    /// # Errors
    ///
    /// The store's.
    pub async fn end_user_sessions(
        &self,
        user: &str,
        except: Option<&str>,
        now: SystemTime,
    ) -> Result<usize, StoreError> {
        let index = self.users.index_of(user);
        self.end_entries(&index, now, |entry| Some(entry) != except)
            .await
    }

    /// Ends the entries of the index `index` that `which` picks, then removes them,
    /// reading the index again while entries moved meanwhile (a rotation naming its
    /// successor). Returns how many live sessions it ended.
    async fn end_entries(
        &self,
        index: &TokenHash,
        now: SystemTime,
        which: impl Fn(&str) -> bool,
    ) -> Result<usize, StoreError> {
        let mut ended = std::collections::HashSet::new();
        for _ in 0..END_ROUNDS {
            let Some(record) = self.load_index(index, true).await? else {
                break;
            };
            let targets: Vec<(String, String)> = record
                .state
                .iter()
                .filter(|(id, _)| which(id))
                .map(|(id, raw)| (id.clone(), raw.get().to_owned()))
                .collect();
            if targets.is_empty() {
                break;
            }
            for (id, raw) in &targets {
                if let Ok(entry) = serde_json::from_str::<Entry>(raw) {
                    for key in entry.keys() {
                        if self.end_chain(key, Some(id), now).await? {
                            ended.insert(id.clone());
                        }
                    }
                }
            }
            self.remove_entries(index, now, &targets).await?;
        }
        if !ended.is_empty() {
            tracing::info!(sessions = ended.len(), "ended sessions of a user");
        }
        Ok(ended.len())
    }

    /// The live session an entry names: its key, or the successors forwards lead to, or
    /// the successor a rotation in progress named; only if it still holds the entry.
    async fn resolve(
        &self,
        id: &str,
        entry: &Entry,
        durable: bool,
    ) -> Result<Option<Record>, StoreError> {
        for start in entry.keys() {
            let mut key = start;
            for _ in 0..=super::RotationKey::FAMILY_SUCCESSORS {
                let loaded = if durable {
                    self.store.reload(&key).await
                } else {
                    self.store.load(&key).await
                };
                let record = match loaded {
                    Ok(record) => record,
                    Err(err) if err.is_corrupt() => None,
                    Err(err) => return Err(err),
                };
                let Some(record) = record.filter(|record| !record.meta.ended) else {
                    break;
                };
                if let Some(successor) = record.meta.successor() {
                    key = successor;
                    continue;
                }
                if Principal::of(&record.state).is_some_and(|p| p.entry == id) {
                    return Ok(Some(record));
                }
                break;
            }
        }
        Ok(None)
    }

    /// Replaces `start` and the records it forwards to (rotations' forwards, renewals'
    /// markers) by ended markers, each with a conditional write (see the
    /// [module docs](self)). A key with no record gets a marker too: a rotation in
    /// progress can then not create it. With an `owner` (an entry id), a live session that
    /// is not that entry's (detached, or attached again under another entry: a leftover
    /// entry never ends someone else's session) is left alone. Returns whether it ended a
    /// live session (of `owner`, if given).
    pub(crate) async fn end_chain(
        &self,
        start: TokenHash,
        owner: Option<&str>,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let marker = self.ended_marker(now);
        let foreign = |record: &Record| {
            owner.is_some_and(|owner| {
                is_session(record)
                    && Principal::of(&record.state).is_none_or(|principal| principal.entry != owner)
            })
        };
        let mut key = start;
        let mut ended_live = false;
        for _ in 0..MAX_CHAIN {
            let mut successor = None;
            let mut done = false;
            for _ in 0..super::sessions::END_ATTEMPTS {
                let current = match self.store.reload(&key).await {
                    Ok(record) => record,
                    Err(err) if err.is_corrupt() => {
                        self.store.delete(&key).await?;
                        None
                    }
                    Err(err) => return Err(err),
                };
                done = match current {
                    None => self.store.create(&key, &marker).await?,
                    Some(record) if record.meta.ended => {
                        // A renewal's marker names the session it moved to: ended next,
                        // unless ending for an entry (a renewal that kept the entry named
                        // its fresh key in it; one that did not moved to another entry).
                        if owner.is_none() {
                            successor = record.meta.successor();
                        }
                        true
                    }
                    Some(record) if foreign(&record) => return Ok(ended_live),
                    Some(record) => {
                        successor = record.meta.successor();
                        let written = self.store.update(&key, record.version, &marker).await?;
                        ended_live |= written && successor.is_none();
                        written
                    }
                };
                if done {
                    break;
                }
            }
            if !done {
                // Written again and again meanwhile (a busy session): replace it outright.
                // Nothing can create it again once the marker is there, and a rotation of
                // it names its successor in the index first (ended next, below).
                let record = self.reload_session(&key).await?;
                if record.as_ref().is_some_and(foreign) {
                    return Ok(ended_live);
                }
                ended_live |= record.as_ref().is_some_and(is_session);
                successor = successor.or_else(|| {
                    record
                        .filter(|record| !record.meta.ended || owner.is_none())
                        .and_then(|record| record.meta.successor())
                });
                self.end_member(&key, &marker).await?;
            }
            match successor {
                Some(next) => key = next,
                None => break,
            }
        }
        Ok(ended_live)
    }

    /// The index record under `index`; `durable` reads past any cache (what a write bases
    /// itself on).
    async fn load_index(
        &self,
        index: &TokenHash,
        durable: bool,
    ) -> Result<Option<Record>, StoreError> {
        let record = if durable {
            self.store.reload(index).await?
        } else {
            self.store.load(index).await?
        };
        match record {
            Some(record) if !record.meta.user_index => Err(StoreError::corrupt(
                "a user index key holds a record that is not an index",
            )),
            other => Ok(other),
        }
    }

    /// Removes the entries `(id, json)` that still read as they were read; whether every
    /// one did (none changed meanwhile).
    async fn remove_entries(
        &self,
        index: &TokenHash,
        now: SystemTime,
        entries: &[(String, String)],
    ) -> Result<bool, StoreError> {
        let mut all = true;
        self.edit_index(index, now, None, |state| {
            let mut changed = false;
            all = true;
            for (id, raw) in entries {
                match state.get(id) {
                    Some(now) if now.get() == raw => {
                        state.remove(id);
                        changed = true;
                    }
                    Some(_) => all = false,
                    None => {}
                }
            }
            if changed {
                Edit::Changed
            } else {
                Edit::Unchanged
            }
        })
        .await?;
        Ok(all)
    }

    /// Removes the entry `id` from `index` once no session but the request's own still
    /// holds it: the request's session no longer does, and another that does (a fork of
    /// it: two renewals at once) is ended first, so no attached session is left without
    /// an entry. `settled` are the keys the request itself wrote or ended (not read
    /// again). Costs a read of the index, a read per other key of the entry, and the
    /// index's write.
    async fn release_entry(
        &self,
        index: &TokenHash,
        id: &str,
        settled: &[TokenHash],
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let mut checked = settled.to_vec();
        for _ in 0..END_ROUNDS {
            let Some(record) = self.load_index(index, true).await? else {
                return Ok(());
            };
            let Some(raw) = record.state.get(id).map(|raw| raw.get().to_owned()) else {
                return Ok(());
            };
            if let Ok(entry) = serde_json::from_str::<Entry>(&raw) {
                for key in entry.keys() {
                    if checked.contains(&key) {
                        continue;
                    }
                    checked.push(key.clone());
                    let holds = self.reload_session(&key).await?.is_some_and(|record| {
                        is_session(&record)
                            && Principal::of(&record.state).is_some_and(|p| p.entry == id)
                    });
                    if holds {
                        self.end_chain(key, Some(id), now).await?;
                    }
                }
            }
            if self
                .remove_entries(index, now, &[(id.to_owned(), raw)])
                .await?
            {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Applies `edit` to the index under `index` (created if absent), with a conditional
    /// write, retried on top of concurrent writes; the index then lives at least until
    /// `until`. Returns `false` if `edit` found its entry missing (nothing written).
    async fn edit_index(
        &self,
        index: &TokenHash,
        now: SystemTime,
        until: Option<SystemTime>,
        mut edit: impl FnMut(&mut State) -> Edit,
    ) -> Result<bool, StoreError> {
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            let base = self.load_index(index, true).await?;
            let mut state = base
                .as_ref()
                .map(|record| record.state.clone())
                .unwrap_or_default();
            // Every edit drops the entries of sessions that expired: none outlives its
            // session by more than the index's next edit, or the index itself.
            let dropped = drop_expired(&mut state, now);
            let changed = match edit(&mut state) {
                Edit::Missing => return Ok(false),
                Edit::Changed => true,
                Edit::Unchanged => dropped,
            };
            let expires_at = match (&base, until) {
                (Some(base), Some(until)) => base.expires_at.max(until),
                (Some(base), None) => base.expires_at,
                (None, Some(until)) => until,
                (None, None) => return Ok(true),
            };
            let written = match base {
                Some(base) => {
                    if !changed && expires_at == base.expires_at {
                        return Ok(true);
                    }
                    let mut next = base.next_version();
                    next.state = state;
                    next.expires_at = expires_at;
                    self.store.update(index, base.version, &next).await?
                }
                None => {
                    let mut record = Record::new(now, expires_at);
                    record.meta.user_index = true;
                    record.state = state;
                    self.store.create(index, &record).await?
                }
            };
            if written {
                return Ok(true);
            }
        }
        Err(StoreError::unavailable(
            "the user's session index kept changing; gave up",
        ))
    }

    /// Makes room in `index` for one more session: removes the entries of sessions that
    /// no longer live (once the index is large), then ends the sessions signed in longest
    /// ago while the user would keep more than `max_user_sessions`. The entry `replaced`
    /// (the asking session's own, about to go) is neither counted nor ended.
    async fn make_room(
        &self,
        index: &TokenHash,
        replaced: Option<&str>,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let Some(mut record) = self.load_index(index, true).await? else {
            return Ok(());
        };
        if let Some(replaced) = replaced {
            record.state.remove(replaced);
        }
        let count = record.state.len();
        if count < PRUNE_AT && count < self.max_user_sessions {
            return Ok(());
        }
        let mut dead = Vec::new();
        let mut kept = Vec::new();
        for (id, raw) in &record.state {
            let entry = serde_json::from_str::<Entry>(raw.get()).ok();
            if self.is_dead(id, entry.as_ref(), now).await? {
                dead.push((id.clone(), raw.get().to_owned()));
            } else {
                kept.push((entry.map_or(0, |entry| entry.at), id.clone()));
            }
        }
        if !dead.is_empty() {
            self.remove_entries(index, now, &dead).await?;
        }
        let excess = (kept.len() + 1).saturating_sub(self.max_user_sessions);
        if excess > 0 {
            kept.sort();
            let oldest: std::collections::HashSet<String> =
                kept.into_iter().take(excess).map(|(_, id)| id).collect();
            let ended = self
                .end_entries(index, now, |id| oldest.contains(id))
                .await?;
            if ended > 0 {
                tracing::info!(
                    sessions = ended,
                    "signed in once more than a user may: ended the oldest sessions"
                );
            }
        }
        Ok(())
    }

    /// Whether an entry can go: it reaches no live session in the store of record (not
    /// merely in the cache), and it is not young (the request that wrote it may still be
    /// creating its session).
    async fn is_dead(
        &self,
        id: &str,
        entry: Option<&Entry>,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let Some(entry) = entry else {
            return Ok(true);
        };
        if entry.expired(now) {
            return Ok(true);
        }
        if from_millis(entry.at) + YOUNG_ENTRY > now {
            return Ok(false);
        }
        let found = self.resolve(id, entry, true).await?;
        Ok(!found.is_some_and(|session| self.within_absolute(&session, now)))
    }

    /// Whether `session` is inside its absolute timeout at `now` (past it, the layer
    /// refuses it at its next request).
    fn within_absolute(&self, session: &Record, now: SystemTime) -> bool {
        self.absolute_timeout
            .is_none_or(|limit| session.created_at + limit > now)
    }

    /// The index work before a plan is carried out, for the session `loaded` (`key`, its
    /// `token`) whose principal was `before` and will be `after`: writes the entry that
    /// reaches the session's next key, and extends the index when the session would
    /// outlive it (then `changes` carry the principal's new `until`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn before_plan(
        &self,
        finish: &mut super::Finish,
        loaded: Option<(&TokenHash, &SessionToken)>,
        before: Option<Principal>,
        after: Option<Principal>,
        loaded_until: u64,
        changes: &mut crate::Changes,
        now: SystemTime,
    ) -> Result<UserSteps, StoreError> {
        use super::Finish;
        let mut steps = UserSteps::default();
        let ends = matches!(finish, Finish::End | Finish::Nothing);
        let same = |a: &Option<Principal>, b: &Option<Principal>| match (a, b) {
            (Some(a), Some(b)) => a.entry == b.entry && a.user == b.user,
            (None, None) => true,
            _ => false,
        };
        if *finish == Finish::End || !same(&before, &after) {
            steps.dropped.clone_from(&before);
        }
        let Some(principal) = after.filter(|_| !ends) else {
            if *finish == Finish::Nothing {
                steps.dropped = None;
            }
            return Ok(steps);
        };
        let added = !same(&before, &Some(principal.clone()));
        if added && matches!(*finish, Finish::Touch | Finish::Write | Finish::Rotate) {
            // Attaching a user changes what the id grants: it is renewed (no fixation),
            // and an entry an earlier attachment of the old id left behind reaches nothing
            // of the new one.
            *finish = Finish::Renew;
        }
        let until = now
            .checked_add(self.idle_timeout.saturating_mul(2))
            .unwrap_or(now);
        // A new attachment's index is written now, whatever an earlier one left.
        let known = if added { 0 } else { loaded_until };
        let due = now
            .checked_add(self.idle_timeout)
            .is_some_and(|expiry| expiry > from_millis(known));
        if due {
            let value =
                serde_json::value::to_raw_value(&to_millis(until)).map_err(StoreError::corrupt)?;
            changes.replace(UNTIL_KEY, value);
            if *finish == Finish::Touch {
                // The new `until` must be stored: a write, at the count of a touch.
                *finish = Finish::Write;
            }
        }
        let (key, next) = match (*finish, loaded) {
            (Finish::Create | Finish::Renew, _) => {
                let token = SessionToken::generate()?;
                let key = token.hash();
                steps.fresh = Some(token);
                (key, None)
            }
            (Finish::Rotate, Some((key, token))) => {
                (key.clone(), Some(self.rotation.successor(token)?.hash()))
            }
            (_, Some((key, _))) => (key.clone(), None),
            (_, None) => return Ok(steps),
        };
        if !(added || due || steps.fresh.is_some() || next.is_some()) {
            return Ok(steps);
        }
        let index = self.users.index_of(&principal.user);
        if added {
            // The attachment this one replaces (the same user signing in again) is
            // removed after the plan, and is this very session: it leaves no room to make.
            let replaced = before
                .as_ref()
                .filter(|before| before.user == principal.user)
                .map(|before| before.entry.as_str());
            self.make_room(&index, replaced, now).await?;
        }
        let (current, successor) = (
            key.as_str().to_owned(),
            next.map(|next| next.as_str().to_owned()),
        );
        let fresh_entry = Entry {
            agent: principal.agent.clone(),
            at: to_millis(now),
            ..Entry::default()
        };
        let until_ms = to_millis(until);
        let now_ms = to_millis(now);
        // A key not added for two idle timeouts (and the grace window, and the margin for
        // clocks) reaches no live session.
        let horizon = self
            .idle_timeout
            .saturating_mul(2)
            .saturating_add(CLOCK_MARGIN)
            .saturating_add(self.grace);
        let stale_before =
            now_ms.saturating_sub(u64::try_from(horizon.as_millis()).unwrap_or(u64::MAX));
        let mut failed = None;
        let present = self
            .edit_index(&index, now, Some(until), |state| {
                let mut entry = match state.get(&principal.entry) {
                    None if !added => return Edit::Missing,
                    None => fresh_entry.clone(),
                    Some(old) => serde_json::from_str::<Entry>(old.get())
                        .unwrap_or_else(|_| fresh_entry.clone()),
                };
                entry.add(&current, successor.as_deref(), now_ms, stale_before);
                entry.until = entry.until.max(until_ms);
                match serde_json::value::to_raw_value(&entry) {
                    Ok(raw) => {
                        state.insert(principal.entry.clone(), raw);
                        Edit::Changed
                    }
                    Err(err) => {
                        failed = Some(err);
                        Edit::Missing
                    }
                }
            })
            .await?;
        if let Some(err) = failed {
            return Err(StoreError::corrupt(err));
        }
        if !present && *finish != Finish::Renew {
            // Ended through the index (its records are ended markers by now), or detached
            // by another request meanwhile: the write is conditional on the version it
            // loaded and decides; it must not bring the index's `until` back.
            *changes = changes.without(UNTIL_KEY);
            return Ok(steps);
        }
        if !present {
            // Ended through the index while this request ran: a renewal would create a
            // session no condition protects, so the session ends instead.
            tracing::info!("session ended by its user meanwhile; not written");
            *finish = Finish::End;
            steps.ended = true;
            steps.fresh = None;
            steps.dropped = None;
            return Ok(steps);
        }
        if added {
            steps.added = Some(principal);
        }
        Ok(steps)
    }

    /// The index work after a plan was carried out: the entries of attachments that are
    /// gone are removed, after ending any other session that still holds them (a fork
    /// of this one: two renewals at once), so that no attached session is left without an
    /// entry. Best effort: an entry left behind never ends a session that does not hold
    /// it, and is pruned when listed.
    pub(crate) async fn after_plan(
        &self,
        steps: UserSteps,
        ended: bool,
        settled: &[TokenHash],
        now: SystemTime,
    ) {
        let gone = steps
            .dropped
            .into_iter()
            .chain(steps.added.filter(|_| ended));
        for principal in gone {
            let index = self.users.index_of(&principal.user);
            let result = self
                .release_entry(&index, &principal.entry, settled, now)
                .await;
            if let Err(err) = result {
                tracing::warn!(error = %err, "could not remove a session from its user's index");
            }
        }
    }
}

/// A short description of a client from its `User-Agent`: "Firefox on Linux", or the
/// first 60 characters of an agent it does not recognise.
#[must_use]
pub fn agent_summary(agent: &str) -> String {
    const BROWSERS: [(&str, &str); 8] = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chromium/", "Chromium"),
        ("HeadlessChrome/", "Headless Chrome"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ];
    const SYSTEMS: [(&str, &str); 7] = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ];
    let browser = BROWSERS
        .iter()
        .find(|(marker, _)| agent.contains(marker))
        .map(|(_, name)| *name);
    let system = SYSTEMS
        .iter()
        .find(|(marker, _)| agent.contains(marker))
        .map(|(_, name)| *name);
    match (browser, system) {
        (Some(browser), Some(system)) => format!("{browser} on {system}"),
        (Some(browser), None) => browser.to_owned(),
        (None, Some(system)) => format!("a browser on {system}"),
        (None, None) => agent.chars().filter(|c| !c.is_control()).take(60).collect(),
    }
}

/// Whether a session state holds an attachment (for layers that count what is stored).
#[must_use]
pub fn is_attached(state: &State) -> bool {
    state.contains_key(USER_KEY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_are_summarised() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        assert_eq!(agent_summary(firefox), "Firefox on Linux");
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
        assert_eq!(agent_summary(chrome), "Chrome on Windows");
        let safari = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
        assert_eq!(agent_summary(safari), "Safari on iOS");
        assert_eq!(agent_summary("probe\u{7}-1"), "probe-1");
    }

    #[test]
    fn index_keys_are_keyed_and_distinct() {
        let key = UserKey::new(&[1; 32]);
        assert_eq!(key.index_of("alice"), key.index_of("alice"));
        assert_ne!(key.index_of("alice"), key.index_of("bob"));
        assert_ne!(
            key.index_of("alice"),
            UserKey::new(&[2; 32]).index_of("alice")
        );
    }

    #[test]
    fn entries_keep_recent_keys_and_drop_stale_ones() {
        let key = |n: usize| format!("{n:064x}");
        let mut entry = Entry::default();
        // Twenty sessions' keys added recently (the branches of a fork): all kept.
        for n in 0..20 {
            entry.add(&key(n), None, 1_000 + n as u64, 500);
        }
        assert_eq!(entry.keys.len(), 20);
        assert_eq!(entry.keys[0], key(0));
        // Once the first twelve are stale, adding one drops them down to eight.
        entry.add(&key(20), None, 5_000, 1_012);
        assert_eq!(entry.keys.len(), 9, "{:?}", entry.keys);
        assert_eq!(entry.keys[0], key(12));
        // Adding a key again moves it to the end, as recent.
        entry.add(&key(12), None, 5_001, 1_012);
        assert_eq!(entry.keys.last(), Some(&key(12)));
        assert_eq!(entry.keys.len(), 9);
        // Never more than MAX_KEYS_HELD, stale or not.
        for n in 100..150 {
            entry.add(&key(n), None, 6_000, 0);
        }
        assert_eq!(entry.keys.len(), MAX_KEYS_HELD);
        assert_eq!(entry.keys.last(), Some(&key(149)));
        // An entry of an earlier release (no times) reads its keys as stale.
        let old: Entry =
            serde_json::from_str(&format!(r#"{{"keys":["{}","{}"]}}"#, key(1), key(2))).unwrap();
        assert_eq!(old.added, Vec::<u64>::new());
    }

    #[test]
    fn a_used_successor_retires_the_key_it_was_rotated_from() {
        let key = |n: usize| format!("{n:064x}");
        let mut entry = Entry::default();
        entry.add(&key(0), None, 1, 0);
        // An idle fork's key, which no rotation made: it stays.
        entry.add(&key(99), None, 1, 0);
        // Rotations 0 -> 1 -> ... -> 40, each successor used by the next.
        for n in 0..40 {
            entry.add(&key(n), Some(&key(n + 1)), 2 + n as u64, 0);
        }
        assert_eq!(entry.keys, [key(99), key(39), key(40)], "heads only");
        // A rotation that did not land (its successor never used) keeps the old key.
        entry.add(&key(40), Some(&key(41)), 100, 0);
        entry.add(&key(40), None, 101, 0);
        assert!(entry.keys.contains(&key(40)) && entry.keys.contains(&key(41)));
        let json = serde_json::to_string(&entry).unwrap();
        let back: Entry = serde_json::from_str(&json).unwrap();
        assert_eq!(back, entry);
    }
}
