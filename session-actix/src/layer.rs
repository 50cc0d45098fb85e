//! [`SessionLayer`] and the middleware it installs. One request through it, top to bottom,
//! is [`SessionMiddleware::call`]: every stage is a function of its own module.

use std::{future::Future, pin::Pin, rc::Rc, sync::Arc};

use actix_web::{
    body::MessageBody,
    cookie::Key,
    dev::{Service, ServiceRequest, ServiceResponse, Transform},
    Error,
};
use session_core::{lifecycle, Store};

use crate::{
    collect,
    config::SessionLayerBuilder,
    config::Settings,
    error, handoff, load, persist, request_cookie, response,
    storage::{Backend, CookieOnly, Storage},
};

/// The session middleware: mount it once with `App::wrap`.
///
/// Handlers use `actix_session::Session` (and the typed [`Typed`](crate::Typed) and
/// [`Flash`](crate::Flash) extractors) as usual; the layer does the cookie round trip,
/// loads and saves through a session-core [`Store`], and applies binding, id rotation,
/// idle and absolute timeouts, flash messages and cache headers. See the
/// [crate documentation](crate) for a complete example and [`SessionLayerBuilder`] for the
/// settings.
///
/// The layer is `Send + Clone`: build it once and clone it into `HttpServer::new`.
pub struct SessionLayer<S> {
    inner: Arc<Inner<S>>,
}

/// What every request of a layer shares.
pub(crate) struct Inner<S> {
    pub(crate) storage: Storage<S>,
    pub(crate) settings: Settings,
}

impl<S> Clone for SessionLayer<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> std::fmt::Debug for SessionLayer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer")
            .field("cookie_name", &self.inner.settings.cookie_name)
            .field(
                "server_side",
                &matches!(self.inner.storage, Storage::Server(_)),
            )
            .finish_non_exhaustive()
    }
}

impl<S: Store> SessionLayer<S> {
    /// A builder for sessions kept in `store` (e.g. a
    /// [`TieredStore`](session_core::store::TieredStore)), with cookies encrypted under
    /// `key`.
    ///
    /// `key` must be at least 64 bytes of secret randomness (`Key::generate()`, or
    /// `Key::from` a secret loaded from configuration) and the same for every process of
    /// the application: the cookie's keys, binding fingerprints and rotation successors all
    /// derive from it.
    pub fn builder(store: S, key: Key) -> SessionLayerBuilder<S> {
        SessionLayerBuilder::new(Backend::Server(Arc::new(store)), key)
    }

    /// A layer over `store` with the default settings.
    ///
    /// # Errors
    ///
    /// Never with the defaults; see [`SessionLayerBuilder::build`].
    pub fn new(store: S, key: Key) -> Result<Self, crate::ConfigError> {
        Self::builder(store, key).build()
    }

    pub(crate) fn from_parts(storage: Storage<S>, settings: Settings) -> Self {
        Self {
            inner: Arc::new(Inner { storage, settings }),
        }
    }

    /// The store sessions are kept in; `None` for a cookie-only layer.
    #[must_use]
    pub fn store(&self) -> Option<&S> {
        match &self.inner.storage {
            Storage::Server(sessions) => Some(sessions.store()),
            Storage::Cookie => None,
        }
    }
}

impl SessionLayer<CookieOnly> {
    /// A builder for cookie-only sessions: the data lives in the (encrypted) cookie.
    ///
    /// Binding checks, idle and absolute timeouts and flash messages work as with a
    /// server-side store. What cannot apply: server-side revocation (a copied cookie stays
    /// valid until it times out, as the server keeps nothing to delete), id rotation and its
    /// grace window (there is no id), and the 4 KiB cookie size limit bounds the data.
    pub fn cookie_only(key: Key) -> SessionLayerBuilder<CookieOnly> {
        SessionLayerBuilder::new(Backend::Cookie, key)
    }
}

impl<S, Svc, B> Transform<Svc, ServiceRequest> for SessionLayer<S>
where
    S: Store,
    Svc: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = SessionMiddleware<Svc, S>;
    type InitError = ();
    type Future = std::future::Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: Svc) -> Self::Future {
        std::future::ready(Ok(SessionMiddleware {
            service: Rc::new(service),
            inner: Arc::clone(&self.inner),
        }))
    }
}

/// The service [`SessionLayer`] wraps around the application.
pub struct SessionMiddleware<Svc, S> {
    service: Rc<Svc>,
    inner: Arc<Inner<S>>,
}

impl<Svc, S, B> Service<ServiceRequest> for SessionMiddleware<Svc, S>
where
    S: Store,
    Svc: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Error>>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let settings = &inner.settings;
            let now = settings.clock.now();

            // 1. Find the session cookie and open it: a value that does not authenticate
            //    is no session, and never reaches a store.
            let mut had_cookie = false;
            let payload = request_cookie::values(req.headers(), &settings.cookie_name)
                .inspect(|_| had_cookie = true)
                .find_map(|value| settings.sealer.open(value));

            // 2. Load the session it names.
            let found = load::load(&inner, payload).await.map_err(error::opaque)?;

            // 3. Decide what the handler gets (timeouts, binding, rotation, refresh).
            let presented = load::presented(&found, req.request(), settings, now);
            let start = lifecycle::start(&settings.policy, presented);
            if let lifecycle::Start::Replace { reason, .. } = start {
                tracing::warn!(
                    reason = reason.as_str(),
                    "session refused; continuing with a fresh session"
                );
            }

            // 4. Hand the state to actix-session's `Session` (and flash messages to `Flash`).
            let given = found.given(start);
            handoff::hand_over(&req, given, settings.integrate_flash);

            // 5. Run the handler.
            let mut res = service.call(req).await?;

            // 6. Collect what it did to the session.
            let (handled, changes) =
                collect::collect(res.request(), given.map(|record| &record.state))
                    .map_err(error::opaque)?;

            // 7. Plan the writes and carry them out.
            let plan = lifecycle::finish(start, handled, settings.persistent_cookie);
            let issued = persist::carry_out(&inner, &plan, found, changes, res.request(), now)
                .await
                .map_err(error::opaque)?;

            // 8. Set or remove the cookie; mark the response private to the session.
            response::finish(&mut res, settings, issued, had_cookie, now);
            Ok(res)
        })
    }
}
