//! rot-proto: the protocol shared by ROT proxies, servers, wallets and third-party
//! implementations. It stays light (serde, ed25519-dalek, thiserror and small hashing crates)
//! so that any wallet can depend on it; HTTP client code sits behind the `client` feature.

pub mod auxpow;
pub mod block;
pub mod encode;
mod error;
pub mod hash;
pub mod merkle;
pub mod mweb;
pub mod rules;
pub mod tx;

pub use auxpow::AuxPow;
pub use block::{Block, BlockHeader, Target};
pub use error::Error;
pub use hash::Hash256;
pub use merkle::MerkleProof;
pub use mweb::{MwebBlock, MwebTx};
pub use rules::{ChainRules, PowAlgorithm};
pub use tx::{MwebData, OutPoint, Transaction, TxIn, TxOut, Witness};
