//! rot-proxy: a coin team's directory of rot-servers and relay of wallet requests to them.
//! Servers register by signed heartbeats and prove their URL by a challenge; the proxy
//! probes and checks them, cross-checks them against each other, relays wallets' Esplora
//! requests to healthy servers on the agreed tip, and warns or excludes servers that answer
//! wrongly, keeping every incident with its evidence. See `docs/proxy.md`.

pub mod admission;
pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connections;
pub mod cross_check;
pub mod directory;
pub mod error;
pub mod federation;
pub mod incidents;
pub mod limits;
pub mod outlier;
pub mod policy;
pub mod pool;
pub mod probe;
pub mod relay;
pub mod route;
pub mod server;
pub mod stats;
pub mod status;
pub mod store;

pub use error::Error;
pub(crate) use rot_proto::coin;
