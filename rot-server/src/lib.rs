//! rot-server: indexes a coin's full node and serves light wallets the Esplora REST API and
//! ROT's own endpoints, registering with proxies by signed heartbeats.

pub mod error;
pub mod rpc;

pub use error::Error;
