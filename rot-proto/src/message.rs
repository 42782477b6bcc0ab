//! The JSON messages ROT services exchange: what servers sign for proxies (server info,
//! heartbeats, challenge answers), what proxies publish to wallets (directory entries,
//! incidents) and the one error body of every HTTP service. Field names are snake_case;
//! numbers are integers within 0 ..= 2^53-1 (floats have no canonical encoding), so rates are
//! carried in thousandths. Receivers ignore fields they do not know, so peers can add fields
//! without a version bump.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::identity::{PublicKey, parse_lower_hex, random_bytes};
pub use crate::network::Network;
use crate::signed::SignedBody;
use crate::{Error, Hash256};

/// Where a server's index comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// rot-server's own indexer over the full node's JSON-RPC.
    Native,
    /// An existing ElectrumX-protocol server.
    Electrum,
}

/// Names of the optional features a server advertises in `capabilities`. Receivers ignore
/// names they do not know.
pub mod capability {
    /// Serves the Esplora REST API.
    pub const ESPLORA: &str = "esplora";
    /// Answers which transaction spends an output (`/tx/:txid/outspend/:vout`).
    pub const SPENT_BY: &str = "spent-by";
    /// Serves mempool transactions and statistics.
    pub const MEMPOOL: &str = "mempool";
    /// Serves fee estimates (`/fee-estimates`).
    pub const FEE_ESTIMATES: &str = "fee-estimates";
    /// Relays raw transactions to the network (`POST /tx`).
    pub const BROADCAST: &str = "broadcast";
    /// Serves merkle inclusion proofs (`/tx/:txid/merkle-proof`).
    pub const MERKLE_PROOF: &str = "merkle-proof";
}

/// A proxy's verdict on a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerStatus {
    /// Heartbeats arrive; probes have not yet passed.
    Pending,
    /// Passed its probes; wallets are sent to it.
    Admitted,
    /// Admitted, but a check failed recently.
    Warned,
    /// Removed from the directory for a while after failing checks.
    Excluded,
    /// No recent heartbeat, or its chain tip lags.
    Stale,
    /// Permanently refused (proven misbehaviour or operator decision).
    Banned,
}

/// How a server's index is coming along, so operators and proxies can tell "syncing" from
/// "stuck".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexProgress {
    /// The highest block the index covers.
    pub indexed_height: u64,
    /// The full node's best block height.
    pub node_height: u64,
    /// Recent indexing speed in thousandths of a block per second (1500 = 1.5 blocks/s).
    pub blocks_per_sec_milli: u64,
    /// Estimated seconds until the index reaches the node's tip; absent when unknown.
    pub eta_secs: Option<u64>,
    /// Whether the index has caught up with the node; false while the node cannot be
    /// followed (see `node_error`).
    pub synced: bool,
    /// Why the server cannot follow its node now (unreachable, failing); absent while it
    /// follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_error: Option<String>,
}

/// How one proxy currently treats the server, as the server last heard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyStanding {
    /// The proxy's base URL.
    pub proxy_url: String,
    /// The proxy's verdict on this server.
    pub status: ServerStatus,
    /// Why, when the proxy said.
    pub reason: Option<String>,
    /// Since when (unix seconds) the status holds.
    pub since: u64,
}

/// A server's signed self-description for proxies and operators: what chain it serves, how
/// far its index is, and how proxies treat it. Its `server_key` must be the envelope's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// The coin's ticker, e.g. `LTC`.
    pub coin: String,
    /// The chain followed.
    pub network: Network,
    /// Hash of the chain's genesis block, the unambiguous chain identity.
    pub genesis_hash: Hash256,
    /// The server's identity.
    pub server_key: PublicKey,
    /// Implementation and version, e.g. `rot-server/0.1.0`.
    pub software: String,
    /// The protocol version the server speaks.
    pub protocol_version: u64,
    /// Where its index comes from.
    pub backend: BackendKind,
    /// Height of the server's best block.
    pub height: u64,
    /// Hash of the server's best block.
    pub tip_hash: Hash256,
    /// Optional features offered, see [`capability`].
    pub capabilities: Vec<String>,
    /// The base URL the server is reachable at, when it publishes one.
    pub public_url: Option<String>,
    /// When this was signed (unix seconds).
    pub time: u64,
    /// Indexing progress.
    pub index: IndexProgress,
    /// How each proxy the server reports to treats it.
    pub proxies: Vec<ProxyStanding>,
}

