//! [`Shared`]: what every request of a layer shares.

use std::sync::Arc;

use session_core::Store;

use crate::{settings::Settings, storage::Storage, users::Directory};

/// What every request of a layer shares: where sessions go, and the settings.
pub(crate) struct Shared<S> {
    pub(crate) storage: Storage<S>,
    pub(crate) settings: Settings,
}

impl<S: Store> Shared<S> {
    /// The layer's user index, for [`UserSessions`](crate::UserSessions); `None` for a
    /// cookie-only layer.
    pub(crate) fn directory(self: &Arc<Self>) -> Option<Arc<dyn Directory>> {
        match self.storage {
            Storage::Server(_) => Some(Arc::clone(self) as Arc<dyn Directory>),
            Storage::Cookie => None,
        }
    }
}
