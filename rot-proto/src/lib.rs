//! rot-proto: the protocol shared by ROT proxies, servers, wallets and third-party
//! implementations. It stays light (serde, ed25519-dalek, thiserror and small hashing crates)
//! so that any wallet can depend on it; HTTP client code sits behind the `client` feature.

mod error;
pub mod hash;
pub mod rules;

pub use error::Error;
pub use hash::Hash256;
pub use rules::{ChainRules, PowAlgorithm};
