//! The inner part of the layer, running with the session loaded: timeouts, binding,
//! rotation and refresh decisions, flash intake, and metadata for new sessions.

use std::{rc::Rc, sync::Arc, time::Duration};

use actix_session::{SessionExt, SessionStatus};
use actix_web::{
    dev::{Service, ServiceRequest, ServiceResponse},
    Error, HttpRequest,
};

use crate::{
    config::Settings,
    context::RequestContext,
    flash::FlashMessage,
    meta::{SessionMeta, FLASH_KEY, META_KEY},
};

/// Runs inside actix-session's middleware.
pub struct Checks<Svc> {
    service: Rc<Svc>,
    settings: Arc<Settings>,
    server_side: bool,
}

impl<Svc> Checks<Svc> {
    pub(crate) fn new(service: Svc, settings: Arc<Settings>, server_side: bool) -> Self {
        Self {
            service: Rc::new(service),
            settings,
            server_side,
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Why a loaded session cannot continue.
enum Verdict {
    /// Continue as it is.
    Keep,
    /// Start a fresh session; delete the old one (`true`) or leave it (`false`).
    Fresh(&'static str, bool),
}

impl<Svc, B> Service<ServiceRequest> for Checks<Svc>
where
    Svc: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Error>>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let settings = Arc::clone(&self.settings);
        let server_side = self.server_side;
        Box::pin(async move {
            let ctx = RequestContext::current().unwrap_or_default();
            let now = millis(
                settings
                    .clock
                    .now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default(),
            );
            let session = req.get_session();
            let meta = match session.get::<SessionMeta>(META_KEY) {
                // A stored session always has metadata: without it, it cannot be checked
                // (it can only come from concurrent saves that cleared and refilled it).
                Ok(None) if !session.entries().is_empty() => {
                    tracing::warn!("session without metadata; continuing with a fresh session");
                    session.clear();
                    ctx.detach.set(Some(true));
                    None
                }
                Ok(meta) => meta,
                Err(_) => {
                    // Metadata that cannot be checked refuses the session (fail closed).
                    tracing::warn!(
                        "session metadata does not decode; continuing with a fresh session"
                    );
                    session.clear();
                    ctx.detach.set(Some(true));
                    None
                }
            };
            if let Some(mut meta) = meta {
                match verdict(&settings, &meta, now, req.request()) {
                    Verdict::Fresh(reason, delete_old) => {
                        tracing::warn!(reason, "session refused; continuing with a fresh session");
                        session.clear();
                        ctx.detach.set(Some(delete_old));
                    }
                    Verdict::Keep => {
                        let due = |every: Duration, since: u64| {
                            now >= since.saturating_add(millis(every))
                        };
                        if server_side
                            && settings.token_ttl.is_some_and(|ttl| due(ttl, meta.issued))
                        {
                            ctx.rotate.set(true);
                            meta.issued = now;
                            meta.refreshed = now;
                            session.insert(META_KEY, &meta)?;
                        } else if due(settings.idle_timeout / 4, meta.refreshed) {
                            meta.refreshed = now;
                            session.insert(META_KEY, &meta)?;
                        } else if ctx.forwarded() {
                            // Hand the client its session's current id.
                            session.insert(META_KEY, &meta)?;
                        }
                    }
                }
            }
            if settings.integrate_flash {
                ctx.flash_enabled.set(true);
                // Taken out of the session now, so each message is read exactly once.
                if session.contains_key(FLASH_KEY) {
                    if let Some(Ok(messages)) = session.remove_as::<Vec<FlashMessage>>(FLASH_KEY) {
                        *ctx.incoming_flash.borrow_mut() = messages;
                    }
                }
            }

            let res = service.call(req).await?;

            // A session that now holds anything, flash messages included, gets its
            // metadata (created, bound, issued): a pending flash is bound like any data.
            let session = res.request().get_session();
            if session.status() != SessionStatus::Purged
                && !session.contains_key(META_KEY)
                && session.entries().keys().any(|key| key != META_KEY)
            {
                let fingerprint = crate::guard::fingerprint(res.request(), &settings);
                session.insert(META_KEY, SessionMeta::fresh(now, fingerprint))?;
            }
            Ok(res)
        })
    }
}

fn verdict(settings: &Settings, meta: &SessionMeta, now: u64, req: &HttpRequest) -> Verdict {
    if let Some(limit) = settings.absolute_timeout {
        if now >= meta.created.saturating_add(millis(limit)) {
            return Verdict::Fresh("absolute timeout", true);
        }
    }
    if now >= meta.refreshed.saturating_add(millis(settings.idle_timeout)) {
        return Verdict::Fresh("idle timeout", true);
    }
    if !crate::guard::binding_matches(req, settings, meta.binding.as_deref()) {
        // Leave the record alone: whoever presents a stolen cookie must not be able to end
        // its owner's session.
        return Verdict::Fresh("client does not match the session's binding", false);
    }
    Verdict::Keep
}
