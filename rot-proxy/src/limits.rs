//! Per-IP limits on registration: each client address has a token bucket of registrations
//! (a burst, refilled at a steady rate), so one host cannot make the proxy call back
//! thousands of URLs. IPv6 clients are limited per /64, the block one host usually holds.
//! The caps on servers per coin and per address are directory rules (`directory.rs`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};

use crate::Error;
use crate::clock::Clock;
use crate::config::RegisterRate;

/// Client addresses tracked at most; beyond this, buckets that have refilled are dropped.
const MAX_TRACKED: usize = 100_000;
/// A token in thousandths, so refills need no floating point.
const TOKEN: u64 = 1000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Thousandths of a registration available.
    tokens: u64,
    /// When `tokens` was computed (clock milliseconds).
    at_ms: u64,
}

/// Token buckets of registrations per client address.
#[derive(Debug)]
pub struct RateLimiter {
    rate: RegisterRate,
    clock: Clock,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    /// A limiter allowing `rate` per client address, timed by `clock`.
    pub fn new(rate: RegisterRate, clock: Clock) -> Self {
        Self {
            rate,
            clock,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn capacity(&self) -> u64 {
        u64::from(self.rate.burst) * TOKEN
    }

    /// `bucket` refilled up to `now_ms`.
    fn refilled(&self, bucket: Bucket, now_ms: u64) -> Bucket {
        let gained = now_ms.saturating_sub(bucket.at_ms) * u64::from(self.rate.per_minute) / 60;
        Bucket {
            tokens: (bucket.tokens.saturating_add(gained)).min(self.capacity()),
            at_ms: now_ms,
        }
    }

    /// Spends one registration of `ip`, or says when the next one is available.
    pub fn take(&self, ip: IpAddr) -> Result<(), Error> {
        let now_ms = self.clock.now_millis();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED {
            let capacity = self.capacity();
            buckets.retain(|_, b| self.refilled(*b, now_ms).tokens < capacity);
        }
        let full = Bucket {
            tokens: self.capacity(),
            at_ms: now_ms,
        };
        let bucket = buckets.entry(limit_key(ip)).or_insert(full);
        *bucket = self.refilled(*bucket, now_ms);
        if bucket.tokens >= TOKEN {
            bucket.tokens -= TOKEN;
            return Ok(());
        }
        let wait_ms = (TOKEN - bucket.tokens) * 60 / u64::from(self.rate.per_minute);
        Err(Error::RateLimited {
            ip,
            retry_after_secs: wait_ms.div_ceil(1000).max(1),
        })
    }
}

/// The address a client is limited by: IPv4 as is, IPv6 by its /64.
fn limit_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_steady_rate_per_address() {
        let clock = Clock::manual(1_000);
        let limiter = RateLimiter::new(
            RegisterRate {
                burst: 2,
                per_minute: 1,
            },
            clock.clone(),
        );
        let a = IpAddr::from([10, 0, 0, 1]);
        limiter.take(a).unwrap();
        limiter.take(a).unwrap();
        match limiter.take(a) {
            Err(Error::RateLimited {
                retry_after_secs, ..
            }) => assert_eq!(retry_after_secs, 60),
            other => panic!("expected rate limit, got {other:?}"),
        }
        // Another address has its own bucket.
        limiter.take(IpAddr::from([10, 0, 0, 2])).unwrap();
        clock.advance(Duration::from_secs(30));
        match limiter.take(a) {
            Err(Error::RateLimited {
                retry_after_secs, ..
            }) => assert_eq!(retry_after_secs, 30),
            other => panic!("expected rate limit, got {other:?}"),
        }
        clock.advance(Duration::from_secs(30));
        limiter.take(a).unwrap();
        assert!(limiter.take(a).is_err());
    }

    #[test]
    fn ipv6_is_limited_per_64() {
        let clock = Clock::manual(1_000);
        let limiter = RateLimiter::new(
            RegisterRate {
                burst: 1,
                per_minute: 1,
            },
            clock,
        );
        limiter.take("2001:db8::1".parse().unwrap()).unwrap();
        assert!(limiter.take("2001:db8::ffff:2".parse().unwrap()).is_err());
        limiter.take("2001:db8:0:1::1".parse().unwrap()).unwrap();
        // An IPv4-mapped address is its IPv4 address.
        limiter.take("::ffff:10.0.0.9".parse().unwrap()).unwrap();
        assert!(limiter.take(IpAddr::from([10, 0, 0, 9])).is_err());
    }
}
