//! When a session expires: idle timeout (sliding) and absolute lifetime.
//!
//! `expires_at = min(now + idle, created_at + absolute)`. Sliding renewal is
//! not a write per request: a renewal is written only once a configured share
//! of the idle timeout has passed since the last one. The time of the last
//! renewal need not be stored: it is `expires_at - idle`.

use std::time::Duration;

use crate::clock::UnixMillis;
use crate::record::SessionRecord;

/// The layer's expiry settings, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExpiryPolicy {
    /// A session not renewed for this long expires.
    pub(crate) idle_ms: u64,
    /// A session never outlives `created_at` plus this, renewed or not.
    pub(crate) absolute_ms: Option<u64>,
    /// A renewal is written only when it moves the deadline by at least this.
    pub(crate) renew_step_ms: u64,
}

impl Default for ExpiryPolicy {
    fn default() -> Self {
        Self::new(Duration::from_secs(24 * 60 * 60), None, 0.25)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl ExpiryPolicy {
    /// Builds a policy; `renewal_share` is clamped to `0.0..=1.0`.
    pub(crate) fn new(idle: Duration, absolute: Option<Duration>, renewal_share: f64) -> Self {
        let idle_ms = millis(idle).max(1);
        let share = if renewal_share.is_finite() {
            renewal_share.clamp(0.0, 1.0)
        } else {
            0.25
        };
        Self {
            idle_ms,
            absolute_ms: absolute.map(millis),
            renew_step_ms: (idle_ms as f64 * share) as u64,
        }
    }

    /// The latest deadline allowed for a session created at `created_at`.
    fn cap(&self, created_at: UnixMillis) -> UnixMillis {
        self.absolute_ms
            .map_or(UnixMillis::MAX, |abs| created_at.saturating_add(abs))
    }

    /// Deadline of a session created at `now`.
    pub(crate) fn initial(&self, now: UnixMillis) -> UnixMillis {
        now.saturating_add(self.idle_ms).min(self.cap(now))
    }

    /// A deadline the handler asked for, kept under the absolute lifetime.
    pub(crate) fn requested(&self, created_at: UnixMillis, at: UnixMillis) -> UnixMillis {
        at.min(self.cap(created_at))
    }

    /// The new deadline to write for `record` at `now`, if any. When the
    /// request writes anyway (`writing`), any forward move rides along for
    /// free; otherwise only a move of at least the renewal step is worth a write.
    /// A deadline is never moved backwards (a handler may have set a longer one).
    pub(crate) fn renewal(
        &self,
        record: &SessionRecord,
        now: UnixMillis,
        writing: bool,
    ) -> Option<UnixMillis> {
        let target = now
            .saturating_add(self.idle_ms)
            .min(self.cap(record.created_at));
        let gain = target.checked_sub(record.expires_at).filter(|g| *g > 0)?;
        (writing || gain >= self.renew_step_ms.max(1)).then_some(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(created_at: UnixMillis, expires_at: UnixMillis) -> SessionRecord {
        SessionRecord {
            data: Default::default(),
            created_at,
            expires_at,
            version: 1,
        }
    }

    #[test]
    fn renews_only_after_the_share_has_passed() {
        let p = ExpiryPolicy::new(Duration::from_secs(100), None, 0.25);
        let r = record(0, p.initial(0));
        assert_eq!(r.expires_at, 100_000);
        assert_eq!(p.renewal(&r, 24_999, false), None);
        assert_eq!(p.renewal(&r, 25_000, false), Some(125_000));
        assert_eq!(
            p.renewal(&r, 1, true),
            Some(100_001),
            "a write carries renewal"
        );
    }

    #[test]
    fn absolute_lifetime_caps_everything() {
        let p = ExpiryPolicy::new(
            Duration::from_secs(100),
            Some(Duration::from_secs(150)),
            0.0,
        );
        assert_eq!(p.initial(0), 100_000);
        let r = record(0, 100_000);
        assert_eq!(p.renewal(&r, 90_000, false), Some(150_000));
        let r = record(0, 150_000);
        assert_eq!(p.renewal(&r, 140_000, true), None);
        assert_eq!(p.requested(0, 1_000_000), 150_000);
    }

    #[test]
    fn never_moves_a_longer_deadline_back() {
        let p = ExpiryPolicy::new(Duration::from_secs(100), None, 0.25);
        let r = record(0, 10_000_000);
        assert_eq!(p.renewal(&r, 50_000, true), None);
    }

    #[test]
    fn odd_shares_are_clamped() {
        assert_eq!(
            ExpiryPolicy::new(Duration::from_secs(1), None, f64::NAN).renew_step_ms,
            250
        );
        assert_eq!(
            ExpiryPolicy::new(Duration::from_secs(1), None, 7.0).renew_step_ms,
            1_000
        );
    }
}
