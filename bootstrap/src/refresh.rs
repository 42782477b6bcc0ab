//! When a client fetches the list again. Every client picks a random moment in a window instead
//! of a fixed period, so thousands of wallets started together never hit the mirrors together,
//! and a list is always refreshed well before it expires.

use serde::{Deserialize, Serialize};

/// The refresh schedule of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshPolicy {
    /// Mean time between refreshes while the client holds a current list; each wait is drawn
    /// uniformly from half to one and a half times this.
    pub interval_secs: u64,
    /// Mean time between attempts while the client holds no current list, jittered likewise.
    pub retry_secs: u64,
    /// No wait is shorter than this, so a list about to expire cannot cause a busy loop.
    pub min_delay_secs: u64,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            interval_secs: 6 * 3600,
            retry_secs: 300,
            min_delay_secs: 10,
        }
    }
}

impl RefreshPolicy {
    /// The unix time of the next refresh, for a client whose current list expires at
    /// `expires_at` (`None`: no current list). `rng` yields uniformly random `u64`s
    /// ([`random_u64`] in production; fixed values in tests).
    ///
    /// With a current list the wait is drawn from `[interval/2, 3·interval/2]`, but never
    /// beyond half the list's remaining lifetime (then drawn from its second quarter), so
    /// several attempts fit before expiry. Without one it is drawn from `[retry/2, 3·retry/2]`.
    pub fn next_refresh(
        &self,
        now: u64,
        expires_at: Option<u64>,
        rng: &mut impl FnMut() -> u64,
    ) -> u64 {
        let remaining = expires_at
            .and_then(|expiry| expiry.checked_sub(now))
            .filter(|&r| r > 0);
        let delay = match remaining {
            Some(remaining) => {
                let delay = jitter(self.interval_secs, rng());
                let half_life = remaining / 2;
                if delay > half_life {
                    uniform(half_life / 2, half_life, rng())
                } else {
                    delay
                }
            }
            None => jitter(self.retry_secs, rng()),
        };
        now.saturating_add(delay.max(self.min_delay_secs))
    }
}

/// A value in `[base/2, base + base/2]` picked by `random`.
fn jitter(base: u64, random: u64) -> u64 {
    uniform(base / 2, base.saturating_add(base / 2), random)
}

/// A value in `[low, high]` picked by `random` (modulo bias is irrelevant at these sizes).
fn uniform(low: u64, high: u64, random: u64) -> u64 {
    match (high - low).checked_add(1) {
        Some(span) => low + random % span,
        None => random,
    }
}

/// A random `u64` from the operating system, for [`RefreshPolicy::next_refresh`]. Falls back
/// to the clock's nanoseconds if the system has no random source (jitter is not a secret).
pub fn random_u64() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| u64::from(elapsed.subsec_nanos()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;
    const DAY: u64 = 86_400;

    fn policy() -> RefreshPolicy {
        RefreshPolicy::default()
    }

    /// Draws with the extremes and a spread of values in between.
    fn draws() -> Vec<u64> {
        let mut values = vec![0, 1, u64::MAX, u64::MAX - 1];
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(x);
        }
        values
    }

    #[test]
    fn with_a_current_list_waits_half_to_one_and_a_half_intervals() {
        let interval = policy().interval_secs;
        let (mut lowest, mut highest) = (u64::MAX, 0);
        for value in draws() {
            let at = policy().next_refresh(NOW, Some(NOW + 30 * DAY), &mut || value);
            let delay = at - NOW;
            assert!(
                (interval / 2..=interval * 3 / 2).contains(&delay),
                "{delay}"
            );
            lowest = lowest.min(delay);
            highest = highest.max(delay);
        }
        // The draws really spread over the window (no fixed period).
        assert!(lowest < interval * 3 / 4 && highest > interval * 5 / 4);
    }

    #[test]
    fn refreshes_well_before_expiry() {
        let remaining = 2 * 3600;
        for value in draws() {
            let at = policy().next_refresh(NOW, Some(NOW + remaining), &mut || value);
            let delay = at - NOW;
            assert!((remaining / 4..=remaining / 2).contains(&delay), "{delay}");
        }
    }

    #[test]
    fn without_a_list_retries_soon_with_jitter() {
        let retry = policy().retry_secs;
        for expires_at in [None, Some(NOW), Some(NOW - 1)] {
            for value in draws() {
                let delay = policy().next_refresh(NOW, expires_at, &mut || value) - NOW;
                assert!((retry / 2..=retry * 3 / 2).contains(&delay), "{delay}");
            }
        }
    }

    #[test]
    fn never_waits_less_than_the_minimum() {
        for value in draws() {
            let at = policy().next_refresh(NOW, Some(NOW + 3), &mut || value);
            assert_eq!(at, NOW + policy().min_delay_secs);
        }
    }

    #[test]
    fn os_randomness_varies() {
        let values: std::collections::BTreeSet<u64> = (0..8).map(|_| random_u64()).collect();
        assert!(values.len() > 1);
    }
}
