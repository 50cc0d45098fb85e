//! [`Shared`]: what every request of a layer shares.

use crate::{settings::Settings, storage::Storage};

/// What every request of a layer shares: where sessions go, and the settings.
pub(crate) struct Shared<S> {
    pub(crate) storage: Storage<S>,
    pub(crate) settings: Settings,
}
