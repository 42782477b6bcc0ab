//! rot-proto: the protocol shared by ROT proxies, servers, wallets and third-party
//! implementations. It stays light (serde, ed25519-dalek, thiserror and small hashing crates)
//! so that any wallet can depend on it; HTTP client code sits behind the `client` feature.

pub mod address;
pub mod auxpow;
pub mod block;
pub mod canonical;
#[cfg(feature = "client")]
pub mod client;
pub mod coin;
#[cfg(feature = "client")]
pub mod conformance;
#[cfg(feature = "client")]
pub mod cross_check;
pub mod encode;
mod error;
pub mod esplora;
pub mod hash;
pub mod identity;
pub mod keyfile;
pub mod merkle;
pub mod message;
pub mod mweb;
pub mod network;
#[cfg(feature = "client")]
pub mod probe;
#[cfg(feature = "client")]
mod problem;
pub mod rules;
pub mod sample;
pub mod script;
pub mod script_hash;
pub mod signed;
#[cfg(feature = "client")]
pub mod transport;
pub mod tx;

pub use address::{Address, Payload, WitnessProgram};
pub use auxpow::AuxPow;
pub use block::{Block, BlockHeader, Target};
pub use canonical::canonical_bytes;
pub use coin::{CoinProfile, Coins};
pub use error::{Error, error_chain};
pub use hash::Hash256;
pub use identity::{Identity, PublicKey, Signature};
pub use merkle::MerkleProof;
pub use message::{
    BackendKind, ChallengeAnswer, ChallengeRequest, CoinSummary, Consequence, DirectoryEntry,
    ErrorBody, ErrorCode, ErrorDetail, Heartbeat, HeartbeatAck, Incident, IndexProgress, Nonce,
    PeerEntry, PeersAnswer, ProxyInfo, ProxyStanding, ServerInfo, ServerStatus,
};
pub use mweb::{MwebBlock, MwebTx};
pub use network::Network;
pub use rules::{ChainRules, PowAlgorithm};
pub use script::{ScriptType, script_asm};
pub use script_hash::ScriptHash;
pub use signed::{PROTOCOL_VERSION, Signed, SignedBody};
pub use tx::{MwebData, OutPoint, Transaction, TxIn, TxOut, Witness};
