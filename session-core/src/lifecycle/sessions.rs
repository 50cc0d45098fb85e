//! [`Sessions`]: loading a presented session and carrying out a [`Plan`] on a store.

use std::{sync::Arc, time::Duration, time::SystemTime};

use crate::{
    store::{Applied, CleanupPolicy, LoadedFrom, WriteQueue, MAX_UPDATE_ATTEMPTS},
    telemetry, Changes, Metadata, Record, SessionToken, Store, StoreError, TokenHash,
};

use super::{
    users::{self, Principal, USER_KEY},
    Finish, Plan, RotationKey, TheftResponse, UserKey,
};

/// How many rotated-away records a revocation follows at most.
const MAX_REVOKED_CHAIN: usize = 64;

/// The version of an ended marker: above any a session reaches, and still a PostgreSQL
/// `BIGINT`.
const ENDED_VERSION: u64 = i64::MAX as u64;

/// How often ending one member retries when a racing rotation re-creates it.
pub(super) const END_ATTEMPTS: usize = 3;

/// How many fresh ids to try when one collides with an existing session.
const CREATE_ATTEMPTS: usize = 3;

/// What went wrong while loading or saving a session: the store's error.
pub type SessionsError = StoreError;

/// A session a request presented, as loaded.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The record's key (the successor's, when the request came through a grace forward).
    pub key: TokenHash,
    /// The id the client should hold for that record.
    pub token: SessionToken,
    /// The id the client presented, when it was a rotated-away one (the family to end on a
    /// logout starts there).
    pub presented: Option<SessionToken>,
    /// The record as loaded: the base of the request's changes and of the version check.
    pub record: Record,
    /// Which tier answered the load of `record`.
    pub from: LoadedFrom,
}

impl Loaded {
    /// Whether the client presented a rotated-away id in its grace window.
    #[must_use]
    pub fn forwarded(&self) -> bool {
        self.presented.is_some()
    }

    /// The id the client holds: the one it presented. A logout through it ends its family,
    /// which includes the record's own id.
    #[must_use]
    pub fn held(&self) -> &SessionToken {
        self.presented.as_ref().unwrap_or(&self.token)
    }
}

/// What carrying out a plan left for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The id the client should hold now, and when the session expires.
    Live(SessionToken, SystemTime),
    /// No session is stored for the client (nothing to store, or it ended).
    Ended,
    /// The session was renewed by a concurrent request (moved to a fresh id, e.g. at a
    /// sign-in) and this request had nothing to write (a refresh): the fresh id is that
    /// request's to hand out, so the client's cookie is left as it is.
    Moved,
}

/// The store side of the lifecycle: loads presented sessions and carries out plans.
///
/// Framework-agnostic: a web layer opens the cookie, calls [`load`](Self::load), asks
/// [`start`](super::start) and [`finish`](super::finish) what to do, and hands the
/// [`Plan`] to [`carry_out`](Self::carry_out).
pub struct Sessions<S> {
    pub(super) store: Arc<S>,
    pub(super) rotation: RotationKey,
    pub(super) users: UserKey,
    previous_rotations: Vec<RotationKey>,
    rotates: bool,
    pub(super) grace: Duration,
    pub(super) idle_timeout: Duration,
    pub(super) absolute_timeout: Option<Duration>,
    pub(super) max_user_sessions: usize,
    queue: WriteQueue,
    cleanup: CleanupPolicy,
    max_record_bytes: usize,
    theft: TheftResponse,
}

impl<S> std::fmt::Debug for Sessions<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("grace", &self.grace)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

/// What a [`Sessions`] needs besides its store.
#[derive(Debug, Clone)]
pub struct SessionsConfig {
    /// Derives successor ids.
    pub rotation: RotationKey,
    /// Derives the keys of users' session indexes ([`users`](super::users)).
    pub users: UserKey,
    /// The rotation keys of previous cookie keys (key rotation): successors they derived
    /// are still followed and ended, never created.
    pub previous_rotations: Vec<RotationKey>,
    /// Whether ids rotate at all (whether successors can exist).
    pub rotates: bool,
    /// How long a rotated-away id forwards to its successor.
    pub grace: Duration,
    /// How long a written or refreshed session lives without requests.
    pub idle_timeout: Duration,
    /// How long a session lives at most (`None`: no limit): a user's sessions past it are
    /// not listed, since the layer refuses them.
    pub absolute_timeout: Option<Duration>,
    /// How many sessions one user keeps at most: signing in another ends the ones signed
    /// in longest ago ([`users`](super::users); at least 1).
    pub max_user_sessions: usize,
    /// The cleanup run on a share of writes.
    pub cleanup: CleanupPolicy,
    /// The largest state stored, in bytes of keys and JSON values.
    pub max_record_bytes: usize,
    /// What a rotated-away id replayed after its grace window does.
    pub theft: TheftResponse,
}

