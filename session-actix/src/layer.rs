//! [`SessionLayer`]: one `.wrap(..)` that composes the guard, actix-session's middleware and
//! the checks.

use std::{rc::Rc, sync::Arc};

use actix_session::{
    config::{BrowserSession, PersistentSession, TtlExtensionPolicy},
    SessionMiddleware,
};
use actix_web::{
    body::MessageBody,
    cookie::{time, Key},
    dev::{Service, ServiceRequest, ServiceResponse, Transform},
    Error,
};
use session_core::Store;

use crate::{
    backend::{ActixStore, Backend, CookieOnly},
    checks::Checks,
    config::{SessionLayerBuilder, Settings},
    guard::Guard,
};

/// The session middleware: mount it once with `App::wrap`.
///
/// It runs actix-session's `SessionMiddleware` (so handlers use `actix_session::Session`
/// as usual) over a session-core [`Store`], and adds binding checks, id rotation, idle and
/// absolute timeouts, flash messages, cache headers and opaque errors. See the
/// [crate documentation](crate) for a complete example and [`SessionLayerBuilder`] for the
/// settings.
///
/// The layer is `Send + Clone`: build it once and clone it into `HttpServer::new`.
pub struct SessionLayer<S> {
    backend: Backend<S>,
    settings: Arc<Settings>,
}

impl<S> Clone for SessionLayer<S> {
    fn clone(&self) -> Self {
        Self {
            backend: self.backend.clone(),
            settings: Arc::clone(&self.settings),
        }
    }
}

impl<S> std::fmt::Debug for SessionLayer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer")
            .field("cookie_name", &self.settings.cookie_name)
            .field("server_side", &self.backend.is_server_side())
            .finish_non_exhaustive()
    }
}

impl<S: Store> SessionLayer<S> {
    /// A builder for sessions kept in `store` (e.g. a
    /// [`TieredStore`](session_core::store::TieredStore)), with cookies signed and encrypted
    /// under `key`.
    ///
    /// `key` must be at least 64 bytes of secret randomness (`Key::generate()`, or
    /// `Key::from` a secret loaded from configuration) and the same for every process of
    /// the application: ids, binding fingerprints and rotation successors all derive from
    /// it.
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

    pub(crate) fn from_parts(backend: Backend<S>, settings: Arc<Settings>) -> Self {
        Self { backend, settings }
    }
}

impl SessionLayer<CookieOnly> {
    /// A builder for cookie-only sessions: the data lives in the (encrypted) cookie,
    /// through actix-session's `CookieSessionStore`, as JSON.
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
    type Transform = Guard<
        <SessionMiddleware<ActixStore<S>> as Transform<Checks<Svc>, ServiceRequest>>::Transform,
    >;
    type InitError = ();
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Transform, ()>>>>;

    fn new_transform(&self, service: Svc) -> Self::Future {
        let settings = Arc::clone(&self.settings);
        let session = actix_middleware(&self.backend, &settings);
        let checks = Checks::new(
            service,
            Arc::clone(&settings),
            self.backend.is_server_side(),
        );
        Box::pin(async move {
            let inner = session.new_transform(checks).await?;
            Ok(Guard::new(Rc::new(inner), settings))
        })
    }
}

/// actix-session's middleware, configured from the settings.
fn actix_middleware<S: Store>(
    backend: &Backend<S>,
    settings: &Arc<Settings>,
) -> SessionMiddleware<ActixStore<S>> {
    let idle = time::Duration::try_from(settings.idle_timeout).unwrap_or(time::Duration::MAX);
    let builder = SessionMiddleware::builder(backend.actix_store(settings), settings.key.clone())
        .cookie_name(settings.cookie_name.clone())
        .cookie_secure(settings.cookie_secure)
        .cookie_http_only(settings.cookie_http_only)
        .cookie_same_site(settings.cookie_same_site)
        .cookie_domain(settings.cookie_domain.clone())
        .cookie_path(settings.cookie_path.clone())
        .cookie_content_security(settings.content_security);
    // Expiry is extended by the checks (at most once per quarter of the idle timeout), not
    // by actix-session on every request.
    let builder = if settings.persistent_cookie {
        builder.session_lifecycle(
            PersistentSession::default()
                .session_ttl(idle)
                .session_ttl_extension_policy(TtlExtensionPolicy::OnStateChanges),
        )
    } else {
        builder.session_lifecycle(
            BrowserSession::default()
                .state_ttl(idle)
                .state_ttl_extension_policy(TtlExtensionPolicy::OnStateChanges),
        )
    };
    builder.build()
}
