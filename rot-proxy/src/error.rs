//! The one error type of rot-proxy, and the single place where errors become HTTP responses
//! with the shared rot-proto error body. Every refusal carries a short `reason` label that
//! the operator view counts, so an operator sees *why* heartbeats are refused.

use std::net::IpAddr;

use axum::Json;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rot_proto::message::{ErrorBody, ErrorCode};
use rot_proto::{Hash256, Network, PublicKey};

/// Everything that can go wrong inside rot-proxy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A signed message failed protocol checks (signature, tag, version, replay, skew...).
    #[error(transparent)]
    Proto(#[from] rot_proto::Error),

    // --- requests ---
    /// The request is malformed (bad JSON, bad path parameter, bad URL).
    #[error("{0}")]
    BadRequest(String),
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not for this method.
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    /// The request body is over the limit.
    #[error("request body too large (limit {limit} bytes)")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The request took longer than the configured timeout.
    #[error("request timed out")]
    Timeout,

    // --- heartbeat checks ---
    /// The heartbeat names a coin this proxy does not serve.
    #[error("coin {coin} {network} is not served here (served: {served})")]
    CoinNotServed {
        /// The ticker the heartbeat names.
        coin: String,
        /// The network it names.
        network: Network,
        /// The ids of the coins served.
        served: String,
    },
    /// The heartbeat's genesis hash is not the coin's.
    #[error("genesis hash {got} is not {coin}'s ({expected})")]
    GenesisMismatch {
        /// The coin's id.
        coin: String,
        /// The coin profile's genesis hash.
        expected: Hash256,
        /// The hash the heartbeat carries.
        got: Hash256,
    },
    /// A known key heartbeats for another coin than the one it registered for.
    #[error("key {key} is registered for coin {registered}, not {coin}")]
    CoinChanged {
        /// The server key.
        key: PublicKey,
        /// The coin it registered for.
        registered: String,
        /// The coin it now names.
        coin: String,
    },
    /// The operator banned the key.
    #[error("server key {key} is banned: {reason}")]
    Banned {
        /// The banned key.
        key: PublicKey,
        /// The operator's reason.
        reason: String,
    },
    /// The heartbeat's URL is not an acceptable callback URL.
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as sent.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Another key already holds the URL.
    #[error("URL {url} is registered to another server key ({holder})")]
    UrlTaken {
        /// The URL.
        url: String,
        /// The key holding it.
        holder: PublicKey,
    },

    // --- admission ---
    /// The key's admission is already running.
    #[error("admission of key {0} is already in progress; retry shortly")]
    AdmissionInProgress(PublicKey),
    /// All admission slots are busy.
    #[error("too many admissions running; retry shortly")]
    AdmissionBusy,
    /// The callback to the server's URL failed (unreachable, HTTP error, unreadable answer).
    #[error("callback to {url} failed: {reason}")]
    CallbackFailed {
        /// The URL called.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The server at the URL answers with another key than the heartbeat's.
    #[error("the server at {url} answers for key {found}, not {expected}")]
    KeyMismatch {
        /// The URL called.
        url: String,
        /// The heartbeat's key.
        expected: PublicKey,
        /// The key that signed the answer.
        found: PublicKey,
    },
    /// The server's signed info contradicts its heartbeat (coin, network, genesis).
    #[error("server info at {url} does not match the heartbeat: {reason}")]
    InfoMismatch {
        /// The URL called.
        url: String,
        /// What differs.
        reason: String,
    },

    // --- limits ---
    /// The client IP sent too many requests of a kind.
    #[error("too many {what} from {ip}; retry in {retry_after_secs}s")]
    RateLimited {
        /// What was limited (`registrations`, `requests`).
        what: &'static str,
        /// The client IP.
        ip: IpAddr,
        /// When a registration is allowed again.
        retry_after_secs: u64,
    },
    /// The coin's directory is full.
    #[error("coin {coin} already has {cap} servers, the most this proxy lists")]
    CoinFull {
        /// The coin id.
        coin: String,
        /// The cap.
        cap: usize,
    },
    /// Too many servers of the coin at one network address.
    #[error("{addr} already hosts {cap} servers of {coin}, the most this proxy lists per address")]
    AddressFull {
        /// The coin id.
        coin: String,
        /// The address the callback reached.
        addr: IpAddr,
        /// The cap.
        cap: usize,
    },

    /// More relayed requests are in flight than the proxy takes at once.
    #[error("the proxy is overloaded; retry shortly")]
    Overloaded,

    // --- relay ---
    /// No server can take the request now (none healthy, no agreed tip, none offering it).
    #[error("no server of {coin} can answer now: {reason}")]
    NoServer {
        /// The coin id.
        coin: String,
        /// Why.
        reason: String,
        /// When to try again.
        retry_after_secs: u64,
    },
    /// The pinned server is listed but cannot take requests now.
    #[error("server {key} cannot answer now: {reason}")]
    ServerUnavailable {
        /// The pinned key.
        key: PublicKey,
        /// Why.
        reason: String,
        /// When to try again.
        retry_after_secs: u64,
    },
    /// The server(s) asked gave no answer.
    #[error("server {key} gave no answer: {reason}")]
    UpstreamFailed {
        /// The last server asked.
        key: PublicKey,
        /// What went wrong.
        reason: String,
    },
    /// The server(s) asked did not answer in time.
    #[error("server {key} did not answer in time: {reason}")]
    UpstreamTimeout {
        /// The last server asked.
        key: PublicKey,
        /// What went wrong.
        reason: String,
    },

    // --- operator view ---
    /// No or a wrong bearer token.
    #[error("{0}")]
    Unauthorized(String),
    /// The operator view is off because no token is configured.
    #[error("the operator view is disabled: set ROT_PROXY_ADMIN_TOKEN")]
    AdminDisabled,

    // --- configuration and storage ---
    /// A setting is missing or invalid (names the setting).
    #[error("configuration: {0}")]
    Config(String),
    /// sled failed (disk full, I/O error).
    #[error("directory storage: {0}")]
    Storage(#[from] sled::Error),
    /// The database on disk is of another schema version.
    #[error("{0}")]
    Schema(String),
    /// A stored record does not decode: the database is damaged.
    #[error("directory corrupt: {0}")]
    Corrupt(String),
}

/// The refusal label attached to an error response, read by the counting layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection(pub &'static str);

impl Error {
    /// The shared error code (and so the HTTP status) of this error. Only the client's own
    /// mistakes are 4xx; a storage failure is never blamed on the client.
    pub fn code(&self) -> ErrorCode {
        use rot_proto::Error as P;
        match self {
            Self::Proto(proto) => match proto {
                P::BadSignature
                | P::MalformedKey(_)
                | P::MalformedSignature(_)
                | P::SignerMismatch { .. } => ErrorCode::BadSignature,
                P::Replayed { .. } => ErrorCode::Replayed,
                P::ClockSkew { .. } => ErrorCode::Stale,
                P::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
                P::Randomness(_) => ErrorCode::Internal,
                _ => ErrorCode::BadRequest,
            },
            Self::BadRequest(_)
            | Self::CoinNotServed { .. }
            | Self::GenesisMismatch { .. }
            | Self::InvalidUrl { .. }
            | Self::CallbackFailed { .. }
            | Self::InfoMismatch { .. } => ErrorCode::BadRequest,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Self::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Self::Timeout => ErrorCode::GatewayTimeout,
            Self::Banned { .. } | Self::AdminDisabled => ErrorCode::Forbidden,
            Self::CoinChanged { .. }
            | Self::KeyMismatch { .. }
            | Self::UrlTaken { .. }
            | Self::AdmissionInProgress(_)
            | Self::CoinFull { .. }
            | Self::AddressFull { .. } => ErrorCode::Conflict,
            Self::AdmissionBusy
            | Self::Overloaded
            | Self::NoServer { .. }
            | Self::ServerUnavailable { .. } => ErrorCode::Unavailable,
            Self::UpstreamFailed { .. } => ErrorCode::BadGateway,
            Self::UpstreamTimeout { .. } => ErrorCode::GatewayTimeout,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Unauthorized(_) => ErrorCode::Unauthorized,
            Self::Config(_) | Self::Storage(_) | Self::Schema(_) | Self::Corrupt(_) => {
                ErrorCode::Internal
            }
        }
    }

    /// A short label of why a request was refused, the key of the operator view's counters.
    pub fn reason(&self) -> &'static str {
        use rot_proto::Error as P;
        match self {
            Self::Proto(proto) => match proto {
                P::BadSignature | P::SignerMismatch { .. } => "bad_signature",
                P::MalformedKey(_) | P::MalformedSignature(_) => "malformed_signature",
                P::WrongTag { .. } => "wrong_tag",
                P::UnsupportedVersion { .. } => "unsupported_version",
                P::Replayed { .. } => "replayed",
                P::ClockSkew { .. } => "clock_skew",
                P::MalformedBody(_) => "malformed_body",
                _ => "bad_request",
            },
            Self::BadRequest(_) => "bad_request",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::Timeout => "timeout",
            Self::CoinNotServed { .. } => "coin_not_served",
            Self::GenesisMismatch { .. } => "genesis_mismatch",
            Self::CoinChanged { .. } => "coin_changed",
            Self::Banned { .. } => "banned",
            Self::InvalidUrl { .. } => "invalid_url",
            Self::UrlTaken { .. } => "url_taken",
            Self::AdmissionInProgress(_) => "admission_in_progress",
            Self::AdmissionBusy => "admission_busy",
            Self::CallbackFailed { .. } => "callback_failed",
            Self::KeyMismatch { .. } => "key_mismatch",
            Self::InfoMismatch { .. } => "info_mismatch",
            Self::RateLimited { .. } => "rate_limited",
            Self::CoinFull { .. } => "coin_full",
            Self::AddressFull { .. } => "address_full",
            Self::Overloaded => "overloaded",
            Self::NoServer { .. } => "no_server",
            Self::ServerUnavailable { .. } => "server_unavailable",
            Self::UpstreamFailed { .. } => "upstream_failed",
            Self::UpstreamTimeout { .. } => "upstream_timeout",
            Self::Unauthorized(_) => "unauthorized",
            Self::AdminDisabled => "admin_disabled",
            Self::Config(_) | Self::Storage(_) | Self::Schema(_) | Self::Corrupt(_) => "internal",
        }
    }

    /// Seconds after which a retry may succeed, sent as `Retry-After`.
    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::RateLimited {
                retry_after_secs, ..
            }
            | Self::NoServer {
                retry_after_secs, ..
            }
            | Self::ServerUnavailable {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Self::AdmissionInProgress(_) | Self::AdmissionBusy => Some(5),
            Self::Overloaded => Some(1),
            _ => None,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let code = self.code();
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(error = %self, "request failed");
        }
        let retry_after = self.retry_after_secs();
        let reason = self.reason();
        let mut response = (status, Json(ErrorBody::new(code, self.to_string()))).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(Rejection(reason));
        response
    }
}

