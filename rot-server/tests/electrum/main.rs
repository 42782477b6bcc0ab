//! The electrum backend against a real ElectrumX 2.0 (`COIN=Litecoin NET=regtest`) in front
//! of a real regtest litecoind: endpoint parity with the native backend on the same chain,
//! the upstream restarting mid-traffic, TLS, and an upstream of the wrong coin refused.
//!
//! Needs ElectrumX installed (bench/install-electrumx.sh).

mod common;
mod parity;
mod upstream;
