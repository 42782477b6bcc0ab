//! The proxy's notion of "now". Every time-dependent rule (clock skew, staleness, rate limits,
//! answer freshness) reads this clock instead of the system's, so tests can move time by hand
//! instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall-clock time in milliseconds since the Unix epoch: the system's, or a manual one that
/// only moves when told. Cheap to clone; clones share the same time.
#[derive(Debug, Clone)]
pub struct Clock {
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self { manual: None }
    }

    /// A clock standing at `unix_secs` until [`Clock::advance`] moves it.
    pub fn manual(unix_secs: u64) -> Self {
        Self {
            manual: Some(Arc::new(AtomicU64::new(unix_secs.saturating_mul(1000)))),
        }
    }

    /// Moves a manual clock forward by `by`; the system clock cannot be moved, so this does
    /// nothing to it.
    pub fn advance(&self, by: Duration) {
        if let Some(millis) = &self.manual {
            let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
            millis.fetch_add(by, Ordering::SeqCst);
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_millis(&self) -> u64 {
        match &self.manual {
            Some(millis) => millis.load(Ordering::SeqCst),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    /// Seconds since the Unix epoch, the unit of signed timestamps.
    pub fn now_secs(&self) -> u64 {
        self.now_millis() / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let clock = Clock::manual(1_000);
        let clone = clock.clone();
        assert_eq!(clock.now_secs(), 1_000);
        clock.advance(Duration::from_millis(1_500));
        assert_eq!(clone.now_millis(), 1_001_500);
        assert_eq!(clone.now_secs(), 1_001);
    }

    #[test]
    fn system_clock_is_near_the_system_time() {
        let clock = Clock::system();
        let before = clock.now_secs();
        clock.advance(Duration::from_secs(3600));
        assert!(
            clock.now_secs() - before < 5,
            "system clock must not move by advance"
        );
        assert!(before > 1_700_000_000);
    }
}
