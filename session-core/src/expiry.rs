//! When a session expires: idle timeout (sliding), absolute lifetime, and
//! [`Expiry`], tower-sessions' way of saying the same.
//!
//! `expires_at = min(now + idle, created_at + absolute, fixed deadline)`. Sliding renewal is
//! not a write per request: a renewal is written only once a configured share
//! of the idle timeout has passed since the last one. The time of the last
//! renewal need not be stored: it is `expires_at - idle`.

use std::time::Duration;

use crate::clock::UnixMillis;
use crate::record::SessionRecord;

/// When sessions (or one session) end, in tower-sessions' terms: for
/// [`SessionLayer::with_expiry`](crate::SessionLayer::with_expiry) and
/// [`Session::set_expiry`](crate::Session::set_expiry).
///
/// ```
/// use session_core::Expiry;
/// use time::{Duration, OffsetDateTime};
///
/// let browser_session = Expiry::OnSessionEnd;
/// let idle = Expiry::OnInactivity(Duration::hours(1));
/// let fixed = Expiry::AtDateTime(OffsetDateTime::now_utc() + Duration::days(1));
/// # let _ = (browser_session, idle, fixed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// The cookie has no `Max-Age`: the browser drops it when it closes. The
    /// store still ends the session after the idle timeout, so a browser
    /// that is never closed (or restores its tabs) does not keep a session
    /// alive forever.
    OnSessionEnd,
    /// The session ends after this long without a request (sliding).
    OnInactivity(time::Duration),
    /// The session ends at this instant at the latest.
    AtDateTime(time::OffsetDateTime),
}

/// `t` as Unix milliseconds (0 before 1970).
pub(crate) fn unix_millis(t: time::OffsetDateTime) -> UnixMillis {
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// Unix milliseconds as a `time` instant.
pub(crate) fn date_time(ms: UnixMillis) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// A `time` duration as `std` (negative: zero).
pub(crate) fn std_duration(d: time::Duration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

/// The layer's expiry settings, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExpiryPolicy {
    /// A session not renewed for this long expires.
    pub(crate) idle_ms: u64,
    /// A session never outlives `created_at` plus this, renewed or not.
    pub(crate) absolute_ms: Option<u64>,
    /// A renewal is written only when it moves the deadline by at least this.
    pub(crate) renew_step_ms: u64,
    /// Every session ends at this instant at the latest
    /// ([`Expiry::AtDateTime`] on the layer).
    pub(crate) deadline: Option<UnixMillis>,
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
            deadline: None,
        }
    }

    /// The same policy with every session ending at `deadline` at the latest.
    pub(crate) fn with_deadline(self, deadline: Option<UnixMillis>) -> Self {
        Self { deadline, ..self }
    }

    /// The latest deadline allowed for a session created at `created_at`.
    fn cap(&self, created_at: UnixMillis) -> UnixMillis {
        let absolute = self
            .absolute_ms
            .map_or(UnixMillis::MAX, |abs| created_at.saturating_add(abs));
        absolute.min(self.deadline.unwrap_or(UnixMillis::MAX))
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
    fn a_fixed_deadline_caps_like_an_absolute_lifetime() {
        let p = ExpiryPolicy::new(Duration::from_secs(100), None, 0.0).with_deadline(Some(50_000));
        assert_eq!(p.initial(0), 50_000);
        assert_eq!(p.renewal(&record(0, 50_000), 40_000, true), None);
        assert_eq!(p.requested(0, 1_000_000), 50_000);
        let t = date_time(1_700_000_000_123);
        assert_eq!(unix_millis(t), 1_700_000_000_123);
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
