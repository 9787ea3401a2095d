//! Owned engine handles: every handle the engine gives us is dropped exactly once.

use std::fmt;

use super::dispatch::Engine;

/// A handle owned by this process; dropping it releases the engine object.
pub struct OwnedHandle {
    id: u64,
    engine: &'static Engine,
}

impl OwnedHandle {
    /// Take ownership of `id` (0, the engine's invalid handle, owns nothing).
    pub fn new(engine: &'static Engine, id: u64) -> Self {
        Self { id, engine }
    }

    /// Hand the handle over to the engine (some requests take ownership, e.g. reading a byte stream):
    /// it will not be dropped here.
    pub fn into_engine(self) -> u64 {
        let id = self.id;
        std::mem::forget(self);
        id
    }

    /// The raw id, for requests. Never drop it by hand.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for OwnedHandle {
    fn drop(&mut self) {
        if self.id != 0 && !self.engine.lib().drop_handle(self.id) {
            tracing::debug!(handle = self.id, "engine did not know handle on drop");
        }
    }
}

impl fmt::Debug for OwnedHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OwnedHandle({})", self.id)
    }
}
