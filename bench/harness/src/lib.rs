//! rot-harness: runs REAL coin nodes (litecoind in regtest) on loopback for rot's integration
//! tests and benchmarks, so they exercise the node's actual RPC, P2P and crash behaviour
//! instead of mocks. Dev-only; never published.

mod api;
mod chain_view;
mod data_dir;
mod electrum_client;
mod electrumx;
mod error;
mod forwarder;
pub mod fuzz;
mod http_connection;
pub mod liar;
mod litecoind;
mod proxy;
pub mod ring;
mod ring_process;
mod server;
mod service_process;
mod traffic;
mod wait;
mod wallet;

pub use api::{ApiClient, Reply};
pub use chain_view::{ChainView, NodeTx, Stats, sat};
pub use electrum_client::ElectrumClient;
pub use electrumx::{ElectrumX, ElectrumXBuilder};
pub use error::Error;
pub use forwarder::Forwarder;
pub use http_connection::HttpConnection;
pub use litecoind::{Litecoind, LitecoindBuilder, MWEB_ACTIVATION_HEIGHT};
pub use proxy::{ADMIN_TOKEN, RotProxy};
pub use ring_process::{RingProcess, ring_proxy_settings, workspace_binary};
pub use server::{RotServer, fresh_index, index_dump, settings as rot_server_settings};
pub use service_process::ServiceProcess;
pub use traffic::{Traffic, TrafficReport};
pub use wait::eventually;
pub use wallet::{AddressType, Wallet};
