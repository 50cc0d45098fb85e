//! [`StoreBridge`]: a session-core [`Store`] as actix-session's `SessionStore`.
//!
//! Ids are minted here (ring), never by actix-session and never taken from a client. The
//! bridge reads the request's [`RequestContext`] to rotate ids, forward rotated-away ids in
//! their grace window, and start fresh sessions without touching the old record.

use std::{collections::HashMap, sync::Arc, time::SystemTime};

use actix_session::storage::{LoadError, SaveError, SessionKey, UpdateError};
use actix_web::cookie::time::Duration;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use ring::hmac;
use serde_json::value::RawValue;
use session_core::{
    store::{Applied, MAX_UPDATE_ATTEMPTS},
    Changes, Record, SessionToken, Store, StoreError, TokenHash,
};

use crate::{
    config::Settings,
    context::{Loaded, RequestContext},
};

type State = HashMap<String, String>;

/// How many rotation successors a logout deletes beyond the id it was given.
const FAMILY_HOPS: usize = 2;

/// How many fresh ids to try when one collides with an existing session.
const CREATE_ATTEMPTS: usize = 3;

/// A session-core store behind actix-session's `SessionStore` interface.
pub(crate) struct StoreBridge<S> {
    store: Arc<S>,
    settings: Arc<Settings>,
}

impl<S: Store> StoreBridge<S> {
    pub(crate) fn new(store: Arc<S>, settings: Arc<Settings>) -> Self {
        Self { store, settings }
    }

    fn now(&self) -> SystemTime {
        self.settings.clock.now()
    }

    /// The successor of `token` under rotation: HMAC(rotation key, token). Every request
    /// that rotates the same token computes the same successor, so concurrent rotations
    /// converge on one id without a lock.
    fn successor(&self, token: &SessionToken) -> Result<SessionToken, StoreError> {
        let tag = hmac::sign(&self.settings.rotation_key, token.as_str().as_bytes());
        SessionToken::try_from(URL_SAFE_NO_PAD.encode(tag.as_ref()).as_str())
            .map_err(StoreError::corrupt)
    }

    pub(crate) async fn load(&self, key: &SessionKey) -> Result<Option<State>, LoadError> {
        // Validate before any store query: garbage costs nothing.
        let Ok(token) = SessionToken::try_from(key.as_ref()) else {
            tracing::debug!("session cookie does not hold a valid token; new session");
            return Ok(None);
        };
        let hash = token.hash();
        let Some(record) = self.load_record(&hash).await? else {
            return Ok(None);
        };
        let Some(successor) = record.meta.successor() else {
            return Ok(Some(self.remember(hash, token, false, record)));
        };
        // A rotated-away id in its grace window: resolve to the successor.
        let next = self.successor(&token).map_err(other)?;
        if next.hash() != successor {
            tracing::warn!(session = %hash, "rotated session forwards to an unexpected id; new session");
            return Ok(None);
        }
        Ok(self
            .load_record(&successor)
            .await?
            .map(|record| self.remember(successor, next, true, record)))
    }

    /// Loads a record; a corrupt one is deleted and reads as absent.
    async fn load_record(&self, hash: &TokenHash) -> Result<Option<Record>, LoadError> {
        match self.store.load(hash).await {
            Ok(found) => Ok(found),
            Err(err) if err.is_corrupt() => {
                tracing::warn!(session = %hash, error = %err, "corrupt session deleted; new session");
                if let Err(err) = self.store.delete(hash).await {
                    tracing::warn!(session = %hash, error = %err, "could not delete corrupt session");
                }
                Ok(None)
            }
            Err(err) => Err(LoadError::Other(err.into())),
        }
    }

    /// Converts a loaded record to actix-session's state and notes it in the context.
    fn remember(
        &self,
        key: TokenHash,
        token: SessionToken,
        forwarded: bool,
        record: Record,
    ) -> State {
        let state: State = record
            .state
            .iter()
            .map(|(k, v)| (k.clone(), v.get().to_owned()))
            .collect();
        if let Some(ctx) = RequestContext::current() {
            *ctx.loaded.borrow_mut() = Some(Loaded {
                key,
                token,
                forwarded,
                record,
            });
        }
        state
    }

    fn record(
        &self,
        state: State,
        created_at: SystemTime,
        ttl: &Duration,
    ) -> Result<Record, StoreError> {
        let now = self.now();
        let mut record = Record::new(created_at, now + to_std(ttl));
        record.state = to_state(state)?;
        Ok(record)
    }

    /// Refuses a state larger than the layer's `max_record_bytes`: nothing is stored.
    fn check_size(&self, state: &State) -> Result<(), RecordTooLarge> {
        let size: usize = state.iter().map(|(k, v)| k.len() + v.len()).sum();
        let max = self.settings.max_record_bytes;
        if size > max {
            return Err(RecordTooLarge { size, max });
        }
        Ok(())
    }

