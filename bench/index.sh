#!/usr/bin/env bash
# rot-server vs ElectrumX 2.0.0 on one regtest litecoind, in one run: initial indexing time,
# peak memory, and /address/:a/utxo vs blockchain.scripthash.listunspent throughput at 1, 16
# and 64 concurrent clients. Results are printed and written into docs/benchmarks.md
# (section "rot-server indexing and queries").
#
# The chain (110,000 transactions over 12,000 addresses by default) is built on the first run
# and cached under bench/cache/ (git-ignored); later runs reuse it. Needs litecoind
# (/usr/bin/litecoind or $LITECOIND), Python 3.10+ for ElectrumX, and a Rust toolchain.
#
# Usage: bench/index.sh [rot-bench index options...]
#   e.g. bench/index.sh --seconds 5 --concurrency 1,16
#        bench/index.sh --transactions 20000 --addresses 2000 --doc /dev/null   (a quick try)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bench/install-electrumx.sh
cargo build --release -p rot-server -p rot-bench

commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git diff --quiet HEAD -- rot-server rot-proto 2>/dev/null; then
    commit="$commit (with uncommitted changes)"
fi

exec target/release/rot-bench index \
    --rot-server target/release/rot-server \
    --doc docs/benchmarks.md \
    --commit "$commit" \
    --command-line "bench/index.sh${*:+ $*}" \
    "$@"
