#!/usr/bin/env bash
# Benchmark of the rot-proxy relay: latency added (p50, p99) and throughput at 64 concurrent
# clients relaying GET /address/:a/utxo to a rot-server, side by side with the same requests
# sent straight to the rot-server and through nginx as a plain reverse proxy on loopback.
# A regtest litecoind, the rot-server and rot-proxy (release binaries, each its own process)
# and nginx run on this machine; see rot-proxy/examples/bench_relay.rs.
# Extra arguments (clients=N seconds=N sequential=N rounds=N utxos=N) go to the driver.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    echo "installing nginx (Debian package)" >&2
    if [ "$(id -u)" -eq 0 ]; then
        apt-get install -y nginx >/dev/null
    else
        sudo apt-get install -y nginx >/dev/null
    fi
fi
cargo build --release --locked -p rot-server --bin rot-server
cargo build --release --locked -p rot-proxy --bin rot-proxy --example bench_relay
exec target/release/examples/bench_relay "$@"
