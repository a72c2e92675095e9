//! Backoff after failures: the rule behind every "too many attempts" answer (failed logins per
//! email in the identity store, per client address at the gateway). Instead of locking a key out
//! for a fixed window after N failures (which lets anyone lock the real owner out for the whole
//! window), the first `free` failures cost nothing and each further one doubles the wait before
//! the next attempt, up to a ceiling. Failures older than the window are forgotten.
//!
//! Pure: the caller keeps the failures and passes the time in.

use std::time::Duration;

use domain::Timestamp;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Failures allowed before any wait (0: no limit at all).
    pub free: u32,
    /// The wait after the first failure past `free`; doubles with each further one.
    pub base: Duration,
    pub max: Duration,
    /// Failures older than this are forgotten.
    pub window: Duration,
}

impl Backoff {
    /// Where a key's failures older than the window start being forgotten.
    pub fn window_start(&self, now: Timestamp) -> Timestamp {
        now.plus_millis(-millis(self.window))
    }

    /// The first instant a new attempt is allowed, given the key's failures (any order) — or
    /// `None` if it is allowed now. Failures outside the window are ignored.
    pub fn blocked_until(&self, failures: &[Timestamp], now: Timestamp) -> Option<Timestamp> {
        if self.free == 0 {
            return None;
        }
        let start = self.window_start(now);
        let recent = failures.iter().filter(|at| **at > start);
        let count = recent.clone().count();
        let free = usize::try_from(self.free).unwrap_or(usize::MAX);
        if count < free {
            return None;
        }
        let last = recent.max().copied()?;
        let doublings = u32::try_from(count - free).unwrap_or(u32::MAX).min(32);
        let wait = self
            .base
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.max);
        let until = last.plus_millis(millis(wait));
        (until > now).then_some(until)
    }

    /// Whole seconds (at least 1) from `now` to `until`: a `Retry-After`.
    pub fn retry_after_s(until: Timestamp, now: Timestamp) -> u64 {
        until.millis_since(now).div_ceil(1000).max(1)
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Backoff {
        Backoff {
            free: 3,
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
            window: Duration::from_secs(900),
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_millis(1_000_000 + s * 1000)
    }

    #[test]
    fn the_free_failures_cost_nothing_then_each_one_doubles_the_wait() {
        let p = policy();
        assert_eq!(p.blocked_until(&[at(0), at(1)], at(2)), None);
        // Three failures: the next attempt waits 1 s after the last one.
        assert_eq!(p.blocked_until(&[at(0), at(1), at(2)], at(2)), Some(at(3)));
        assert_eq!(p.blocked_until(&[at(0), at(1), at(2)], at(3)), None);
        // Four: 2 s; five: 4 s.
        assert_eq!(
            p.blocked_until(&[at(0), at(1), at(2), at(10)], at(10)),
            Some(at(12))
        );
        assert_eq!(
            p.blocked_until(&[at(10), at(0), at(1), at(2), at(20)], at(21)),
            Some(at(24)),
            "any order"
        );
    }

    #[test]
    fn the_wait_has_a_ceiling_and_old_failures_are_forgotten() {
        let p = policy();
        let many: Vec<Timestamp> = (0..200).map(at).collect();
        assert_eq!(p.blocked_until(&many, at(199)), Some(at(259)), "max 60 s");
        // The same failures 15 minutes later no longer count.
        assert_eq!(p.blocked_until(&many, at(199 + 900)), None);
        let off = Backoff { free: 0, ..p };
        assert_eq!(off.blocked_until(&many, at(199)), None, "0: no limit");
    }

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        let now = Timestamp::from_millis(10_000);
        assert_eq!(
            Backoff::retry_after_s(Timestamp::from_millis(11_001), now),
            2
        );
        assert_eq!(
            Backoff::retry_after_s(Timestamp::from_millis(10_000), now),
            1
        );
    }
}
