#!/usr/bin/env bash
# Long runs of the bad-input (fuzz) targets that `cargo test` runs briefly: each target runs
# again and again with fresh random seeds (proptest draws one per run) until its time budget
# is spent, in debug builds so that arithmetic overflow panics as it does in the tests.
# Any failure stops the script with proptest's minimal failing input printed.
#
# Usage: bench/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   SECONDS_PER_TARGET  time budget of each target (default 600)
#   TARGET              any of: proto alloc hostile bootstrap server proxy (default: all)
# Environment: FUZZ_CHUNK overrides the cases per run (default: per target, below).
#
# The server and hostile targets start a regtest litecoind (/usr/bin/litecoind) for each run.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

budget="${1:-600}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(proto alloc hostile bootstrap server proxy)

# target -> "package test-binary cases-per-run"
declare -A spec=(
    [proto]="rot-proto fuzz 5000"
    [alloc]="rot-proto alloc_bounds 20000"
    [hostile]="rot-proto fuzz_hostile_server 500"
    [bootstrap]="rot-bootstrap fuzz 1000"
    [server]="rot-server fuzz_api 20000"
    [proxy]="rot-proxy fuzz_api 10000"
)

for target in "${targets[@]}"; do
    [ -n "${spec[$target]:-}" ] || { echo "unknown target $target" >&2; exit 2; }
    read -r package binary chunk <<<"${spec[$target]}"
    chunk="${FUZZ_CHUNK:-$chunk}"
    cargo test -q -p "$package" --test "$binary" --no-run
    started=$SECONDS
    runs=0
    while [ $((SECONDS - started)) -lt "$budget" ]; do
        PROPTEST_CASES="$chunk" cargo test -q -p "$package" --test "$binary" >/tmp/rot-fuzz-$$.log 2>&1 || {
            cat /tmp/rot-fuzz-$$.log
            rm -f /tmp/rot-fuzz-$$.log
            echo "fuzz: $target FAILED after $runs runs of $chunk cases" >&2
            exit 1
        }
        runs=$((runs + 1))
    done
    rm -f /tmp/rot-fuzz-$$.log
    echo "fuzz: $target: $runs runs x $chunk cases per test in $((SECONDS - started))s, no failure"
done
