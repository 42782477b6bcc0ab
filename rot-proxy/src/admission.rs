//! The proxy side of registration: what happens to a heartbeat, and the admission that lists a
//! new server (or a known server at a new URL).
//!
//! Admission runs **inline**, inside the heartbeat request that needs it: the proxy calls the
//! heartbeat's URL back (`GET /rot/v1/challenge?nonce=…`, then `GET /rot/v1/info`), and
//! answers the heartbeat only when it knows the outcome: `200 admitted`, or a 4xx saying
//! exactly what failed. So the server operator learns at once why a registration failed, and
//! nothing is stored for a server that did not prove its URL. The cost is a slower first
//! heartbeat, bounded by the admission timeout (well inside rot-server's 10 s request
//! timeout) and by a cap on admissions running at once; while one runs, the key shows as
//! `pending` in the operator view and its other heartbeats are told to retry.
//!
//! The challenge proves that the server reachable at the URL holds the heartbeat's key, so
//! nobody can register somebody else's address; the signed info proves it serves the same
//! coin. Redirects are not followed: the URL itself must answer.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rot_proto::message::{
    ChallengeAnswer, ChallengeRequest, Heartbeat, HeartbeatAck, ServerInfo, check_clock_skew,
};
use rot_proto::signed::{Signed, SignedBody};
use rot_proto::{Hash256, PublicKey};
use tokio::sync::Semaphore;

use crate::Error;
use crate::clock::Clock;
use crate::coin::CoinProfile;
use crate::directory::{Accepted, Directory};
use crate::limits::RateLimiter;
use crate::stats::Stats;

/// Largest callback answer read; a signed info is a few KiB.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What an admission measured about a server that passed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// The IP address the callback reached (what the per-address cap counts).
    pub addr: IpAddr,
    /// Round-trip time of the challenge in milliseconds (the first latency sample).
    pub latency_ms: u64,
}

/// Calls servers back to prove their URL.
#[derive(Debug, Clone)]
pub struct Admitter {
    http: reqwest::Client,
    timeout: Duration,
    max_skew_secs: u64,
    clock: Clock,
}

