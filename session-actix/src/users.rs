//! [`UserSessions`]: the sessions of the signed-in user, for a "your devices" page and
//! "sign out everywhere".

use std::{
    future::{ready, Future, Ready},
    pin::Pin,
    sync::Arc,
};

use actix_session::SessionExt as _;
use actix_web::{dev::Payload, FromRequest, HttpMessage as _, HttpRequest};
use session_core::{lifecycle::UserSession, Store, StoreError};

use crate::{error, frame::Frame, shared::Shared, storage::Storage};

/// What a handler asked of the session's user, applied when the response is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UserRequest {
    /// Attach the session to this user id.
    Attach(String),
    /// Attach it to no one.
    Detach,
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + 'a>>;

/// The user index operations of a layer, without its store type.
pub(crate) trait Directory {
    fn list<'a>(&'a self, user: &'a str, current: Option<&'a str>) -> Boxed<'a, Vec<UserSession>>;
    fn end<'a>(&'a self, user: &'a str, id: &'a str) -> Boxed<'a, bool>;
    fn end_all<'a>(&'a self, user: &'a str, except: Option<&'a str>) -> Boxed<'a, usize>;
}

impl<S: Store> Shared<S> {
    fn sessions(&self) -> Result<&session_core::lifecycle::Sessions<S>, StoreError> {
        match &self.storage {
            Storage::Server(sessions) => Ok(sessions),
            Storage::Cookie => Err(StoreError::unavailable(
                "the sessions of a user need a server-side store",
            )),
        }
    }
}

impl<S: Store> Directory for Shared<S> {
    fn list<'a>(&'a self, user: &'a str, current: Option<&'a str>) -> Boxed<'a, Vec<UserSession>> {
        Box::pin(async move {
            let now = self.settings.clock.now();
            self.sessions()?.user_sessions(user, current, now).await
        })
    }

    fn end<'a>(&'a self, user: &'a str, id: &'a str) -> Boxed<'a, bool> {
        Box::pin(async move {
            let now = self.settings.clock.now();
            self.sessions()?.end_user_session(user, id, now).await
        })
    }

    fn end_all<'a>(&'a self, user: &'a str, except: Option<&'a str>) -> Boxed<'a, usize> {
        Box::pin(async move {
            let now = self.settings.clock.now();
            self.sessions()?.end_user_sessions(user, except, now).await
        })
    }
}

/// The sessions of the signed-in user: attach the session to a user at sign-in, list the
/// user's sessions ("your devices"), end one, end all others ("sign out everywhere
/// else"). An extractor; needs a server-side store.
///
/// The layer keeps an index of each user's sessions in the session store (see
/// [`session_core::lifecycle::users`] for how it stays complete under concurrency, id
/// rotations and crashes). Ending a session ends its whole rotation family at once, in
/// every tier: its holder's next request starts a fresh, empty session.
///
/// ```
/// use actix_session::Session;
/// use actix_web::{web, HttpResponse};
/// use session_actix::UserSessions;
///
/// async fn sign_in(session: Session, users: UserSessions) -> actix_web::Result<HttpResponse> {
///     // ... after checking the password:
///     session.renew();
///     users.attach("alice")?;
///     Ok(HttpResponse::SeeOther().insert_header(("Location", "/")).finish())
/// }
///
/// async fn devices(users: UserSessions) -> actix_web::Result<String> {
///     let mut page = String::new();
///     for s in users.list().await? {
///         let mark = if s.current { " (this one)" } else { "" };
///         page.push_str(&format!("{}{mark}\n", s.agent));
///     }
///     Ok(page)
/// }
///
/// async fn sign_out_elsewhere(users: UserSessions) -> actix_web::Result<String> {
///     Ok(format!("{} other sessions ended", users.end_others().await?))
/// }
/// # let _ = (web::post().to(sign_in), web::get().to(devices), web::post().to(sign_out_elsewhere));
/// ```
///
/// Signing out with `Session::purge` detaches the session too; `Session::clear` does not
/// (it empties what the handler sees): call [`detach`](Self::detach) with it. The user id
/// is kept in the session under the reserved key `__user`, out of the handler's `Session`
/// (an application key of that name is not stored). After `attach` to another user, or
/// `detach`, the listing and ending methods of the same request see no user.
pub struct UserSessions {
    req: HttpRequest,
}

impl std::fmt::Debug for UserSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSessions")
            .field("user", &self.user())
            .finish()
    }
}

impl FromRequest for UserSessions {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Frame::of(req).map(|_| Self { req: req.clone() }))
    }
}

impl UserSessions {
    /// The user the session is attached to, as of this request (an `attach` or `detach`
    /// of this request included).
    #[must_use]
    pub fn user(&self) -> Option<String> {
        let frame = Frame::of(&self.req).ok()?;
        match &frame.user_request {
            Some(UserRequest::Attach(user)) => Some(user.clone()),
            Some(UserRequest::Detach) => None,
            None => frame.principal.as_ref().map(|p| p.user.clone()),
        }
    }