impl<S: Store> Sessions<S> {
    /// Sessions kept in `store`.
    #[must_use]
    pub fn new(store: Arc<S>, config: SessionsConfig) -> Self {
        Self {
            store,
            rotation: config.rotation,
            users: config.users,
            previous_rotations: config.previous_rotations,
            rotates: config.rotates,
            grace: config.grace,
            idle_timeout: config.idle_timeout,
            absolute_timeout: config.absolute_timeout,
            max_user_sessions: config.max_user_sessions.max(1),
            queue: WriteQueue::default().max_record_bytes(config.max_record_bytes),
            cleanup: config.cleanup,
            max_record_bytes: config.max_record_bytes,
            theft: config.theft,
        }
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Loads the session `token` names at `now`, following a grace forward to its
    /// successor. `None` for no live session; a corrupt record is deleted and reads as
    /// `None`. A rotated-away id presented after its grace window is a likely theft: it
    /// reads as `None`, is logged and counted, and with [`TheftResponse::Revoke`] ends the
    /// session it was rotated to.
    ///
    /// # Errors
    ///
    /// The store's, other than corruption.
    pub async fn load(
        &self,
        token: SessionToken,
        now: SystemTime,
    ) -> Result<Option<Loaded>, SessionsError> {
        let mut key = token.hash();
        let mut current = token;
        let mut presented = None;
        for _ in 0..=RotationKey::FAMILY_SUCCESSORS {
            let Some((record, from)) = self.load_record(&key).await? else {
                return Ok(None);
            };
            if record.meta.ended || record.meta.user_index {
                return Ok(None);
            }
            let Some(successor) = record.meta.successor() else {
                return Ok(Some(Loaded {
                    key,
                    token: current,
                    presented,
                    record,
                    from,
                }));
            };
            if record
                .meta
                .forward_until_ms
                .is_some_and(|until| unix_millis(now) >= until)
            {
                self.replayed(current, key, now).await?;
                return Ok(None);
            }
            // A rotated-away id in its grace window: resolve to the successor, which must
            // be the one this id derives, under the current key or a previous one (a
            // forward elsewhere is never followed).
            let Some(next) = self.successor_forwarded_to(&current, &successor)? else {
                tracing::warn!(session = %key, "rotated session forwards to an unexpected id; new session");
                return Ok(None);
            };
            presented.get_or_insert(current);
            current = next;
            key = successor;
        }
        Ok(None)
    }

    /// A rotated-away id was presented after its grace window: someone kept an old cookie
    /// (a likely theft, or a very stale tab). Logged and counted, never with the id; with
    /// [`TheftResponse::Revoke`], the chain of sessions it was rotated to is ended.
    async fn replayed(
        &self,
        token: SessionToken,
        key: TokenHash,
        now: SystemTime,
    ) -> Result<(), SessionsError> {
        telemetry::count_with(telemetry::THEFT_SIGNALS, "kind", "replayed_id");
        let revoke = self.theft == TheftResponse::Revoke;
        tracing::warn!(
            session = %key,
            revoke,
            "a rotated-away session id was presented after its grace window: possible theft"
        );
        if !revoke {
            return Ok(());
        }
        let (mut token, mut key) = (token, key);
        for _ in 0..MAX_REVOKED_CHAIN {
            let record = match self.store.load(&key).await {
                Ok(record) => record,
                Err(err) if err.is_corrupt() => None,
                Err(err) => return Err(err),
            };
            if let Some(renewed) = record
                .as_ref()
                .filter(|record| record.meta.ended)
                .and_then(|record| record.meta.successor())
            {
                // Renewed (a sign-in since): the renewed session is the owner's now.
                self.end_chain(renewed, None, now).await?;
            }
            self.store.delete(&key).await?;
            let Some(successor) = record.and_then(|record| record.meta.successor()) else {
                break;
            };
            let Some(next) = self.successor_forwarded_to(&token, &successor)? else {
                break;
            };
            (token, key) = (next, successor);
        }
        // A rotation of the last one racing this: its successors go too.
        self.end_family(&token, now).await?;
        telemetry::count(telemetry::REVOCATIONS);
        Ok(())
    }

    /// The successor of `token` whose hash is `successor`, under the current rotation key
    /// or a previous one; `None` if none derives it.
    fn successor_forwarded_to(
        &self,
        token: &SessionToken,
        successor: &TokenHash,
    ) -> Result<Option<SessionToken>, SessionsError> {
        for key in std::iter::once(&self.rotation).chain(&self.previous_rotations) {
            let next = key.successor(token)?;
            if next.hash() == *successor {
                return Ok(Some(next));
            }
        }
        Ok(None)
    }

    /// Loads a record; a corrupt one is deleted and reads as absent.
    async fn load_record(
        &self,
        key: &TokenHash,
    ) -> Result<Option<(Record, LoadedFrom)>, SessionsError> {
        match self.store.load_from(key).await {
            Err(err) if err.is_corrupt() => {
                tracing::warn!(session = %key, error = %err, "corrupt session deleted; new session");
                if let Err(err) = self.store.delete(key).await {
                    tracing::warn!(session = %key, error = %err, "could not delete corrupt session");
                }
                Ok(None)
            }
            Err(err) => Err(err),
            Ok((record, from)) => Ok(record.map(|record| (record, from))),
        }
    }

    /// Carries out `plan` for the session the request loaded (`loaded`; `None` for a new
    /// session), with the handler's `changes` (against the loaded state; against nothing
    /// for a new session). `binding` is the client's fingerprint, kept by a created
    /// session. `presented` is the family a refused session's plan ends (`end_old`).
    ///
    /// A session attached to a user ([`users`](super::users)) has its index entry written
    /// first, so that ending the user's sessions always reaches it; if the entry is gone
    /// (the session was ended through the index while the request ran), the session is
    /// ended instead of written.
    ///
    /// A renewal ([`Finish::Renew`]) claims the old record with a conditional write,
    /// replacing it by an ended marker that names the fresh key (a write that came first
    /// is copied into the fresh session). A request that loaded the session before a
    /// concurrent renewal is refused if it has changes ([`StoreError::Superseded`]: a
    /// renewal is a privilege boundary), leaves the cookie alone if not
    /// ([`Outcome::Moved`]), and, if it is a logout, ends the renewed session too.
    ///
    /// # Errors
    ///
    /// The store's; [`StoreError::TooLarge`] (nothing stored) when the state would exceed
    /// `max_record_bytes`; [`StoreError::Superseded`] (nothing stored) when a concurrent
    /// renewal moved the session while this request ran.
    pub async fn carry_out(
        &self,
        plan: &Plan,
        loaded: Option<Loaded>,
        mut changes: Changes,
        binding: Option<String>,
        now: SystemTime,
    ) -> Result<Option<Outcome>, SessionsError> {
        let mut plan = *plan;
        let carries_state = matches!(
            plan.finish,
            Finish::Touch | Finish::Write | Finish::Rotate | Finish::Renew
        );
        let before = loaded
            .as_ref()
            .filter(|_| carries_state || plan.finish == Finish::End || plan.end_old)
            .and_then(|loaded| Principal::of(&loaded.record.state));
        let after = match changes.change_of(USER_KEY) {
            _ if matches!(plan.finish, Finish::End | Finish::Nothing) => None,
            Some(Some(raw)) => serde_json::from_str(raw.get()).ok(),
            Some(None) => None,
            None if carries_state => before.clone(),
            None => None,
        };
        if before.is_none() && after.is_none() {
            return self
                .carry_out_plan(&plan, loaded, changes, binding, now, None)
                .await;
        }
        let steps = self
            .before_plan(
                &mut plan.finish,
                loaded.as_ref().map(|loaded| (&loaded.key, &loaded.token)),
                before,
                after,
                loaded
                    .as_ref()
                    .map_or(0, |loaded| users::index_until(&loaded.record.state)),
                &mut changes,
                now,
            )
            .await?;
        let fresh = steps.fresh.clone();
        // The keys this request writes or ends: not read again when its user's index lets
        // go of an entry.
        let mut settled: Vec<TokenHash> = loaded
            .as_ref()
            .map(|loaded| [loaded.key.clone(), loaded.held().hash()].into())
            .unwrap_or_default();
        let outcome = self
            .carry_out_plan(&plan, loaded, changes, binding, now, fresh)
            .await?;
        if let Some(Outcome::Live(token, _)) = &outcome {
            settled.push(token.hash());
        }
        let ended = matches!(outcome, Some(Outcome::Ended));
        self.after_plan(steps, ended, &settled, now).await;
        Ok(outcome)
    }

    /// [`carry_out`](Self::carry_out) once the user index is seen to; a created or renewed
    /// session takes the id `fresh`, if given.
    async fn carry_out_plan(
        &self,
        plan: &Plan,
        loaded: Option<Loaded>,
        changes: Changes,
        binding: Option<String>,
        now: SystemTime,
        fresh: Option<SessionToken>,
    ) -> Result<Option<Outcome>, SessionsError> {
        let expires_at = now + self.idle_timeout;
        match plan.finish {
            Finish::Nothing => Ok(None),
            Finish::End => {
                if let Some(loaded) = &loaded {
                    self.end_loaded(loaded, now).await?;
                    telemetry::count(telemetry::ENDED);
                }
                Ok(Some(Outcome::Ended))
            }
            Finish::Touch => {
                let Some(loaded) = loaded else {
                    return Ok(None);
                };
                let version = loaded.record.version;
                match self.store.touch(&loaded.key, version, expires_at).await {
                    Ok(true) => return Ok(Some(Outcome::Live(loaded.token, expires_at))),
                    Ok(false) => {}
                    // A refresh acknowledges nothing: with the store down, the request is
                    // served and the session keeps the expiry it had (the client, the id
                    // it was loaded under).
                    Err(err) if err.is_unavailable() && changes.is_empty() => {
                        tracing::warn!(session = %loaded.key, error = %err, "could not move the session's expiry; it keeps the one it had");
                        let expires_at = loaded.record.expires_at;
                        return Ok(Some(Outcome::Live(loaded.token, expires_at)));
                    }
                    Err(err) => return Err(err),
                }
                // Written, rotated or ended since it was loaded: a write of nothing decides
                // on what is there now (follows a rotation to the successor's id, never
                // brings an ended session back, never hands out a rotated-away id).
                self.write(loaded, changes, now).await.map(Some)
            }
            Finish::Write => {
                let Some(loaded) = loaded else {
                    return Ok(None);
                };
                self.write(loaded, changes, now).await.map(Some)
            }
            Finish::Rotate => {
                let Some(loaded) = loaded else {
                    return Ok(None);
                };
                self.rotate(loaded, changes, binding, now).await.map(Some)
            }
            Finish::Create => {
                if let (true, Some(loaded)) = (plan.end_old, &loaded) {
                    self.end_loaded(loaded, now).await?;
                    telemetry::count(telemetry::ENDED);
                }
                let mut record = Record::new(now, expires_at);
                changes.apply(&mut record.state);
                record.meta = Metadata::new_session(binding, now);
                let outcome = self.create(&record, fresh).await?;
                telemetry::count(telemetry::CREATED);
                Ok(Some(outcome))
            }
            Finish::Renew => {
                let Some(loaded) = loaded else {
                    return Ok(None);
                };
                self.renew(loaded, changes, binding, now, fresh)
                    .await
                    .map(Some)
            }
        }
    }

    /// Moves the session to a fresh id (`fresh`, if given) and ends the old one.
    ///
    /// The fresh session is created first. Then a *renewal marker* claims the old key, with
    /// a write conditional on the version the fresh session was based on: an ended marker
    /// naming the fresh key (its [`successor`](Metadata::successor)), which loads as no
    /// session. If another write came first, the fresh session is based again on what that
    /// write left, and the claim is tried again; if a rotation moved the session, its
    /// successor is claimed; if the session ended meanwhile, the fresh one is deleted.
    ///
    /// A renewal is a privilege boundary (a sign-in): nothing written from before it
    /// reaches the fresh id except the state it copies. A request in flight from before
    /// the renewal whose write finds the marker is refused ([`StoreError::Superseded`];
    /// one that changes nothing leaves the cookie alone, [`Outcome::Moved`]); a logout in
    /// flight follows the marker and ends the renewed session too. Two renewals of one
    /// session at once (a sign-in submitted twice) fork it: each keeps the fresh session it
    /// created, from the state it saw, and the browser keeps one of the two ids.
    async fn renew(
        &self,
        loaded: Loaded,
        changes: Changes,
        binding: Option<String>,
        now: SystemTime,
        fresh: Option<SessionToken>,
    ) -> Result<Outcome, SessionsError> {
        let expires_at = now + self.idle_timeout;
        let mut record = Record::new(loaded.record.created_at, expires_at);
        record.state = loaded.record.state.clone();
        changes.apply(&mut record.state);
        // A layer that did not expect a renewal (one a sign-in implies) computed no
        // binding: the loaded one, which this client matched, carries over.
        let binding = binding.or_else(|| loaded.record.meta.binding.clone());
        record.meta = Metadata::new_session(binding, now);
        let old_key = loaded.key.clone();
        let token = match self.create(&record, fresh).await? {
            Outcome::Live(token, _) => token,
            _ => return self.fresh_ended(&old_key).await,
        };
        let fresh_key = token.hash();
        let mut marker = self.ended_marker(now);
        marker.meta.successor = Some(fresh_key.as_str().to_owned());
        let live = Outcome::Live(token, expires_at);
        let mut key = loaded.key;
        let mut based_on = (key.clone(), loaded.record.version);
        let mut current = Some(loaded.record);
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            match current {
                Some(session) if !session.meta.ended => {
                    if let Some(successor) = session.meta.successor() {
                        // Rotated meanwhile: the session lives at the successor.
                        key = successor;
                        current = match self.reload_session(&key).await {
                            Ok(found) => found,
                            Err(err) => return self.abandon(&fresh_key, err).await,
                        };
                        continue;
                    }
                    if based_on != (key.clone(), session.version) {
                        // Written meanwhile: the fresh session takes what was written.
                        let mut next = record.next_version();
                        next.state = session.state.clone();
                        changes.apply(&mut next.state);
                        if let Err(err) = self.check_size(&next) {
                            return self.abandon(&fresh_key, err).await;
                        }
                        match self.store.update(&fresh_key, record.version, &next).await {
                            Ok(true) => {}
                            Ok(false) => return self.fresh_ended(&old_key).await,
                            Err(err) => return self.abandon(&fresh_key, err).await,
                        }
                        record = next;
                        based_on = (key.clone(), session.version);
                    }
                    match self.store.update(&key, session.version, &marker).await {
                        Ok(true) => {
                            telemetry::count(telemetry::RENEWED);
                            return Ok(live);
                        }
                        Ok(false) => match self.reload_session(&key).await {
                            Ok(found) => current = found,
                            Err(err) => return self.abandon(&fresh_key, err).await,
                        },
                        Err(err) => return self.unclaimed(&key, &fresh_key, live, err).await,
                    }
                }
                Some(renewed) if renewed.meta.successor().is_some() => {
                    // Renewed by another request too (a sign-in submitted twice): a fork,
                    // each renewal keeping the session it created.
                    tracing::info!(session = %key, "session renewed twice at once; forked");
                    telemetry::count(telemetry::RENEWED);
                    return Ok(live);
                }
                _ => {
                    self.store.delete(&fresh_key).await?;
                    tracing::info!(session = %key, "session ended during the request; not renewed");
                    return Ok(Outcome::Ended);
                }
            }
        }
        self.abandon(&fresh_key, StoreError::Conflict(MAX_UPDATE_ATTEMPTS))
            .await
    }