impl SignedBody for ServerInfo {
    const TAG: &'static str = "rot/server-info";

    fn claimed_signer(&self) -> Option<&PublicKey> {
        Some(&self.server_key)
    }
}

/// A server's periodic "I am here, this is my tip", sent to each proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The coin's ticker, e.g. `LTC`.
    pub coin: String,
    /// The chain followed.
    pub network: Network,
    /// Hash of the chain's genesis block.
    pub genesis_hash: Hash256,
    /// Base URL where the proxy reaches the server (probes, challenges, relayed requests).
    pub url: String,
    /// Sequence number, strictly increasing per server key; proxies drop any heartbeat whose
    /// seq is not above the last one they accepted.
    pub seq: u64,
    /// When this was signed (unix seconds); must be within the proxy's allowed clock skew.
    pub timestamp: u64,
    /// Height of the server's best block.
    pub height: u64,
    /// Hash of the server's best block.
    pub tip_hash: Hash256,
    /// Implementation and version, e.g. `rot-server/0.1.0`.
    pub software: String,
    /// Where its index comes from.
    pub backend: BackendKind,
    /// Optional features offered, see [`capability`].
    pub capabilities: Vec<String>,
    /// Whether the server's index follows its node at the node's tip; false while the node
    /// is unreachable or the index catches up. Sent only when false: absent means true.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub synced: bool,
}

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

impl SignedBody for Heartbeat {
    const TAG: &'static str = "rot/heartbeat";
}

impl Heartbeat {
    /// The proxy's replay rules: `seq` must exceed `last_seq` (the highest accepted from this
    /// key, if any) and `timestamp` be within `max_skew_secs` of `now`.
    pub fn check_fresh(
        &self,
        last_seq: Option<u64>,
        now: u64,
        max_skew_secs: u64,
    ) -> Result<(), Error> {
        if let Some(last_seq) = last_seq.filter(|&last| self.seq <= last) {
            return Err(Error::Replayed {
                seq: self.seq,
                last_seq,
            });
        }
        check_clock_skew(self.timestamp, now, max_skew_secs)
    }
}

/// Refuses a signed `timestamp` more than `max_skew_secs` away from `now`, either way.
pub fn check_clock_skew(timestamp: u64, now: u64, max_skew_secs: u64) -> Result<(), Error> {
    let skew = timestamp.abs_diff(now);
    if skew > max_skew_secs {
        return Err(Error::ClockSkew {
            timestamp,
            now,
            skew,
            max_skew: max_skew_secs,
        });
    }
    Ok(())
}

/// 32 random bytes a proxy sends so that a server's answer cannot be replayed; text form is
/// 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nonce(pub [u8; 32]);

impl Nonce {
    /// A fresh nonce from the operating system's random number generator.
    pub fn random() -> Result<Self, Error> {
        random_bytes().map(Self)
    }
}

impl fmt::Display for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nonce({self})")
    }
}

impl FromStr for Nonce {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        parse_lower_hex(text)
            .map(Self)
            .map_err(Error::MalformedNonce)
    }
}

impl Serialize for Nonce {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Nonce {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The query of `GET /rot/v1/challenge?nonce=<64 hex>`: a proxy asks a server to prove it
/// holds the key it heartbeats with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeRequest {
    /// The proxy's fresh nonce.
    pub nonce: Nonce,
}

impl ChallengeRequest {
    /// A request with a fresh random nonce.
    pub fn random() -> Result<Self, Error> {
        Nonce::random().map(|nonce| Self { nonce })
    }
}

/// A server's signed answer to a [`ChallengeRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeAnswer {
    /// The nonce from the request, echoed.
    pub nonce: Nonce,
    /// When the server signed (unix seconds).
    pub time: u64,
}

impl SignedBody for ChallengeAnswer {
    const TAG: &'static str = "rot/challenge-answer";
}

impl ChallengeAnswer {
    /// Checks that the answer echoes the nonce the proxy sent and was signed within
    /// `max_skew_secs` of `now`.
    pub fn check(&self, sent: &Nonce, now: u64, max_skew_secs: u64) -> Result<(), Error> {
        if self.nonce != *sent {
            return Err(Error::NonceMismatch);
        }
        check_clock_skew(self.time, now, max_skew_secs)
    }
}

