//! Crashes under steady wallet traffic, against real processes on loopback: a rot-server
//! killed with `kill -9` and restarted on its data dir, a rot-proxy killed and restarted on
//! its directory, a coin node killed and restarted under its server, and a server killed
//! while its node is down. Each case asserts what wallets saw and prints its figures as
//! `faults: <case>: <name>=<value> ...`.

#[path = "faults_crashes/combined.rs"]
mod combined;
#[path = "faults_crashes/common.rs"]
mod common;
#[path = "faults_crashes/node_kill.rs"]
mod node_kill;
#[path = "faults_crashes/proxy_kill.rs"]
mod proxy_kill;
#[path = "faults_crashes/server_kill.rs"]
mod server_kill;
