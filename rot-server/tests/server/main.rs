//! rot-server against REAL litecoind regtest nodes (never a mock): the Esplora API endpoint by
//! endpoint, reorganisations, a crash while indexing, MWEB blocks, and `/metrics`.
//!
//! One test binary so the helpers are shared; each test builds its own small chain on its
//! own node, so tests run in parallel and a failure points at one behaviour.

mod common;
mod crash;
mod esplora;
mod metrics;
mod mweb;
mod reorg;