    /// A renewal's claim of `key` failed with `err`: the claim may have landed all the
    /// same (a timeout after the write). If the old record names the fresh session, or
    /// cannot be read to tell, the renewal stands (`live`: at worst a fork, never a
    /// session whose only id was not handed out); if it certainly did not land, the fresh
    /// session is deleted (best effort) and the error returned.
    async fn unclaimed(
        &self,
        key: &TokenHash,
        fresh_key: &TokenHash,
        live: Outcome,
        err: StoreError,
    ) -> Result<Outcome, SessionsError> {
        for _ in 0..END_ATTEMPTS {
            match self.store.reload(key).await {
                Ok(Some(record))
                    if record.meta.ended && record.meta.successor().as_ref() == Some(fresh_key) =>
                {
                    break;
                }
                Ok(_) => return self.abandon(fresh_key, err).await,
                Err(_) => {}
            }
        }
        telemetry::count(telemetry::RENEWED);
        Ok(live)
    }

    /// Gives up a renewal whose claim certainly did not land: deletes the fresh session
    /// (best effort; a leftover is reachable by no one and expires) and returns `err`.
    async fn abandon(
        &self,
        fresh_key: &TokenHash,
        err: StoreError,
    ) -> Result<Outcome, SessionsError> {
        if let Err(err) = self.store.delete(fresh_key).await {
            tracing::warn!(error = %err, "could not delete an abandoned renewal");
        }
        Err(err)
    }

