//! [`Frame`]: what the layer leaves in a request for the extractors.

use actix_web::{HttpMessage as _, HttpRequest};

use std::sync::Arc;

use session_core::lifecycle::users::Principal;

use crate::{
    flash_message::FlashMessage,
    info::SessionInfo,
    users::{Directory, UserRequest},
};

/// What the layer leaves in the request's extensions for the extractors.
pub(crate) struct Frame {
    /// Whether flash messages are on.
    pub(crate) flash_enabled: bool,
    /// The flash messages set by earlier requests (kept out of the handler's `Session`).
    pub(crate) incoming_flash: Vec<FlashMessage>,
    /// The state keys `incoming_flash` was stored under: removed once they are shown.
    pub(crate) incoming_flash_keys: Vec<String>,
    /// Flash keys whose value does not decode: removed by the request.
    pub(crate) broken_flash_keys: Vec<String>,
    /// Whether a handler read `incoming_flash`: then they leave the session.
    pub(crate) flash_shown: bool,
    /// Messages pushed by this request, for a later one.
    pub(crate) flash_pushed: Vec<FlashMessage>,
    /// Messages pushed after the handler purged the session (actix-session's `Session`
    /// takes nothing after a purge): they start a fresh session.
    pub(crate) flash_after_purge: Vec<FlashMessage>,
    /// What [`SessionInfo`] extracts.
    pub(crate) info: SessionInfo,
    /// The user the loaded session is attached to.
    pub(crate) principal: Option<Principal>,
    /// What a handler asked of the session's user ([`UserSessions`](crate::UserSessions)).
    pub(crate) user_request: Option<UserRequest>,
    /// The layer's user index; `None` for a cookie-only layer.
    pub(crate) directory: Option<Arc<dyn Directory>>,
}

impl Frame {
    /// The layer's frame of the request, or an error that says the layer is missing.
    pub(crate) fn of(req: &HttpRequest) -> Result<std::cell::Ref<'_, Self>, actix_web::Error> {
        std::cell::Ref::filter_map(req.extensions(), |ext| ext.get::<Self>()).map_err(|_| {
            actix_web::error::ErrorInternalServerError(
                "the session middleware is not installed: add `.wrap(session_layer)` to the App",
            )
        })
    }
}
