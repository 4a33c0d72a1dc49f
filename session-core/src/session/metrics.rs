//! The layer's counters (`session_loads_total`, `session_creates_total`,
//! `session_writes_total`, `session_deletes_total`), as handles registered
//! once per layer rather than looked up in the recorder on every call.
//!
//! Registered on first use, not when the layer is built: an application may
//! build its router before it installs its `metrics` recorder, and a handle
//! taken before that would count into nothing for the life of the process.

use std::sync::OnceLock;

use metrics::Counter;

/// The counter handles.
pub(crate) struct SessionMetrics {
    /// Sessions loaded from the store.
    pub(crate) loads: Counter,
    /// Sessions created.
    pub(crate) creates: Counter,
    /// Change sets written to existing sessions.
    pub(crate) writes: Counter,
    /// Sessions deleted (logouts, emptied sessions).
    pub(crate) deletes: Counter,
}

/// [`SessionMetrics`], registered with the recorder of the first request.
#[derive(Default)]
pub(crate) struct LazyMetrics(OnceLock<SessionMetrics>);

impl LazyMetrics {
    /// The handles, registering them on the first call.
    pub(crate) fn get(&self) -> &SessionMetrics {
        self.0.get_or_init(|| SessionMetrics {
            loads: metrics::counter!("session_loads_total"),
            creates: metrics::counter!("session_creates_total"),
            writes: metrics::counter!("session_writes_total"),
            deletes: metrics::counter!("session_deletes_total"),
        })
    }
}
