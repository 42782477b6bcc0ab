//! rot-harness: runs REAL coin nodes (litecoind in regtest) on loopback for rot's integration
//! tests and benchmarks, so they exercise the node's actual RPC, P2P and crash behaviour
//! instead of mocks. Dev-only; never published.

mod error;
mod litecoind;
mod server;
mod wallet;

pub use error::Error;
pub use litecoind::{Litecoind, LitecoindBuilder};
pub use server::RotServer;
pub use wallet::{AddressType, Wallet};
