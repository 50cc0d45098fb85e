//! Flash messages: set in one request, read exactly once in a later one.

use std::{future::Future, pin::Pin};

use actix_session::{SessionExt, SessionStatus};
use actix_web::{dev::Payload, error, FromRequest, HttpMessage as _, HttpRequest};

use crate::{
    flash_message::{FlashMessage, Level},
    frame::Frame,
};

/// The prefix of the reserved state keys holding pending flash messages: each message is
/// stored under a key of its own, `__flash.` followed by when it was pushed and a random
/// suffix (so that a request pushing a message and one reading the earlier ones never
/// overwrite each other's change); earlier releases kept them all as one list under
/// `__flash` itself, which is still read. User code must not write these keys.
pub const FLASH_KEY: &str = "__flash";

/// Whether `key` is one of the reserved flash keys ([`FLASH_KEY`]).
pub(crate) fn is_flash_key(key: &str) -> bool {
    key.strip_prefix(FLASH_KEY)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// The time of the last message key this process made (milliseconds since the Unix
/// epoch): keys are made in increasing order, even within one millisecond or across a step
/// of the clock back.
static LAST_KEY_TIME: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A fresh key for a pushed message: `__flash.`, when it was pushed (milliseconds since
/// the Unix epoch, 11 hex digits, increasing within this process, so that keys sort in the
/// order messages were pushed, to the millisecond across instances) and 32 random bits
/// (27 bytes in all: small in a cookie-only session too).
pub(crate) fn message_key() -> Result<String, session_core::StoreError> {
    use ring::rand::SecureRandom as _;
    use std::sync::atomic::Ordering;
    let mut suffix = [0u8; 4];
    ring::rand::SystemRandom::new()
        .fill(&mut suffix)
        .map_err(|_| session_core::StoreError::unavailable("no randomness for a flash key"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        });
    let previous = LAST_KEY_TIME
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last.saturating_add(1)))
        })
        .unwrap_or(now);
    let time = now.max(previous.saturating_add(1));
    Ok(format!(
        "{FLASH_KEY}.{time:011x}{:08x}",
        u32::from_be_bytes(suffix)
    ))
}

/// Flash messages (the original utility's `integrate_flash`): an extractor.
///
/// [`messages`](Self::messages) are those set by earlier requests; reading them removes them
/// from the session, so each is shown exactly once, by the first request whose handler
/// reads them (requests that do not, such as API calls, or a handler that only pushes,
/// leave them in place).
/// [`push`](Self::push) queues a message for a later request (typically the page a
/// redirect leads to). A message pushed after `session.purge()` (a logout's "you are signed
/// out") is kept too: it starts a fresh session of its own, under a new id.
///
/// Extraction fails with 500 if the layer was built with `integrate_flash(false)`, or if
/// the session middleware is not installed.
///
/// # Example
///
/// ```
/// use actix_web::{http::header, test, web, App, HttpResponse};
/// use session_actix::{testing::TestSessions, Flash, Level};
///
/// async fn save(flash: Flash) -> actix_web::Result<HttpResponse> {
///     flash.push(Level::Success, "Saved.")?;
///     Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, "/")).finish())
/// }
///
/// async fn page(flash: Flash) -> String {
///     flash.messages().iter().map(|m| m.text.as_str()).collect::<Vec<_>>().join(" ")
/// }
///
/// # #[actix_web::main]
/// # async fn main() {
/// let sessions = TestSessions::new();
/// let app = test::init_service(
///     App::new()
///         .wrap(sessions.layer())
///         .route("/save", web::post().to(save))
///         .route("/", web::get().to(page)),
/// )
/// .await;
/// let res = test::call_service(&app, test::TestRequest::post().uri("/save").to_request()).await;
/// let cookie = sessions.cookie(&res).expect("the flash started a session");
/// let page_once = test::TestRequest::get().uri("/").cookie(cookie.clone()).to_request();
/// assert_eq!(test::call_and_read_body(&app, page_once).await, "Saved.");
/// let page_again = test::TestRequest::get().uri("/").cookie(cookie).to_request();
/// assert_eq!(test::call_and_read_body(&app, page_again).await, "", "read exactly once");
/// # }
/// ```
pub struct Flash {
    incoming: Vec<FlashMessage>,
    req: HttpRequest,
}

impl std::fmt::Debug for Flash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flash")
            .field("incoming", &self.incoming)
            .finish_non_exhaustive()
    }
}

impl Flash {
    /// The messages set by earlier requests. Reading them is showing them: they leave the
    /// session when this request ends.
    #[must_use]
    pub fn messages(&self) -> &[FlashMessage] {
        if !self.incoming.is_empty() {
            if let Some(frame) = self.req.extensions_mut().get_mut::<Frame>() {
                frame.flash_shown = true;
            }
        }
        &self.incoming
    }

    /// Queues a message for a later request.
    ///
    /// # Errors
    ///
    /// None today: the `Result` leaves room for a size limit on pending messages.
    pub fn push(&self, level: Level, text: impl Into<String>) -> Result<(), error::Error> {
        let message = FlashMessage {
            level,
            text: text.into(),
        };
        let purged = self.req.get_session().status() == SessionStatus::Purged;
        if let Some(frame) = self.req.extensions_mut().get_mut::<Frame>() {
            if purged {
                // After a logout: the message starts a fresh session of its own.
                frame.flash_after_purge.push(message);
            } else {
                frame.flash_pushed.push(message);
            }
        }
        Ok(())
    }
}

impl FromRequest for Flash {
    type Error = error::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let incoming = Frame::of(req).and_then(|frame| {
            if frame.flash_enabled {
                Ok(frame.incoming_flash.clone())
            } else {
                Err(error::ErrorInternalServerError(
                    "flash messages are not enabled: the layer was built with integrate_flash(false)",
                ))
            }
        });
        let result = incoming.map(|incoming| Self {
            incoming,
            req: req.clone(),
        });
        Box::pin(async move { result })
    }
}