    /// A renewal's fresh session was ended before the renewal could claim the old one
    /// (ended through the user's index). If the old session lives on (it held another
    /// entry, or a detach landed), the renewal is refused and the client keeps its cookie;
    /// otherwise the session ended.
    async fn fresh_ended(&self, old_key: &TokenHash) -> Result<Outcome, SessionsError> {
        match self.reload_session(old_key).await? {
            Some(old) if !old.meta.ended => {
                tracing::info!(session = %old_key, "a renewal was ended before it landed; the session keeps its id");
                Err(StoreError::Superseded)
            }
            _ => {
                tracing::info!("the session's id was ended before it was renewed; not renewed");
                Ok(Outcome::Ended)
            }
        }
    }

    /// The record under `key` in the store of record; a corrupt one reads as absent.
    pub(super) async fn reload_session(
        &self,
        key: &TokenHash,
    ) -> Result<Option<Record>, SessionsError> {
        match self.store.reload(key).await {
            Err(err) if err.is_corrupt() => Ok(None),
            other => other,
        }
    }

    /// A request in flight from before a renewal found the renewal's marker where it
    /// wanted to write: with nothing to write, the cookie is left alone (the renewing
    /// request hands out the fresh id); with changes, they are refused, since a renewal
    /// is a privilege boundary (a sign-in) and a request that loaded the session before
    /// it must not write into the renewed one. Refused, never silently dropped.
    fn across_renewal(unchanged: bool) -> Result<Outcome, SessionsError> {
        if unchanged {
            return Ok(Outcome::Moved);
        }
        tracing::warn!("a request's session was renewed by another request while it ran; its changes are refused");
        Err(StoreError::Superseded)
    }

