//! Passive outlier detection on relayed traffic: a server that fails several requests in a
//! row, or too large a share of them within a window, is **ejected** (taken out of rotation)
//! for a while, longer on each repeat. Ejection is not a punishment: only failures that say
//! nothing about a wallet's request count (no connection, a timeout, a 5xx), never a 4xx.
//!
//! The pool caps how many of a coin's servers may be ejected at once, so a burst of failures
//! (the wallet side's network, a request that makes every server fail) cannot empty the
//! rotation. Times come from the proxy's clock.

use std::time::Duration;

/// The ejection rules, from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlierRules {
    /// Failures in a row that eject.
    pub consecutive_failures: u32,
    /// Share of failed requests (percent) within a window that ejects…
    pub failure_percent: u32,
    /// …once the window holds at least this many requests.
    pub min_requests: u32,
    /// Length of the failure-rate window.
    pub window: Duration,
    /// Length of a first ejection; each repeat doubles it.
    pub base_ejection: Duration,
    /// Longest ejection.
    pub max_ejection: Duration,
    /// Largest share (percent) of a coin's servers ejected at once.
    pub max_ejected_percent: u32,
}

impl OutlierRules {
    /// Whether one more of `total` servers may be ejected while `ejected` already are.
    pub fn may_eject(&self, ejected: usize, total: usize) -> bool {
        (ejected + 1) * 100 <= self.max_ejected_percent as usize * total
    }
}

/// What one server's relayed requests looked like recently.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outlier {
    consecutive: u32,
    window_start_ms: u64,
    requests: u32,
    failures: u32,
    /// Ejections so far (forgotten after a long good spell).
    ejections: u32,
    /// When the last ejection ends (unix milliseconds).
    ejected_until_ms: u64,
}

/// Why a server was ejected, for the incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trip {
    /// Failures in a row when it tripped.
    pub consecutive: u32,
    /// Requests and failures in the window.
    pub window: (u32, u32),
}

impl Outlier {
    /// Counts one request's outcome at `now_ms`; returns why the server should be ejected, if
    /// it should.
    pub fn record(&mut self, failed: bool, now_ms: u64, rules: &OutlierRules) -> Option<Trip> {
        let window = u64::try_from(rules.window.as_millis()).unwrap_or(u64::MAX);
        if now_ms.saturating_sub(self.window_start_ms) >= window {
            self.window_start_ms = now_ms;
            self.requests = 0;
            self.failures = 0;
        }
        self.requests = self.requests.saturating_add(1);
        if !failed {
            self.consecutive = 0;
            return None;
        }
        self.failures = self.failures.saturating_add(1);
        self.consecutive = self.consecutive.saturating_add(1);
        let in_a_row = self.consecutive >= rules.consecutive_failures;
        let rate = self.requests >= rules.min_requests
            && u64::from(self.failures) * 100
                >= u64::from(rules.failure_percent) * u64::from(self.requests);
        (in_a_row || rate).then_some(Trip {
            consecutive: self.consecutive,
            window: (self.requests, self.failures),
        })
    }

    /// Ejects at `now_ms`: returns for how long (base × 2^repeats, capped). A server that
    /// stayed in rotation for ten base periods since its last ejection starts over.
    pub fn eject(&mut self, now_ms: u64, rules: &OutlierRules) -> Duration {
        let base = u64::try_from(rules.base_ejection.as_millis()).unwrap_or(u64::MAX);
        if now_ms.saturating_sub(self.ejected_until_ms) > base.saturating_mul(10) {
            self.ejections = 0;
        }
        let length = 1u32
            .checked_shl(self.ejections)
            .and_then(|factor| rules.base_ejection.checked_mul(factor))
            .map_or(rules.max_ejection, |d| d.min(rules.max_ejection));
        self.ejections = self.ejections.saturating_add(1);
        self.ejected_until_ms =
            now_ms.saturating_add(u64::try_from(length.as_millis()).unwrap_or(u64::MAX));
        self.consecutive = 0;
        self.requests = 0;
        self.failures = 0;
        self.window_start_ms = now_ms;
        length
    }

    /// When the current (or last) ejection ends.
    pub fn ejected_until_ms(&self) -> u64 {
        self.ejected_until_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;

    fn rules() -> OutlierRules {
        OutlierRules {
            consecutive_failures: 3,
            failure_percent: 50,
            min_requests: 10,
            window: Duration::from_secs(10),
            base_ejection: Duration::from_secs(5),
            max_ejection: Duration::from_secs(30),
            max_ejected_percent: 50,
        }
    }

    #[test]
    fn failures_in_a_row_trip_and_a_success_resets_them() {
        let clock = Clock::manual(1_000);
        let mut outlier = Outlier::default();
        let now = clock.now_millis();
        assert!(outlier.record(true, now, &rules()).is_none());
        assert!(outlier.record(true, now, &rules()).is_none());
        assert!(outlier.record(false, now, &rules()).is_none());
        assert!(outlier.record(true, now, &rules()).is_none());
        assert!(outlier.record(true, now, &rules()).is_none());
        let trip = outlier.record(true, now, &rules()).unwrap();
        assert_eq!(trip.consecutive, 3);
    }

    #[test]
    fn a_high_failure_rate_trips_once_the_window_has_enough_requests() {
        let clock = Clock::manual(1_000);
        let mut outlier = Outlier::default();
        // Alternating failures never make three in a row, but half of ten requests fail.
        let mut tripped = None;
        for i in 0..10 {
            tripped = outlier.record(i % 2 == 1, clock.now_millis(), &rules());
            if i < 9 {
                assert!(tripped.is_none(), "request {i}");
            }
        }
        assert_eq!(tripped.unwrap().window, (10, 5));
        // A new window starts from zero.
        let mut outlier = Outlier::default();
        for i in 0..9 {
            outlier.record(i % 2 == 1, clock.now_millis(), &rules());
        }
        clock.advance(Duration::from_secs(10));
        assert!(outlier.record(true, clock.now_millis(), &rules()).is_none());
    }

    #[test]
    fn ejections_grow_and_are_forgotten_after_a_good_spell() {
        let clock = Clock::manual(1_000);
        let mut outlier = Outlier::default();
        let mut lengths = Vec::new();
        for _ in 0..4 {
            lengths.push(outlier.eject(clock.now_millis(), &rules()).as_secs());
            clock.advance(Duration::from_millis(
                outlier.ejected_until_ms() - clock.now_millis(),
            ));
        }
        assert_eq!(lengths, [5, 10, 20, 30]);
        clock.advance(Duration::from_secs(51));
        assert_eq!(outlier.eject(clock.now_millis(), &rules()).as_secs(), 5);
    }

    #[test]
    fn at_most_the_configured_share_is_ejected() {
        let rules = rules();
        assert!(!rules.may_eject(0, 1), "never the only server");
        assert!(rules.may_eject(0, 2));
        assert!(!rules.may_eject(1, 2));
        assert!(rules.may_eject(1, 4));
        assert!(!rules.may_eject(2, 4));
    }
}
