//! [`SessionLayer`] and the middleware it installs. One request through it, top to bottom,
//! is `handle`: every stage is a function of its own module.

use std::{future::Future, pin::Pin, rc::Rc, sync::Arc};

use actix_web::{
    body::MessageBody,
    dev::{Service, ServiceRequest, ServiceResponse, Transform},
    Error,
};
use session_core::{lifecycle, Store};

use tracing::Instrument as _;

use crate::{
    collect, error, handoff, load, observe, persist, request_cookie, response, shared::Shared,
    storage::Storage,
};

/// The session middleware: mount it once with `App::wrap`.
///
/// Handlers use `actix_session::Session` (and the typed [`Typed`](crate::Typed) and
/// [`Flash`](crate::Flash) extractors) as usual; the layer does the cookie round trip,
/// loads and saves through a session-core [`Store`], and applies binding, id rotation,
/// idle and absolute timeouts, flash messages and cache headers. See the
/// [crate documentation](crate) for a complete example and [`SessionLayerBuilder`](crate::SessionLayerBuilder) for the
/// settings.
///
/// The layer is `Send + Clone`: build it once and clone it into `HttpServer::new`.
///
/// # Example
///
/// ```no_run
/// use actix_session::Session;
/// use actix_web::{cookie::Key, web, App, HttpServer};
/// use session_actix::{store::SqliteStore, SessionLayer};
///
/// async fn visits(session: Session) -> actix_web::Result<String> {
///     let n = session.get::<u32>("visits")?.unwrap_or(0) + 1;
///     session.insert("visits", n)?;
///     Ok(format!("{n}"))
/// }
///
/// #[actix_web::main]
/// async fn main() -> std::io::Result<()> {
///     // Load the key from your secrets; a generated key ends every session at restart.
///     let key = Key::generate();
///     let store = SqliteStore::connect("sqlite://sessions.db").await?;
///     let layer = SessionLayer::new(store, key);
///     HttpServer::new(move || App::new().wrap(layer.clone()).route("/", web::get().to(visits)))
///         .bind(("127.0.0.1", 8080))?
///         .run()
///         .await
/// }
/// ```
pub struct SessionLayer<S> {
    inner: Arc<Shared<S>>,
}

impl<S> SessionLayer<S> {
    pub(crate) fn from_shared(inner: Arc<Shared<S>>) -> Self {
        Self { inner }
    }

    /// What every request of the layer shares.
    pub(crate) fn shared(&self) -> &Shared<S> {
        &self.inner
    }
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
    /// The store sessions are kept in; `None` for a cookie-only layer.
    #[must_use]
    pub fn store(&self) -> Option<&S> {
        match &self.inner.storage {
            Storage::Server(sessions) => Some(sessions.store()),
            Storage::Cookie => None,
        }
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
    inner: Arc<Shared<S>>,
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
        let (service, inner) = (Rc::clone(&self.service), Arc::clone(&self.inner));
        // One span per request, naming the session by its short hash once it is loaded;
        // nothing at all (not even the `log` fallback) when no subscriber wants it. Each
        // future is built in its box: a large future moved between is a large copy.
        if tracing::level_enabled!(tracing::Level::INFO) {
            let span = tracing::info_span!("session", session = tracing::field::Empty);
            Box::pin(handle(service, inner, req).instrument(span))
        } else {
            Box::pin(handle(service, inner, req))
        }
    }
}

/// One request through the layer, top to bottom: every stage is a function of its own
/// module.
async fn handle<Svc, S, B>(
    service: Rc<Svc>,
    inner: Arc<Shared<S>>,
    req: ServiceRequest,
) -> Result<ServiceResponse<B>, Error>
where
    S: Store,
    Svc: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    let settings = &inner.settings;
    let now = settings.clock.now();

    // 1. Find the session cookie and open it: a value that does not authenticate
    //    is no session, and never reaches a store.
    //    A cookie of a previous key opens too, and is marked `stale`.
    let mut had_cookie = false;
    let opened = request_cookie::values(req.headers(), &settings.cookie_name)
        .inspect(|_| had_cookie = true)
        .find_map(|value| settings.open_cookie(value));
    let stale = opened.as_ref().is_some_and(|(_, stale)| *stale);

    // 2. Load the session it names.
    let payload = opened.map(|(payload, _)| payload);
    let found = load::load(&inner, payload, now)
        .await
        .map_err(error::opaque)?;

    // 3. Decide what the handler gets (timeouts, binding, rotation, refresh; a
    //    session of a previous key rotates to the current one).
    let presented = load::presented(&found, req.request(), settings, stale, now);
    let start = lifecycle::start(&settings.policy, presented);
    observe::started(&found, start);

    // 4. Hand the state to actix-session's `Session` (and flash messages to `Flash`).
    let given = found.given(start);
    let info = found.info(start, settings);
    let directory = inner.directory();
    handoff::hand_over(&req, given, settings.integrate_flash, info, directory);

    // 5. Run the handler.
    let mut res = service.call(req).await?;

    // 6. Collect what it did to the session.
    let (handled, changes) = collect::collect(res.request(), given.map(|record| &record.state))
        .map_err(error::opaque)?;

    // 7. Plan the writes and carry them out.
    let plan = lifecycle::finish(start, handled, settings.persistent_cookie);
    let continues = matches!(start, lifecycle::Start::Continue { .. });
    let issued = persist::carry_out(&inner, &plan, found, continues, changes, res.request(), now)
        .await
        .map_err(error::opaque)?;

    // 8. Set or remove the cookie; mark the response private to the session.
    response::finish(&mut res, settings, issued, had_cookie, now);
    Ok(res)
}