    /// Attaches the session to `user` (a stable user id, not a display name) when the
    /// response is sent. Call it at sign-in. The session's id is renewed with it (as
    /// `Session::renew` does, which a sign-in should call anyway): what the id grants
    /// changes, so the id a visitor had before signing in opens nothing afterwards.
    ///
    /// A user keeps at most
    /// [`max_sessions_per_user`](crate::SessionLayerBuilder::max_sessions_per_user)
    /// sessions (default 50): attaching one more ends those signed in longest ago.
    ///
    /// # Errors
    ///
    /// A `500` if the layer keeps sessions in cookies (there is no index to keep).
    pub fn attach(&self, user: impl Into<String>) -> Result<(), actix_web::Error> {
        self.request(UserRequest::Attach(user.into()))
    }

    /// Detaches the session from its user when the response is sent, keeping the session.
    /// (`Session::purge`, a sign-out, detaches it too.)
    pub fn detach(&self) {
        // Without a server-side store nothing is attached: nothing to undo.
        let _ = self.request(UserRequest::Detach);
    }

    fn request(&self, request: UserRequest) -> Result<(), actix_web::Error> {
        let mut extensions = self.req.extensions_mut();
        let frame = extensions
            .get_mut::<Frame>()
            .ok_or_else(|| error::opaque(StoreError::unavailable("no session layer")))?;
        if frame.directory.is_none() {
            return Err(error::opaque(StoreError::unavailable(
                "the sessions of a user need a server-side store",
            )));
        }
        frame.user_request = Some(request);
        Ok(())
    }

    /// The signed-in user's live sessions, most recently used first, the current one
    /// marked; empty if the session is attached to no one.
    ///
    /// # Errors
    ///
    /// An opaque `500` if the store fails.
    pub async fn list(&self) -> Result<Vec<UserSession>, actix_web::Error> {
        let Some((directory, user, current)) = self.attached() else {
            return Ok(Vec::new());
        };
        directory
            .list(&user, current.as_deref())
            .await
            .map_err(error::opaque)
    }

    /// Ends the user's session `id` (a [`UserSession::id`] from [`list`](Self::list)),
    /// the current one included (which then ends with this response). `false` if the user
    /// has no such session.
    ///
    /// # Errors
    ///
    /// An opaque `500` if the store fails.
    pub async fn end(&self, id: &str) -> Result<bool, actix_web::Error> {
        let Some((directory, user, current)) = self.attached() else {
            return Ok(false);
        };
        if current.as_deref() == Some(id) {
            self.req.get_session().purge();
            return Ok(true);
        }
        directory.end(&user, id).await.map_err(error::opaque)
    }

    /// Ends all of the user's sessions but this one ("sign out everywhere else") and
    /// returns how many it ended.
    ///
    /// # Errors
    ///
    /// An opaque `500` if the store fails.
    pub async fn end_others(&self) -> Result<usize, actix_web::Error> {
        let Some((directory, user, current)) = self.attached() else {
            return Ok(0);
        };
        directory
            .end_all(&user, current.as_deref())
            .await
            .map_err(error::opaque)
    }

    /// Ends all of the user's sessions, this one with this response ("sign out
    /// everywhere"), and returns how many it ended.
    ///
    /// # Errors
    ///
    /// An opaque `500` if the store fails.
    pub async fn end_all(&self) -> Result<usize, actix_web::Error> {
        let others = self.end_others().await?;
        if self.attached().is_some() {
            self.req.get_session().purge();
            return Ok(others + 1);
        }
        Ok(others)
    }

    /// The layer's index, the user the loaded session is attached to, and its entry id;
    /// `None` once this request detached it or attached it to someone else (the new
    /// attachment is not in the index before the response).
    fn attached(&self) -> Option<(Arc<dyn Directory>, String, Option<String>)> {
        let frame = Frame::of(&self.req).ok()?;
        let directory = frame.directory.clone()?;
        let principal = frame.principal.as_ref()?;
        match &frame.user_request {
            Some(UserRequest::Detach) => return None,
            Some(UserRequest::Attach(user)) if *user != principal.user => return None,
            _ => {}
        }
        Some((
            directory,
            principal.user.clone(),
            Some(principal.entry.clone()),
        ))
    }
}

impl<S: Store> crate::SessionLayer<S> {
    /// The live sessions of `user`, most recently used first: for an administrator's
    /// view, outside a request of that user (none is marked current).
    ///
    /// # Errors
    ///
    /// The store's; [`StoreError::Unavailable`] for a cookie-only layer.
    pub async fn user_sessions(&self, user: &str) -> Result<Vec<UserSession>, StoreError> {
        self.shared().list(user, None).await
    }

    /// Ends every session of `user` (after a password reset, or to lock an account) and
    /// returns how many it ended.
    ///
    /// # Errors
    ///
    /// The store's; [`StoreError::Unavailable`] for a cookie-only layer.
    pub async fn end_user_sessions(&self, user: &str) -> Result<usize, StoreError> {
        self.shared().end_all(user, None).await
    }
}