    /// Ends the loaded session and its family. The loaded record is claimed first, with a
    /// write conditional on its version; if it changed meanwhile, the chain from it is
    /// ended by conditional writes, following rotations' forwards and renewals' markers,
    /// so a logout in flight across a sign-in's renewal never leaves the session signed
    /// in. The rest of the family (derived successors, the presented id) follows.
    async fn end_loaded(&self, loaded: &Loaded, now: SystemTime) -> Result<(), SessionsError> {
        let marker = self.ended_marker(now);
        let claimed = self
            .store
            .update(&loaded.key, loaded.record.version, &marker)
            .await?;
        if !claimed {
            self.end_chain(loaded.key.clone(), None, now).await?;
        }
        self.end_family_except(loaded.held(), Some(&loaded.key), now)
            .await
    }

    /// Writes `changes` onto the loaded record (retrying on top of concurrent writes).
    async fn write(
        &self,
        loaded: Loaded,
        changes: Changes,
        now: SystemTime,
    ) -> Result<Outcome, SessionsError> {
        let expires_at = now + self.idle_timeout;
        // The index's `until`, which the library adds to a refresh, is not a change of the
        // request's.
        let unchanged = changes.len() == usize::from(changes.change_of(users::UNTIL_KEY).is_some());
        let Loaded {
            key: loaded_key,
            token: loaded_token,
            record,
            ..
        } = loaded;
        let written = self
            .queue
            .apply_changes(
                self.store.as_ref(),
                &loaded_key,
                record,
                changes,
                expires_at,
            )
            .await?;
        match written {
            Applied::Written { key, .. } => {
                self.cleanup.after_write(self.store.as_ref()).await;
                if key == loaded_key {
                    return Ok(Outcome::Live(loaded_token, expires_at));
                }
                // Rotated meanwhile by another request: follow it to the successor's id
                // (derived under the current key, or a previous one on an instance that
                // has not been given the new key yet).
                // Previous keys only in the first steps, so the candidates stay few.
                let mut tokens = vec![loaded_token];
                for step in 0..MAX_UPDATE_ATTEMPTS {
                    if let Some(token) = tokens.iter().find(|token| token.hash() == key) {
                        return Ok(Outcome::Live(token.clone(), expires_at));
                    }
                    let with_previous = (step as usize) < RotationKey::FAMILY_SUCCESSORS;
                    tokens = self.successors(&tokens, with_previous)?;
                }
                // A forward to an id this layer did not derive: never hand it out.
                Err(StoreError::corrupt(
                    "saved into a session that is not a successor of the request's id",
                ))
            }
            Applied::Renewed { .. } => Self::across_renewal(unchanged),
            _ => {
                tracing::info!(session = %loaded_key, "session ended during the request; not resurrected");
                Ok(Outcome::Ended)
            }
        }
    }