/// A proxy's answer to an accepted heartbeat: how it now treats the server. Refused
/// heartbeats get the shared [`ErrorBody`] with a 4xx instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAck {
    /// The proxy's verdict on the server.
    pub status: ServerStatus,
    /// Why, when the status is not `admitted` (e.g. the exclusion's cause).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The seq the proxy accepted.
    pub seq: u64,
}

/// One server as a proxy's directory shows it to wallets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryEntry {
    /// The server's identity.
    pub server_key: PublicKey,
    /// The proxy's verdict.
    pub status: ServerStatus,
    /// Height of the server's best block, as last heard.
    pub height: u64,
    /// Hash of the server's best block, as last heard.
    pub tip_hash: Hash256,
    /// Seconds since the proxy accepted the server's last heartbeat.
    pub last_heartbeat_age_secs: u64,
    /// Recent probe round-trip time in milliseconds, when measured.
    pub latency_ms: Option<u64>,
    /// Implementation and version the server reports.
    pub software: String,
    /// Where the server's index comes from.
    pub backend: BackendKind,
    /// How many warnings the server has received.
    pub warnings: u64,
    /// How many times the server has been excluded.
    pub exclusions: u64,
    /// The server's base URL; present only when the proxy publishes server addresses.
    pub url: Option<String>,
}

/// One coin a proxy serves, as `GET /v1/coins` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoinSummary {
    /// The coin profile id, e.g. `ltc`, `ltc-regtest`.
    pub id: String,
    /// The ticker, e.g. `LTC`.
    pub ticker: String,
    /// The chain.
    pub network: Network,
    /// Hash of the chain's genesis block.
    pub genesis_hash: Hash256,
    /// Servers the proxy currently sends wallets to.
    #[serde(default)]
    pub healthy_servers: u64,
    /// The tip most healthy servers report (ties: the higher); absent without healthy servers.
    #[serde(default)]
    pub tip_height: Option<u64>,
    /// Its hash.
    #[serde(default)]
    pub tip_hash: Option<Hash256>,
}

/// A proxy's signed account of itself, served at `GET /v1/info`. Peers and wallets check that
/// the key is the one the bootstrap list names for the URL they asked, then learn what the
/// proxy serves and which list it holds (a higher serial than theirs is worth fetching from
/// its `GET /v1/bootstrap`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyInfo {
    /// The proxy's identity, as the bootstrap list names it.
    pub proxy_key: PublicKey,
    /// Implementation and version, e.g. `rot-proxy/0.1.0`.
    pub software: String,
    /// The protocol version the proxy speaks.
    pub protocol_version: u64,
    /// When this was signed (unix seconds).
    pub time: u64,
    /// The coins served, with their healthy server counts and agreed tips.
    pub coins: Vec<CoinSummary>,
    /// Serial of the newest valid bootstrap list the proxy holds, if any.
    pub bootstrap_serial: Option<u64>,
}

impl SignedBody for ProxyInfo {
    const TAG: &'static str = "rot/proxy-info";

    fn claimed_signer(&self) -> Option<&PublicKey> {
        Some(&self.proxy_key)
    }
}

/// Another proxy of the bootstrap list as one proxy last saw it, so that a wallet that reaches
/// one proxy can reach the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerEntry {
    /// Its base URL, from the list.
    pub url: String,
    /// Its key, from the list.
    pub proxy_key: PublicKey,
    /// The team operating it, from the list.
    pub team: String,
    /// How to reach its operators, from the list.
    pub contact: String,
    /// Whether its last answer was a valid info signed by the listed key.
    pub reachable: bool,
    /// Seconds since its last valid answer; absent if it never gave one.
    pub last_seen_age_secs: Option<u64>,
    /// What it serves, from its last valid answer.
    pub coins: Vec<CoinSummary>,
    /// The serial of the bootstrap list it holds, from its last valid answer.
    pub bootstrap_serial: Option<u64>,
    /// Why the last attempt failed, when it did.
    pub error: Option<String>,
}

/// The body of `GET /v1/peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeersAnswer {
    /// Every other proxy of the current bootstrap list, by URL.
    pub peers: Vec<PeerEntry>,
}

/// What a proxy did about a failed check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consequence {
    /// Recorded only.
    None,
    /// The server was warned.
    Warning,
    /// The server was dropped from the current rotation until it passes its probes again.
    Ejection,
    /// The server was excluded from the directory for a while.
    Exclusion,
}