/// A setting rot-ops read and refused (its message names the setting).
impl From<rot_ops::Error> for Error {
    fn from(error: rot_ops::Error) -> Self {
        Self::Config(error.to_string())
    }
}

impl From<BytesRejection> for Error {
    fn from(rejection: BytesRejection) -> Self {
        Self::BadRequest(rejection.body_text())
    }
}

impl From<PathRejection> for Error {
    fn from(rejection: PathRejection) -> Self {
        Self::BadRequest(rejection.body_text())
    }
}

impl From<QueryRejection> for Error {
    fn from(rejection: QueryRejection) -> Self {
        Self::BadRequest(rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_mistakes_are_4xx_with_a_reason() {
        let key = rot_proto::Identity::from_seed([1; 32]).public_key();
        for (error, status, reason) in [
            (
                Error::Proto(rot_proto::Error::Replayed {
                    seq: 1,
                    last_seq: 2,
                }),
                409,
                "replayed",
            ),
            (
                Error::Proto(rot_proto::Error::BadSignature),
                401,
                "bad_signature",
            ),
            (
                Error::Banned {
                    key,
                    reason: "spam".into(),
                },
                403,
                "banned",
            ),
            (
                Error::RateLimited {
                    what: "registrations",
                    ip: IpAddr::from([127, 0, 0, 1]),
                    retry_after_secs: 7,
                },
                429,
                "rate_limited",
            ),
            (
                Error::PayloadTooLarge { limit: 10 },
                413,
                "payload_too_large",
            ),
        ] {
            assert_eq!(error.code().http_status(), status, "{error}");
            assert_eq!(error.reason(), reason);
        }
    }

    #[test]
    fn response_carries_body_retry_after_and_label() {
        let response = Error::RateLimited {
            what: "requests",
            ip: IpAddr::from([10, 0, 0, 1]),
            retry_after_secs: 42,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "42");
        assert_eq!(
            response.extensions().get::<Rejection>(),
            Some(&Rejection("rate_limited"))
        );
    }
}