    /// Moves the session to its successor id and leaves a forward at the old one for the
    /// grace window.
    ///
    /// The successor is created first (a concurrent request never finds a forward to
    /// nothing), and only created: a successor that a logout deleted is never written
    /// again by an update. The forward then claims the rotation, conditional on the version
    /// loaded. If another write came first, or another request of the same page is
    /// rotating the same id (the successor exists), this request does not rotate: it
    /// writes its changes as any other, following the forward if the other rotation landed.
    async fn rotate(
        &self,
        loaded: Loaded,
        changes: Changes,
        binding: Option<String>,
        now: SystemTime,
    ) -> Result<Outcome, SessionsError> {
        let expires_at = now + self.idle_timeout;
        let next = self.rotation.successor(&loaded.token)?;
        let next_hash = next.hash();
        let mut record = Record::new(loaded.record.created_at, expires_at);
        record.state = loaded.record.state.clone();
        changes.apply(&mut record.state);
        record.meta = loaded.record.meta.clone();
        record.meta.successor = None;
        record.meta.token_issued_ms = Some(unix_millis(now));
        // Bound afresh under the current key (the same client matched to get here), so a
        // session presented under a previous key survives that key's removal.
        record.meta.binding = binding;
        self.check_size(&record)?;
        if self.store.create(&next_hash, &record).await? {
            // Followed for the grace window; kept as a marker for an idle timeout after it,
            // so that a replay of this id is recognised.
            let mut forward = Record::new(
                loaded.record.created_at,
                now + self.grace + self.idle_timeout,
            );
            forward.meta.successor = Some(next_hash.as_str().to_owned());
            forward.meta.forward_until_ms = Some(unix_millis(now + self.grace));
            forward.version = loaded.record.version.saturating_add(1);
            if self
                .store
                .update(&loaded.key, loaded.record.version, &forward)
                .await?
            {
                tracing::debug!(session = %loaded.key, successor = %next_hash, "session id rotated");
                telemetry::count(telemetry::ROTATIONS);
                telemetry::record_bytes(crate::store::state_bytes(&record));
                self.cleanup.after_write(self.store.as_ref()).await;
                return Ok(Outcome::Live(next, expires_at));
            }
            // Changed or ended meanwhile: undo the successor, save as any other request.
            self.store.delete(&next_hash).await?;
        }
        // The record keeps its issue time, so the next request rotates instead of waiting
        // a whole rotation period.
        self.write(loaded, changes, now).await
    }

