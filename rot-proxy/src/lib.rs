//! rot-proxy: a coin team's directory of rot-servers. Servers register by signed heartbeats
//! and prove their URL by a challenge; wallets read the directory of healthy servers; the
//! coin team manages it through an operator view. See `docs/proxy.md`.

pub mod admission;
pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod directory;
pub mod error;
pub mod limits;
pub mod server;
pub mod stats;
pub mod store;

pub use error::Error;
pub(crate) use rot_proto::coin;