/// A proxy's public record of a server failing a check, with the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// The proxy's sequential incident number.
    pub id: u64,
    /// When it happened (unix seconds).
    pub time: u64,
    /// The coin's ticker.
    pub coin: String,
    /// The server that failed.
    pub server_key: PublicKey,
    /// The name of the failed check.
    pub check: String,
    /// What the server answered and what was expected, check-specific.
    pub evidence: serde_json::Value,
    /// What the proxy did about it.
    pub consequence: Consequence,
}

/// Machine-readable error codes of [`ErrorDetail::code`]. Clients compare against
/// [`ErrorCode::as_str`] and treat unknown codes by HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request is malformed.
    BadRequest,
    /// Authentication is missing or wrong.
    Unauthorized,
    /// The caller may not do this.
    Forbidden,
    /// No such resource.
    NotFound,
    /// The resource exists but not for this HTTP method.
    MethodNotAllowed,
    /// The request conflicts with current state.
    Conflict,
    /// The request body is too large.
    PayloadTooLarge,
    /// Too many requests; retry later.
    RateLimited,
    /// A signature does not verify.
    BadSignature,
    /// A signed message reuses a sequence number or nonce already seen.
    Replayed,
    /// A signed message's timestamp is too far from the receiver's clock.
    Stale,
    /// The message uses a protocol version the receiver does not speak.
    UnsupportedVersion,
    /// An unexpected failure inside the service.
    Internal,
    /// The service does not implement this.
    NotImplemented,
    /// An upstream (full node, indexer, relayed server) answered wrongly.
    BadGateway,
    /// The service cannot answer now (syncing, overloaded, no server available).
    Unavailable,
    /// An upstream did not answer in time.
    GatewayTimeout,
}