    /// Creates a session under a fresh id: `fresh` if given (an index entry names it
    /// already; if it is taken, the session was ended meanwhile and is not created), else
    /// one drawn here.
    async fn create(
        &self,
        record: &Record,
        fresh: Option<SessionToken>,
    ) -> Result<Outcome, SessionsError> {
        self.check_size(record)?;
        if let Some(token) = fresh {
            if self.store.create(&token.hash(), record).await? {
                telemetry::record_bytes(crate::store::state_bytes(record));
                self.cleanup.after_write(self.store.as_ref()).await;
                return Ok(Outcome::Live(token, record.expires_at));
            }
            tracing::info!("the session's id was ended before it was created; not created");
            return Ok(Outcome::Ended);
        }
        for _ in 0..CREATE_ATTEMPTS {
            let token = SessionToken::generate()?;
            if self.store.create(&token.hash(), record).await? {
                telemetry::record_bytes(crate::store::state_bytes(record));
                self.cleanup.after_write(self.store.as_ref()).await;
                return Ok(Outcome::Live(token, record.expires_at));
            }
            tracing::warn!("session id collision; drawing another");
        }
        Err(StoreError::unavailable(
            "could not draw an unused session id",
        ))
    }

    /// Refuses a record larger than `max_record_bytes`.
    pub(super) fn check_size(&self, record: &Record) -> Result<(), SessionsError> {
        let size = crate::store::state_bytes(record);
        if size > self.max_record_bytes {
            return Err(StoreError::TooLarge {
                size,
                max: self.max_record_bytes,
            });
        }
        Ok(())
    }

