//! Per-IP limits: each client address has a token bucket (a burst, refilled at a steady
//! rate) of registrations, so one host cannot make the proxy call back thousands of URLs,
//! and another of relayed requests, so one wallet cannot take every server's capacity. IPv6
//! clients are limited per /64, the block one host usually holds. The caps on servers per
//! coin and per address are directory rules (`directory.rs`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, Request};
use axum::http::{Extensions, HeaderMap};
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

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

/// Token buckets per client address.
#[derive(Debug)]
pub struct RateLimiter {
    what: &'static str,
    rate: RegisterRate,
    clock: Clock,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    /// A limiter of `what` (`registrations`, `requests`: named in refusals) allowing `rate`
    /// per client address, timed by `clock`.
    pub fn new(what: &'static str, rate: RegisterRate, clock: Clock) -> Self {
        Self {
            what,
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
        let gained = now_ms
            .saturating_sub(bucket.at_ms)
            .saturating_mul(u64::from(self.rate.per_minute))
            / 60;
        Bucket {
            tokens: (bucket.tokens.saturating_add(gained)).min(self.capacity()),
            at_ms: now_ms,
        }
    }

    /// Spends one token of `ip`, or says when the next one is available.
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
            what: self.what,
            ip,
            retry_after_secs: wait_ms.div_ceil(1000).max(1),
        })
    }
}

/// The client's IP address: the connection's peer, or the last `X-Forwarded-For` entry when
/// the proxy sits behind a reverse proxy that sets it (`trust_forwarded_for`). `None` when
/// unknown (in-process tests), which exempts the request from per-IP limits.
pub fn client_ip(
    extensions: &Extensions,
    headers: &HeaderMap,
    trust_forwarded_for: bool,
) -> Option<IpAddr> {
    if trust_forwarded_for && let Some(forwarded) = last_forwarded_for(headers) {
        return Some(forwarded);
    }
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical())
}

fn last_forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .next_back()?
        .trim()
        .parse()
        .ok()
}

/// The relay's admission limits as one tower layer: a per-IP budget of requests (429 with
/// `Retry-After` beyond it) and a cap on requests in flight (503 beyond it, so an overload
/// sheds requests instead of queueing them). Refusals are answered at once, without touching
/// the service.
#[derive(Debug, Clone)]
pub struct RelayLimitsLayer {
    limits: Arc<RelayLimitsShared>,
}

#[derive(Debug)]
struct RelayLimitsShared {
    per_ip: RateLimiter,
    in_flight: Arc<Semaphore>,
    trust_forwarded_for: bool,
}

impl RelayLimitsLayer {
    /// Limits of `per_ip` requests and `max_in_flight` at once.
    pub fn new(per_ip: RateLimiter, max_in_flight: usize, trust_forwarded_for: bool) -> Self {
        Self {
            limits: Arc::new(RelayLimitsShared {
                per_ip,
                in_flight: Arc::new(Semaphore::new(max_in_flight)),
                trust_forwarded_for,
            }),
        }
    }
}

impl<S> Layer<S> for RelayLimitsLayer {
    type Service = RelayLimits<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RelayLimits {
            inner,
            limits: Arc::clone(&self.limits),
        }
    }
}

/// The service of [`RelayLimitsLayer`].
#[derive(Debug, Clone)]
pub struct RelayLimits<S> {
    inner: S,
    limits: Arc<RelayLimitsShared>,
}

impl<S> Service<Request> for RelayLimits<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Limited<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let limits = &self.limits;
        let ip = client_ip(
            request.extensions(),
            request.headers(),
            limits.trust_forwarded_for,
        );
        if let Some(ip) = ip
            && let Err(refusal) = limits.per_ip.take(ip)
        {
            return Limited::Refused(Some(refusal.into_response()));
        }
        match Arc::clone(&limits.in_flight).try_acquire_owned() {
            Ok(permit) => Limited::Running {
                future: self.inner.call(request),
                _permit: permit,
            },
            Err(_) => Limited::Refused(Some(Error::Overloaded.into_response())),
        }
    }
}

/// The answer of [`RelayLimits`]: a refusal, or the service's answer while holding a place
/// among the requests in flight.
#[derive(Debug)]
pub enum Limited<F> {
    /// Refused at once.
    Refused(Option<Response>),
    /// Passed on.
    Running {
        /// The service's answer.
        future: F,
        /// The place among the requests in flight, held until answered.
        _permit: OwnedSemaphorePermit,
    },
}

impl<F> Future for Limited<F>
where
    F: Future<Output = Result<Response, Infallible>> + Unpin,
{
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut *self {
            Self::Refused(refusal) => Poll::Ready(Ok(refusal
                .take()
                .unwrap_or_else(|| Error::Overloaded.into_response()))),
            Self::Running { future, .. } => Pin::new(future).poll(cx),
        }
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
    use axum::http::HeaderValue;
    use std::time::Duration;

    #[test]
    fn burst_then_steady_rate_per_address() {
        let clock = Clock::manual(1_000);
        let limiter = RateLimiter::new(
            "registrations",
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
    fn forwarded_for_counts_only_when_trusted_and_takes_the_last_hop() {
        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, 2.2.2.2"),
        );
        headers.append("x-forwarded-for", HeaderValue::from_static("3.3.3.3"));
        let mut extensions = Extensions::new();
        extensions.insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 7], 5000))));
        assert_eq!(
            client_ip(&extensions, &headers, true),
            Some(IpAddr::from([3, 3, 3, 3]))
        );
        assert_eq!(
            client_ip(&extensions, &headers, false),
            Some(IpAddr::from([10, 0, 0, 7]))
        );
        assert_eq!(client_ip(&Extensions::new(), &HeaderMap::new(), true), None);
    }

    #[test]
    fn ipv6_is_limited_per_64() {
        let clock = Clock::manual(1_000);
        let limiter = RateLimiter::new(
            "registrations",
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