    /// Writes `changes` onto the loaded record (retrying on top of concurrent writes) and
    /// returns the token of wherever they landed.
    async fn save_changes(
        &self,
        loaded: Loaded,
        changes: Changes,
        ttl: &Duration,
    ) -> Result<SessionKey, anyhow::Error> {
        let expires_at = self.now() + to_std(ttl);
        match self
            .settings
            .write_queue
            .apply_changes(
                self.store.as_ref(),
                &loaded.key,
                loaded.record,
                changes,
                expires_at,
            )
            .await?
        {
            Applied::Written { key, .. } => {
                self.settings.cleanup.after_write(self.store.as_ref()).await;
                // Rotated meanwhile by another request: follow it to the successor's id.
                let mut token = loaded.token;
                for _ in 0..MAX_UPDATE_ATTEMPTS {
                    if token.hash() == key {
                        return to_key(token);
                    }
                    token = self.successor(&token)?;
                }
                // A forward to an id this layer did not derive: never hand it out.
                Err(anyhow::anyhow!(
                    "saved into a session that is not a successor of the request's id"
                ))
            }
            Applied::Gone => {
                tracing::info!(session = %loaded.key, "session ended during the request; not resurrected");
                to_key(loaded.token)
            }
            _ => to_key(loaded.token),
        }
    }

    /// Creates a session under a fresh id.
    async fn create(&self, record: &Record) -> Result<SessionToken, StoreError> {
        for _ in 0..CREATE_ATTEMPTS {
            let token = SessionToken::generate()?;
            if self.store.create(&token.hash(), record).await? {
                self.settings.cleanup.after_write(self.store.as_ref()).await;
                return Ok(token);
            }
            tracing::warn!("session id collision; drawing another");
        }
        Err(StoreError::unavailable(
            "could not draw an unused session id",
        ))
    }

    pub(crate) async fn save(&self, state: State, ttl: &Duration) -> Result<SessionKey, SaveError> {
        self.check_size(&state)
            .map_err(|err| SaveError::Other(err.into()))?;
        let record = self
            .record(state, self.now(), ttl)
            .map_err(|err| SaveError::Serialization(err.into()))?;
        let token = self
            .create(&record)
            .await
            .map_err(|err| SaveError::Other(err.into()))?;
        to_key(token).map_err(SaveError::Other)
    }

    pub(crate) async fn update(
        &self,
        key: SessionKey,
        state: State,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        self.update_inner(key, state, ttl)
            .await
            .map_err(UpdateError::Other)
    }

    async fn update_inner(
        &self,
        key: SessionKey,
        state: State,
        ttl: &Duration,
    ) -> Result<SessionKey, anyhow::Error> {
        self.check_size(&state)?;
        let ctx = RequestContext::current();
        let loaded = ctx.as_ref().and_then(|ctx| ctx.loaded.borrow_mut().take());

        // A fresh session replaces the loaded one: the old record is deleted or left alone,
        // never written.
        if let Some(delete_old) = ctx.as_ref().and_then(|ctx| ctx.detach.get()) {
            if delete_old {
                if let Some(loaded) = &loaded {
                    self.delete_family(&loaded.token).await?;
                }
            }
            return self.fresh(state, ttl).await;
        }
        let Some(loaded) = loaded else {
            // Not a session this request loaded (no context): the key's current record is
            // the base.
            let Ok(token) = SessionToken::try_from(key.as_ref()) else {
                return self.fresh(state, ttl).await;
            };
            let Some(record) = self.store.reload(&token.hash()).await? else {
                return self.fresh(state, ttl).await;
            };
            let changes = changes_from(&record.state, state)?;
            let loaded = Loaded {
                key: token.hash(),
                token,
                forwarded: false,
                record,
            };
            return self.save_changes(loaded, changes, ttl).await;
        };

        let changes = changes_from(&loaded.record.state, state)?;
        let rotate = ctx.as_ref().is_some_and(|ctx| ctx.rotate.get());
        if rotate {
            return self.rotate(loaded, &changes, ttl).await;
        }
        if loaded.forwarded && changes.is_empty() {
            // Nothing changed (the cookie is being re-issued after a grace forward).
            return to_key(loaded.token);
        }
        self.save_changes(loaded, changes, ttl).await
    }

    /// A new session under a new id, stored only if it holds anything.
    async fn fresh(&self, state: State, ttl: &Duration) -> Result<SessionKey, anyhow::Error> {
        if state.is_empty() {
            return to_key(SessionToken::generate()?);
        }
        let record = self.record(state, self.now(), ttl)?;
        to_key(self.create(&record).await?)
    }