    /// Ends the session under `token` and the successors a rotation may have given it
    /// (derived from the id, so known without a read): a logout through an id that another
    /// request just rotated away from ends the session the client now holds too.
    ///
    /// Where ids rotate, each member is replaced by an *ended* marker (no data,
    /// [`Metadata::ended`]) that lives for an idle timeout: a rotation still in flight
    /// cannot create an ended successor again, not even for an instant, because `create`
    /// never replaces a live record. Loads read a marker as no session.
    ///
    /// # Errors
    ///
    /// The store's.
    pub async fn end_family(
        &self,
        token: &SessionToken,
        now: SystemTime,
    ) -> Result<(), SessionsError> {
        self.end_family_except(token, None, now).await
    }

    /// [`end_family`](Self::end_family), except the member under `ended` (already
    /// replaced by an ended marker).
    async fn end_family_except(
        &self,
        token: &SessionToken,
        ended: Option<&TokenHash>,
        now: SystemTime,
    ) -> Result<(), SessionsError> {
        let key = token.hash();
        if !self.rotates {
            if ended == Some(&key) {
                return Ok(());
            }
            return self.store.delete(&key).await;
        }
        let marker = self.ended_marker(now);
        if ended != Some(&key) {
            self.end_member(&key, &marker).await?;
        }
        // With previous keys, a chain may mix them (an instance with the new key rotated
        // an old-key successor): every combination, (1 + previous)^2 ids for two steps.
        let mut generation = vec![token.clone()];
        for _ in 0..RotationKey::FAMILY_SUCCESSORS {
            generation = self.successors(&generation, true)?;
            for member in &generation {
                let key = member.hash();
                if ended != Some(&key) {
                    self.end_member(&key, &marker).await?;
                }
            }
        }
        Ok(())
    }

    /// The marker that replaces an ended session: no data, lives for the grace window and
    /// an idle timeout.
    pub(super) fn ended_marker(&self, now: SystemTime) -> Record {
        let mut marker = Record::new(now, now + self.grace + self.idle_timeout);
        marker.meta.ended = true;
        // A version no loaded record has: a save based on the ended session is refused
        // by the version check and never overwrites the marker.
        marker.version = ENDED_VERSION;
        marker
    }

    /// The next rotation step of each of `tokens`: its successor under the current key,
    /// and, `with_previous`, under each previous key too.
    fn successors(
        &self,
        tokens: &[SessionToken],
        with_previous: bool,
    ) -> Result<Vec<SessionToken>, SessionsError> {
        let previous = if with_previous {
            &self.previous_rotations[..]
        } else {
            &[]
        };
        let mut next = Vec::with_capacity(tokens.len() * (1 + previous.len()));
        for token in tokens {
            for key in std::iter::once(&self.rotation).chain(previous) {
                next.push(key.successor(token)?);
            }
        }
        Ok(next)
    }

    /// Replaces whatever is under `key` by the ended `marker`.
    pub(super) async fn end_member(
        &self,
        key: &TokenHash,
        marker: &Record,
    ) -> Result<(), SessionsError> {
        for _ in 0..END_ATTEMPTS {
            self.store.delete(key).await?;
            if self.store.create(key, marker).await? {
                return Ok(());
            }
            // Created again between the two (a rotation racing this): end that too.
        }
        self.store.delete(key).await
    }
}

/// `time` in milliseconds since the Unix epoch.
#[must_use]
pub fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
