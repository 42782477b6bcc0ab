//! rot-server: indexes a coin's full node and serves light wallets the Esplora REST API and
//! ROT's own endpoints, registering with proxies by signed heartbeats.
//!
//! Layout: `config` (settings), `server` (wiring and `run`), `api` + `esplora` (HTTP),
//! `backend` (the seam every backend implements), `native` + `indexer` + `store` + `tx_index` + `mempool`
//! (the native backend), `electrum` + `electrum_rpc` + `header_chain` (the electrum backend),
//! `rpc` (the coin node), `heartbeat` (registration with proxies), `metrics` (`/metrics`).

pub mod api;
pub mod backend;
pub mod config;
pub mod discovery;
pub mod electrum;
pub mod electrum_rpc;
pub mod error;
pub mod esplora;
pub mod header_chain;
pub mod heartbeat;
pub mod indexer;
pub mod mempool;
pub mod metrics;
pub mod native;
pub mod rpc;
pub mod server;
pub mod store;
pub mod tx_index;

pub use error::Error;