    /// Moves the session to its successor id and leaves a forward at the old one for the
    /// grace window.
    ///
    /// The successor is created first (a concurrent request never finds a forward to
    /// nothing); the forward then claims the rotation, conditional on the version loaded.
    /// If another write came first, or another request of the same page is rotating the
    /// same id (the successor exists), this request does not rotate: it saves its changes
    /// as any other, following the forward if the other request's rotation landed.
    async fn rotate(
        &self,
        loaded: Loaded,
        changes: &Changes,
        ttl: &Duration,
    ) -> Result<SessionKey, anyhow::Error> {
        let next = self.successor(&loaded.token)?;
        let next_hash = next.hash();
        let now = self.now();
        let mut record = Record::new(loaded.record.created_at, now + to_std(ttl));
        record.state = loaded.record.state.clone();
        changes.apply(&mut record.state);
        if self.store.create(&next_hash, &record).await? {
            let mut forward =
                Record::new(loaded.record.created_at, now + self.settings.rotation_grace);
            forward.meta.successor = Some(next_hash.as_str().to_owned());
            forward.version = loaded.record.version.saturating_add(1);
            if self
                .store
                .update(&loaded.key, loaded.record.version, &forward)
                .await?
            {
                tracing::debug!(session = %loaded.key, successor = %next_hash, "session id rotated");
                return to_key(next);
            }
            // Changed or ended meanwhile: undo the successor, save as any other request.
            self.store.delete(&next_hash).await?;
        }
        // Without the bookkeeping that recorded the rotation as done: the next request
        // rotates instead of waiting a whole rotation period.
        self.save_changes(loaded, changes.without(crate::meta::META_KEY), ttl)
            .await
    }

    pub(crate) async fn update_ttl(
        &self,
        key: &SessionKey,
        ttl: &Duration,
    ) -> Result<(), anyhow::Error> {
        if let Ok(token) = SessionToken::try_from(key.as_ref()) {
            self.store
                .touch(&token.hash(), self.now() + to_std(ttl))
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn delete(&self, key: &SessionKey) -> Result<(), anyhow::Error> {
        let ctx = RequestContext::current();
        if ctx.as_ref().and_then(|ctx| ctx.detach.get()) == Some(false) {
            return Ok(());
        }
        if let Ok(token) = SessionToken::try_from(key.as_ref()) {
            self.delete_family(&token).await?;
        }
        // Purged through a grace forward: the successor is the live session.
        if let Some(loaded) = ctx.as_ref().and_then(|ctx| ctx.loaded.borrow_mut().take()) {
            if loaded.forwarded {
                self.delete_family(&loaded.token).await?;
            }
        }
        Ok(())
    }

    /// Deletes the session under `token` and the successors a rotation may have given it
    /// meanwhile (successor ids are derived from the id, so they are known without a
    /// read): a logout through an id that another request just rotated away from must end
    /// the session the client now holds too.
    async fn delete_family(&self, token: &SessionToken) -> Result<(), anyhow::Error> {
        self.store.delete(&token.hash()).await?;
        if self.settings.token_ttl.is_none() {
            return Ok(());
        }
        // A rotation period is longer than the grace window (the builder checks), so a
        // live forward is at most one rotation behind; one more hop covers a rotation that
        // lands while this request runs.
        let mut current = token.clone();
        for _ in 0..FAMILY_HOPS {
            current = self.successor(&current)?;
            self.store.delete(&current.hash()).await?;
        }
        Ok(())
    }
}

/// A session that would not fit the layer's `max_record_bytes`.
#[derive(Debug, thiserror::Error)]
#[error("session of {size} bytes exceeds max_record_bytes ({max}); nothing was stored")]
struct RecordTooLarge {
    size: usize,
    max: usize,
}

/// What turns the loaded state into the handler's (actix-session's JSON text per key):
/// only the values that differ are parsed.
fn changes_from(loaded: &session_core::State, state: State) -> Result<Changes, StoreError> {
    let mut changes = Changes::new();
    for key in loaded.keys() {
        if !state.contains_key(key) {
            changes.remove(key.clone());
        }
    }
    for (key, json) in state {
        if loaded.get(&key).is_none_or(|old| old.get() != json) {
            changes.set(
                key,
                RawValue::from_string(json).map_err(StoreError::corrupt)?,
            );
        }
    }
    Ok(changes)
}

/// actix-session's state (JSON text per key) as session-core's.
fn to_state(state: State) -> Result<session_core::State, StoreError> {
    state
        .into_iter()
        .map(|(key, json)| {
            Ok((
                key,
                RawValue::from_string(json).map_err(StoreError::corrupt)?,
            ))
        })
        .collect()
}

fn other(err: StoreError) -> LoadError {
    LoadError::Other(err.into())
}

fn to_key(token: SessionToken) -> Result<SessionKey, anyhow::Error> {
    SessionKey::try_from(token.as_str().to_owned()).map_err(anyhow::Error::new)
}

fn to_std(ttl: &Duration) -> std::time::Duration {
    std::time::Duration::try_from(*ttl).unwrap_or_default()
}