impl ErrorCode {
    /// The wire spelling, snake_case.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RateLimited => "rate_limited",
            Self::BadSignature => "bad_signature",
            Self::Replayed => "replayed",
            Self::Stale => "stale",
            Self::UnsupportedVersion => "unsupported_version",
            Self::Internal => "internal",
            Self::NotImplemented => "not_implemented",
            Self::BadGateway => "bad_gateway",
            Self::Unavailable => "unavailable",
            Self::GatewayTimeout => "gateway_timeout",
        }
    }

    /// The HTTP status every ROT service answers this code with.
    pub fn http_status(self) -> u16 {
        match self {
            Self::BadRequest | Self::UnsupportedVersion => 400,
            Self::Unauthorized | Self::BadSignature => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict | Self::Replayed | Self::Stale => 409,
            Self::PayloadTooLarge => 413,
            Self::RateLimited => 429,
            Self::Internal => 500,
            Self::NotImplemented => 501,
            Self::BadGateway => 502,
            Self::Unavailable => 503,
            Self::GatewayTimeout => 504,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error body of every ROT HTTP service: `{"error":{"code":"…","message":"…"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A snake_case code, see [`ErrorCode`].
    pub code: String,
    /// A human-readable explanation.
    pub message: String,
}

impl ErrorBody {
    /// An error body with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.as_str().to_owned(),
                message: message.into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::signed::Signed;
    use serde::de::DeserializeOwned;
    use serde_json::json;

    const GENESIS: &str = "12a765e31ffd4059bada1e25190f6e98c99d9714d334efa41a195a7e7e04bfe2";

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + fmt::Debug>(value: &T) {
        let text = serde_json::to_string(value).unwrap();
        assert_eq!(&serde_json::from_str::<T>(&text).unwrap(), value, "{text}");
    }

    fn heartbeat(seq: u64, timestamp: u64) -> Heartbeat {
        Heartbeat {
            coin: "LTC".to_owned(),
            network: Network::Main,
            genesis_hash: GENESIS.parse().unwrap(),
            url: "https://ltc.example.org".to_owned(),
            seq,
            timestamp,
            height: 2_800_000,
            tip_hash: Hash256([0xab; 32]),
            software: "rot-server/0.1.0".to_owned(),
            backend: BackendKind::Native,
            capabilities: vec![
                capability::ESPLORA.to_owned(),
                capability::BROADCAST.to_owned(),
            ],
            synced: true,
        }
    }

    fn server_info(server_key: PublicKey) -> ServerInfo {
        ServerInfo {
            coin: "LTC".to_owned(),
            network: Network::Test,
            genesis_hash: GENESIS.parse().unwrap(),
            server_key,
            software: "rot-server/0.1.0".to_owned(),
            protocol_version: 1,
            backend: BackendKind::Electrum,
            height: 10,
            tip_hash: Hash256([1; 32]),
            capabilities: vec![],
            public_url: None,
            time: 1_700_000_000,
            index: IndexProgress {
                indexed_height: 9,
                node_height: 10,
                blocks_per_sec_milli: 1500,
                eta_secs: Some(1),
                synced: false,
                node_error: Some("connection refused".to_owned()),
            },
            proxies: vec![ProxyStanding {
                proxy_url: "https://proxy.example.org".to_owned(),
                status: ServerStatus::Warned,
                reason: Some("tip lagged".to_owned()),
                since: 1_699_999_000,
            }],
        }
    }

    #[test]
    fn enums_use_lowercase_names() {
        assert_eq!(
            serde_json::to_value(Network::Regtest).unwrap(),
            json!("regtest")
        );
        assert_eq!(
            serde_json::to_value(BackendKind::Electrum).unwrap(),
            json!("electrum")
        );
        assert_eq!(
            serde_json::to_value(ServerStatus::Admitted).unwrap(),
            json!("admitted")
        );
        assert_eq!(
            serde_json::to_value(Consequence::Ejection).unwrap(),
            json!("ejection")
        );
        assert!(serde_json::from_value::<ServerStatus>(json!("Admitted")).is_err());
    }

    #[test]
    fn network_text_round_trips() {
        for network in [Network::Main, Network::Test, Network::Regtest] {
            assert_eq!(network.to_string().parse::<Network>().unwrap(), network);
            assert_eq!(
                serde_json::to_value(network).unwrap(),
                json!(network.as_str())
            );
        }
        assert!(matches!(
            "mainnet".parse::<Network>(),
            Err(Error::UnknownNetwork(_))
        ));
    }

    /// Older servers send no `synced`: they count as synced; newer ones send it only when
    /// false, so a synced server's heartbeat is what older proxies expect.
    #[test]
    fn a_heartbeat_names_only_a_lag() {
        let synced = serde_json::to_value(heartbeat(1, 2)).unwrap();
        assert!(synced.get("synced").is_none(), "{synced}");
        assert!(serde_json::from_value::<Heartbeat>(synced).unwrap().synced);
        let lagging = Heartbeat {
            synced: false,
            ..heartbeat(1, 2)
        };
        let text = serde_json::to_value(&lagging).unwrap();
        assert_eq!(text["synced"], json!(false));
        round_trip(&lagging);
    }

    #[test]
    fn messages_round_trip() {
        let key = Identity::from_seed([3; 32]).public_key();
        round_trip(&heartbeat(1, 2));
        round_trip(&server_info(key));
        round_trip(&ChallengeRequest::random().unwrap());
        round_trip(&ChallengeAnswer {
            nonce: Nonce([5; 32]),
            time: 9,
        });
        round_trip(&DirectoryEntry {
            server_key: key,
            status: ServerStatus::Admitted,
            height: 5,
            tip_hash: Hash256([2; 32]),
            last_heartbeat_age_secs: 30,
            latency_ms: Some(120),
            software: "rot-server/0.1.0".to_owned(),
            backend: BackendKind::Native,
            warnings: 1,
            exclusions: 0,
            url: None,
        });
        round_trip(&Incident {
            id: 4,
            time: 100,
            coin: "LTC".to_owned(),
            server_key: key,
            check: "tip-hash".to_owned(),
            evidence: json!({"expected": "aa", "got": "bb"}),
            consequence: Consequence::Warning,
        });
        round_trip(&ErrorBody::new(ErrorCode::NotFound, "no such tx"));
    }

    #[test]
    fn wire_field_names_are_snake_case() {
        let wire =
            serde_json::to_value(server_info(Identity::from_seed([3; 32]).public_key())).unwrap();
        assert_eq!(wire["genesis_hash"], json!(GENESIS));
        assert_eq!(wire["index"]["blocks_per_sec_milli"], json!(1500));
        assert_eq!(wire["public_url"], json!(null));
        assert_eq!(
            wire["proxies"][0]["proxy_url"],
            json!("https://proxy.example.org")
        );
    }

    #[test]
    fn optional_fields_may_be_absent_and_unknown_fields_are_ignored() {
        let key = Identity::from_seed([3; 32]).public_key();
        let mut wire = serde_json::to_value(DirectoryEntry {
            server_key: key,
            status: ServerStatus::Pending,
            height: 0,
            tip_hash: Hash256::default(),
            last_heartbeat_age_secs: 0,
            latency_ms: None,
            software: String::new(),
            backend: BackendKind::Native,
            warnings: 0,
            exclusions: 0,
            url: None,
        })
        .unwrap();
        let object = wire.as_object_mut().unwrap();
        object.remove("latency_ms");
        object.remove("url");
        object.insert("from_the_future".to_owned(), json!([1]));
        let entry: DirectoryEntry = serde_json::from_value(wire).unwrap();
        assert_eq!(entry.latency_ms, None);
        assert_eq!(entry.url, None);
    }

    #[test]
    fn heartbeat_signs_and_verifies() {
        let identity = Identity::from_seed([8; 32]);
        let signed = Signed::sign(&identity, &heartbeat(7, 1000)).unwrap();
        let wire = serde_json::to_string(&signed).unwrap();
        let received: Signed<Heartbeat> = serde_json::from_str(&wire).unwrap();
        assert_eq!(received.verify().unwrap(), heartbeat(7, 1000));
        assert_eq!(received.signer().unwrap(), identity.public_key());
        // A heartbeat signature cannot pass as a challenge answer.
        let as_answer: Signed<ChallengeAnswer> = serde_json::from_str(&wire).unwrap();
        assert!(matches!(as_answer.verify(), Err(Error::WrongTag { .. })));
    }

    #[test]
    fn server_info_must_name_its_signer() {
        let identity = Identity::from_seed([8; 32]);
        let own = Signed::sign(&identity, &server_info(identity.public_key())).unwrap();
        assert_eq!(own.verify().unwrap().server_key, identity.public_key());
        let other = Identity::from_seed([9; 32]).public_key();
        let impersonating = Signed::sign(&identity, &server_info(other)).unwrap();
        assert!(matches!(
            impersonating.verify(),
            Err(Error::SignerMismatch { .. })
        ));
    }

    #[test]
    fn heartbeat_replay_rules() {
        let beat = heartbeat(10, 1000);
        beat.check_fresh(None, 1000, 60).unwrap();
        beat.check_fresh(Some(9), 1060, 60).unwrap();
        beat.check_fresh(Some(9), 940, 60).unwrap();
        assert!(matches!(
            beat.check_fresh(Some(10), 1000, 60),
            Err(Error::Replayed {
                seq: 10,
                last_seq: 10
            })
        ));
        assert!(matches!(
            beat.check_fresh(Some(11), 1000, 60),
            Err(Error::Replayed { .. })
        ));
        assert!(matches!(
            beat.check_fresh(Some(9), 1061, 60),
            Err(Error::ClockSkew { skew: 61, .. })
        ));
        assert!(matches!(
            beat.check_fresh(None, 939, 60),
            Err(Error::ClockSkew { .. })
        ));
    }

    #[test]
    fn challenge_answer_checks_nonce_and_time() {
        let request = ChallengeRequest::random().unwrap();
        let answer = ChallengeAnswer {
            nonce: request.nonce,
            time: 500,
        };
        answer.check(&request.nonce, 510, 30).unwrap();
        let other = Nonce::random().unwrap();
        assert_ne!(other, request.nonce);
        assert!(matches!(
            answer.check(&other, 500, 30),
            Err(Error::NonceMismatch)
        ));
        assert!(matches!(
            answer.check(&request.nonce, 531, 30),
            Err(Error::ClockSkew { .. })
        ));
    }

    #[test]
    fn nonce_is_64_lowercase_hex() {
        let nonce = Nonce::random().unwrap();
        let text = nonce.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<Nonce>().unwrap(), nonce);
        assert!(matches!(
            text[..63].parse::<Nonce>(),
            Err(Error::MalformedNonce(_))
        ));
        assert!("AB".repeat(32).parse::<Nonce>().is_err());
        let query: ChallengeRequest = serde_json::from_value(json!({"nonce": text})).unwrap();
        assert_eq!(query.nonce, nonce);
    }

    #[test]
    fn error_body_has_the_documented_shape() {
        let body = ErrorBody::new(ErrorCode::RateLimited, "slow down");
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":{"code":"rate_limited","message":"slow down"}}"#
        );
        assert_eq!(ErrorCode::RateLimited.http_status(), 429);
        assert_eq!(ErrorCode::PayloadTooLarge.as_str(), "payload_too_large");
    }
}
