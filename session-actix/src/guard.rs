//! The outer part of the layer: the request context, the client's identity, cache headers
//! and opaque errors.

use std::{net::IpAddr, rc::Rc, sync::Arc};

use actix_web::{
    body::MessageBody,
    dev::{Service, ServiceRequest, ServiceResponse},
    error::InternalError,
    http::header::{self, HeaderValue},
    Error, HttpRequest,
};

use crate::{config::Settings, context::RequestContext};

/// Wraps actix-session's middleware.
pub struct Guard<Svc> {
    service: Rc<Svc>,
    settings: Arc<Settings>,
}

impl<Svc> Guard<Svc> {
    pub(crate) fn new(service: Rc<Svc>, settings: Arc<Settings>) -> Self {
        Self { service, settings }
    }
}

impl<Svc, B> Service<ServiceRequest> for Guard<Svc>
where
    Svc: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Error>>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let settings = Arc::clone(&self.settings);
        let ctx = Rc::new(RequestContext::default());
        Box::pin(async move {
            match ctx.scope(service.call(req)).await {
                Ok(mut res) => {
                    add_cache_headers(&mut res, &settings.cookie_name);
                    Ok(res)
                }
                Err(err) => {
                    let status = err.as_response_error().status_code();
                    if !status.is_server_error() {
                        return Err(err);
                    }
                    // Details go to the log; the client gets a status and a short body.
                    tracing::error!(error = %err, "session layer failed");
                    Err(InternalError::new("session error", status).into())
                }
            }
        })
    }
}

/// The client's binding fingerprint (HMAC of its IP prefix and/or User-Agent), if binding
/// is on. Computed only when a new session needs it: requests without a session never pay
/// for it.
pub(crate) fn fingerprint(req: &HttpRequest, settings: &Settings) -> Option<String> {
    let (ip, user_agent) = binding_inputs(req, settings)?;
    settings
        .binding_key
        .fingerprint(&settings.binding, ip, Some(user_agent))
}

/// Whether the client matches the fingerprint its session was bound with (`None`: bound
/// to nothing).
pub(crate) fn binding_matches(
    req: &HttpRequest,
    settings: &Settings,
    stored: Option<&str>,
) -> bool {
    // With binding off there are no inputs, and `matches` accepts only unbound sessions.
    let (ip, user_agent) = binding_inputs(req, settings).unwrap_or((None, &[]));
    settings
        .binding_key
        .matches(&settings.binding, ip, Some(user_agent), stored)
}

/// What the binding policy looks at: the client IP and the User-Agent, each only if bound.
/// `None` when binding is off.
fn binding_inputs<'r>(
    req: &'r HttpRequest,
    settings: &Settings,
) -> Option<(Option<IpAddr>, &'r [u8])> {
    let policy = &settings.binding;
    if !policy.is_enabled() {
        return None;
    }
    let ip = if policy.check_ip {
        client_ip(req, settings)
    } else {
        None
    };
    let user_agent = if policy.check_user_agent {
        req.headers()
            .get(header::USER_AGENT)
            .map_or(&[][..], HeaderValue::as_bytes)
    } else {
        &[]
    };
    Some((ip, user_agent))
}

/// The client's IP: the peer address, or, behind trusted proxies, the right-most
/// forwarded address that is not itself a trusted proxy
/// ([`client_ip`](session_core::client_ip::client_ip) has the rule).
pub(crate) fn client_ip(req: &HttpRequest, settings: &Settings) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|addr| addr.ip())?;
    if settings.trusted_proxies.is_empty() {
        return Some(peer);
    }
    let header = settings.forwarded_header;
    let values = req
        .headers()
        .get_all(header.name())
        .filter_map(|value| value.to_str().ok());
    Some(session_core::client_ip::client_ip(
        peer,
        header,
        values,
        |ip| settings.is_trusted_proxy(ip),
    ))
}

/// A response that depends on the session must not be served to anyone else by a shared
/// cache: `Vary: Cookie` and `Cache-Control: private` on every response to a request that
/// carried the session cookie, `no-store` on one that sets it (as Django does). A
/// `Cache-Control` the handler set that is already `private` or `no-store` is kept.
fn add_cache_headers<B>(res: &mut ServiceResponse<B>, cookie_name: &str) {
    let name = cookie_name.as_bytes();
    let sets_cookie = res.headers().get_all(header::SET_COOKIE).any(|value| {
        let value = value.as_bytes();
        value.starts_with(name) && value.get(name.len()) == Some(&b'=')
    });
    let carried_cookie = !sets_cookie
        && res
            .request()
            .headers()
            .get_all(header::COOKIE)
            .any(|value| carries_cookie(value.as_bytes(), name));
    if !sets_cookie && !carried_cookie {
        return;
    }
    let headers = res.headers_mut();
    let private = headers
        .get(header::CACHE_CONTROL)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.contains("no-store") || value.contains("private"));
    if !private {
        let value = if sets_cookie { "no-store" } else { "private" };
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    }
    headers.append(header::VARY, HeaderValue::from_static("Cookie"));
}

/// Whether a `Cookie` header value holds a cookie called `name`.
fn carries_cookie(header: &[u8], name: &[u8]) -> bool {
    header.split(|&b| b == b';').any(|pair| {
        let pair = pair.trim_ascii_start();
        pair.starts_with(name) && pair.get(name.len()) == Some(&b'=')
    })
}

#[cfg(test)]
mod tests {
    use super::carries_cookie;

    #[test]
    fn finds_the_session_cookie_among_others() {
        assert!(carries_cookie(b"session=abc", b"session"));
        assert!(carries_cookie(b"theme=dark; session=abc", b"session"));
        assert!(!carries_cookie(b"session_x=abc; xsession=1", b"session"));
        assert!(!carries_cookie(b"", b"session"));
    }
}
