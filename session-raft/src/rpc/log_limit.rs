//! Warnings about refused cluster calls, at most one per reason per
//! interval.
//!
//! Anyone who can reach the cluster port can send calls without the secret,
//! garbage bodies or calls meant for another member. Each one is worth a
//! warning when it is rare (a misconfigured peer), but one line per call
//! would let a flood fill the disk and hide everything else. So a reason is
//! logged when it first occurs, then at most once per [`LOG_EVERY`] with the
//! number of calls refused for it in between; `/metrics` counts every one
//! (`session_raft_refused_calls_total{reason}`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Shortest time between two warnings of one reason.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(10);

/// Per-reason state: when it was last logged and how many since.
#[derive(Debug, Default)]
pub(crate) struct LogLimiter {
    reasons: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl LogLimiter {
    /// Counts one refusal for `reason`; `Some(held_back)` if a warning is due
    /// now, with the number of refusals not logged since the last one.
    pub(crate) fn allow(&self, reason: &'static str) -> Option<u64> {
        metrics::counter!("session_raft_refused_calls_total", "reason" => reason).increment(1);
        let now = Instant::now();
        let mut reasons = self.reasons.lock();
        match reasons.get_mut(reason) {
            Some((last, held_back)) if now.duration_since(*last) < LOG_EVERY => {
                *held_back += 1;
                None
            }
            Some((last, held_back)) => {
                *last = now;
                Some(std::mem::take(held_back))
            }
            None => {
                reasons.insert(reason, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_logged_first_then_held_back() {
        let limiter = LogLimiter::default();
        assert_eq!(limiter.allow("secret"), Some(0));
        for _ in 0..100 {
            assert_eq!(limiter.allow("secret"), None);
        }
        // Another reason has its own allowance.
        assert_eq!(limiter.allow("malformed"), Some(0));
        // Once the interval has passed, the next one is logged with the count.
        limiter.reasons.lock().get_mut("secret").unwrap().0 -= LOG_EVERY;
        assert_eq!(limiter.allow("secret"), Some(100));
    }
}
