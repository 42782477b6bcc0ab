#!/usr/bin/env bash
# Benchmark of one rot-proxy's directory: signed heartbeats accepted per second with 10,000
# registered keys, and latency of the wallet directory answer at 10,000 servers.
# Everything runs in one process on loopback; see rot-proxy/examples/bench_directory.rs.
# Extra arguments (keys=N rounds=N concurrency=N requests=N) are passed to the driver.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p rot-proxy --example bench_directory
exec target/release/examples/bench_directory "$@"
