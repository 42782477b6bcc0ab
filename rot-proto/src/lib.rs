//! rot-proto: the protocol shared by ROT proxies, servers, wallets and third-party
//! implementations. It stays light (serde, ed25519-dalek, thiserror and small hashing crates)
//! so that any wallet can depend on it; HTTP client code sits behind the `client` feature.

pub mod canonical;
mod error;
pub mod hash;
pub mod identity;
pub mod keyfile;
pub mod message;
pub mod rules;
pub mod signed;

pub use canonical::canonical_bytes;
pub use error::Error;
pub use hash::Hash256;
pub use identity::{Identity, PublicKey, Signature};
pub use message::{
    BackendKind, ChallengeAnswer, ChallengeRequest, Consequence, DirectoryEntry, ErrorBody,
    ErrorCode, ErrorDetail, Heartbeat, Incident, IndexProgress, Network, Nonce, ProxyStanding,
    ServerInfo, ServerStatus,
};
pub use rules::{ChainRules, PowAlgorithm};
pub use signed::{PROTOCOL_VERSION, Signed, SignedBody};
