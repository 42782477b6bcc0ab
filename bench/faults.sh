#!/usr/bin/env bash
# The fault tests as a benchmark: runs rot-proxy's fault test binaries (tests/faults_*)
# with a 10-minute soak and prints their figures, the `faults: <case>: k=v ...` lines. Each
# binary's whole output is kept in target/faults/<binary>.log.
#
# Usage: bench/faults.sh [BINARY...]   (default: every fault test of rot-proxy, a file
#        rot-proxy/tests/faults_*.rs or a folder rot-proxy/tests/faults_*/main.rs)
# Environment: FAULTS_SOAK_SECS  soak length in seconds (default 600)
#              FAULTS_PROFILE    cargo profile, release or dev (default release: the memory
#                                figures are then those of the binary operators run)
# The binaries start a regtest litecoind (/usr/bin/litecoind) and need about 1500 file
# descriptors (the script raises its limit to the hard one) and net.core.somaxconn >= 1024.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# The floods hold about 1,500 connections at once.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
export FAULTS_SOAK_SECS="${FAULTS_SOAK_SECS:-600}"
profile="${FAULTS_PROFILE:-release}"
case "$profile" in
    release) cargo_profile=(--release) ;;
    dev) cargo_profile=() ;;
    *) echo "FAULTS_PROFILE: release or dev, not $profile" >&2; exit 2 ;;
esac
binaries=("$@")
if [ ${#binaries[@]} -eq 0 ]; then
    for file in rot-proxy/tests/faults_*.rs; do
        [ -e "$file" ] && binaries+=("$(basename "$file" .rs)")
    done
    for file in rot-proxy/tests/faults_*/main.rs; do
        [ -e "$file" ] && binaries+=("$(basename "$(dirname "$file")")")
    done
fi
[ ${#binaries[@]} -gt 0 ] || { echo "no fault tests under rot-proxy/tests" >&2; exit 2; }

mkdir -p target/faults
status=0
for binary in "${binaries[@]}"; do
    log="target/faults/$binary.log"
    echo "== $binary: soak ${FAULTS_SOAK_SECS} s, $profile profile, log $log" >&2
    if cargo test --locked "${cargo_profile[@]}" -p rot-proxy --test "$binary" \
        -- --nocapture >"$log" 2>&1; then
        result=passed
    else
        result=FAILED
        status=1
    fi
    grep '^faults: ' "$log" || true
    echo "faults: $binary: $result"
done
exit "$status"
