//! rot-proto: the protocol shared by ROT proxies, servers, wallets and third-party
//! implementations. It stays light (serde, ed25519-dalek, thiserror and small hashing crates)
//! so that any wallet can depend on it; HTTP client code sits behind the `client` feature.

pub mod address;
pub mod coin;
mod error;
pub mod hash;
pub mod network;
pub mod rules;
pub mod script;
pub mod script_hash;

pub use address::{Address, Payload, WitnessProgram};
pub use coin::{CoinProfile, Coins};
pub use error::Error;
pub use hash::Hash256;
pub use network::Network;
pub use rules::{ChainRules, PowAlgorithm};
pub use script::{ScriptType, script_asm};
pub use script_hash::ScriptHash;