impl Admitter {
    /// An admitter whose whole callback sequence must finish within `timeout`, accepting
    /// signed times within `max_skew_secs` of `clock`.
    pub fn new(timeout: Duration, max_skew_secs: u64, clock: Clock) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(10))
            .user_agent(concat!("rot-proxy/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            timeout,
            max_skew_secs,
            clock,
        })
    }

    /// Proves that the server at `url` holds `key` and serves `coin`.
    pub async fn admit(
        &self,
        key: &PublicKey,
        url: &str,
        coin: &CoinProfile,
    ) -> Result<Admitted, Error> {
        tokio::time::timeout(self.timeout, self.callbacks(key, url, coin))
            .await
            .map_err(|_| failed(url, format!("no answer within {:?}", self.timeout)))?
    }

    async fn callbacks(
        &self,
        key: &PublicKey,
        url: &str,
        coin: &CoinProfile,
    ) -> Result<Admitted, Error> {
        let request = ChallengeRequest::random()?;
        let started = Instant::now();
        let (signed, addr) = self
            .get_signed::<ChallengeAnswer>(
                url,
                &format!("/rot/v1/challenge?nonce={}", request.nonce),
            )
            .await?;
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let answer = self.verify_from(key, url, &signed, "challenge answer")?;
        answer
            .check(&request.nonce, self.clock.now_secs(), self.max_skew_secs)
            .map_err(|e| failed(url, format!("challenge answer: {e}")))?;

        let (signed, _) = self.get_signed::<ServerInfo>(url, "/rot/v1/info").await?;
        let info = self.verify_from(key, url, &signed, "server info")?;
        let mismatch = |reason: String| Error::InfoMismatch {
            url: url.to_owned(),
            reason,
        };
        if !info.coin.eq_ignore_ascii_case(&coin.ticker) || info.network != coin.network {
            return Err(mismatch(format!(
                "it serves {} {}, the heartbeat {} {}",
                info.coin, info.network, coin.ticker, coin.network
            )));
        }
        if info.genesis_hash != coin.genesis_hash {
            return Err(mismatch(format!(
                "genesis hash {} is not {}",
                info.genesis_hash, coin.genesis_hash
            )));
        }
        check_clock_skew(info.time, self.clock.now_secs(), self.max_skew_secs)
            .map_err(|e| mismatch(format!("info time: {e}")))?;
        Ok(Admitted { addr, latency_ms })
    }

    /// Verifies a callback answer and that `key` signed it.
    fn verify_from<T: SignedBody>(
        &self,
        key: &PublicKey,
        url: &str,
        signed: &Signed<T>,
        what: &str,
    ) -> Result<T, Error> {
        let body = signed
            .verify()
            .map_err(|e| failed(url, format!("{what} does not verify: {e}")))?;
        let signer = signed.signer()?;
        if signer != *key {
            return Err(Error::KeyMismatch {
                url: url.to_owned(),
                expected: *key,
                found: signer,
            });
        }
        Ok(body)
    }

    /// GETs `base` + `path` and decodes a signed answer, reading at most
    /// [`MAX_ANSWER_BYTES`]; returns it with the peer address.
    async fn get_signed<T: SignedBody>(
        &self,
        base: &str,
        path: &str,
    ) -> Result<(Signed<T>, IpAddr), Error> {
        let mut response = self
            .http
            .get(format!("{base}{path}"))
            .send()
            .await
            .map_err(|e| failed(base, format!("{path}: {}", rot_proto::error_chain(&e))))?;
        let addr = response
            .remote_addr()
            .map(|a| a.ip().to_canonical())
            .ok_or_else(|| failed(base, "no peer address".to_owned()))?;
        if !response.status().is_success() {
            return Err(failed(
                base,
                format!("{path} answered HTTP {}", response.status()),
            ));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| failed(base, format!("{path}: {}", rot_proto::error_chain(&e))))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(failed(
                    base,
                    format!("{path} answer exceeds {MAX_ANSWER_BYTES} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let signed = serde_json::from_slice(&body)
            .map_err(|e| failed(base, format!("{path} answer is not a signed message: {e}")))?;
        Ok((signed, addr))
    }
}

fn failed(url: &str, reason: String) -> Error {
    Error::CallbackFailed {
        url: url.to_owned(),
        reason,
    }
}

/// An accepted heartbeat: the ack for the server, and what it said.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The answer to the server.
    pub ack: HeartbeatAck,
    /// The server's key.
    pub key: PublicKey,
    /// The coin id it serves.
    pub coin: String,
    /// The heartbeat's tip height.
    pub height: u64,
    /// The heartbeat's tip hash.
    pub tip_hash: Hash256,
}

/// Takes heartbeats: checks, the directory's rules, and admission when needed.
#[derive(Debug)]
pub struct Registrar {
    directory: Arc<Directory>,
    admitter: Admitter,
    limiter: RateLimiter,
    slots: Semaphore,
    stats: Arc<Stats>,
}

impl Registrar {
    /// A registrar over `directory`, running at most `max_admissions` admissions at once.
    pub fn new(
        directory: Arc<Directory>,
        admitter: Admitter,
        limiter: RateLimiter,
        max_admissions: usize,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            directory,
            admitter,
            limiter,
            slots: Semaphore::new(max_admissions),
            stats,
        }
    }

    /// Handles one signed heartbeat from `client_ip` (when known), admitting the server first
    /// if it is new or moved. Registrations count against the client IP's rate limit.
    pub async fn heartbeat(
        &self,
        signed: &Signed<Heartbeat>,
        client_ip: Option<IpAddr>,
    ) -> Result<Registered, Error> {
        let checked = self.directory.check(signed)?;
        let registered = |ack: HeartbeatAck| Registered {
            ack,
            key: checked.key,
            coin: checked.coin.clone(),
            height: checked.beat.height,
            tip_hash: checked.beat.tip_hash,
        };
        let ticket = match self.directory.accept(&checked)? {
            Accepted::Ack(ack) => {
                self.stats.count_accepted();
                return Ok(registered(ack));
            }
            Accepted::NeedsAdmission(ticket) => ticket,
        };
        if let Some(ip) = client_ip {
            self.limiter.take(ip)?;
        }
        let _slot = self.slots.try_acquire().map_err(|_| Error::AdmissionBusy)?;
        let profile = self
            .directory
            .coin(&checked.coin)
            .ok_or_else(|| Error::Corrupt(format!("checked coin {} vanished", checked.coin)))?;
        tracing::debug!(server_key = %checked.key, url = %checked.url, "admission started");
        let admitted = self
            .admitter
            .admit(&checked.key, &checked.url, profile)
            .await
            .inspect_err(|e| tracing::info!(server_key = %checked.key, url = %checked.url, error = %e, "admission refused"))?;
        let ack = self.directory.admit(ticket, &checked, &admitted)?;
        self.stats.count_accepted();
        self.stats.count_admitted();
        Ok(registered(ack))
    }
}
