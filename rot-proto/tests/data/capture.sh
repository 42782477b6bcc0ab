#!/usr/bin/env bash
# Regenerates the Litecoin regtest fixtures of this directory from a real node, so that the
# chain parser is tested against what litecoind itself serializes and reports.
#
# Starts litecoind (0.21.2) in regtest with a fresh temporary data dir on free loopback ports,
# mines past MWEB activation with a wallet, sends transactions of every kind the node can
# build, and writes for each captured block:
#   block_<height>.hex   raw block (`getblock <hash> 0`)
#   block_<height>.json  the node's verbose view (`getblock <hash> 2`) trimmed to what tests need
# and for MWEB transactions as they sit in the mempool (blocks carry them stripped):
#   tx_<name>.hex / tx_<name>.json
#
# Usage: rot-proto/tests/data/capture.sh   (LITECOIND / LITECOIN_CLI override the binaries)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
LITECOIND=${LITECOIND:-/usr/bin/litecoind}
LITECOIN_CLI=${LITECOIN_CLI:-/usr/bin/litecoin-cli}
DATADIR=$(mktemp -d)
NODE_PID=

free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 30000))
        if ! (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
}

RPC_PORT=$(free_port)
P2P_PORT=$(free_port)
while [ "$P2P_PORT" = "$RPC_PORT" ]; do P2P_PORT=$(free_port); done

cli() { "$LITECOIN_CLI" -regtest -datadir="$DATADIR" -rpcport="$RPC_PORT" "$@"; }

cleanup() {
    if [ -n "$NODE_PID" ]; then
        cli stop >/dev/null 2>&1 || kill "$NODE_PID" 2>/dev/null || true
        wait "$NODE_PID" 2>/dev/null || true
    fi
    rm -rf "$DATADIR"
}
trap cleanup EXIT

"$LITECOIND" -regtest -datadir="$DATADIR" -server -rpcbind=127.0.0.1 -rpcallowip=127.0.0.1 \
    -rpcport="$RPC_PORT" -port="$P2P_PORT" -listen=0 -fallbackfee=0.0001 -printtoconsole=0 &
NODE_PID=$!
cli -rpcwait getblockcount >/dev/null

cli createwallet capture >/dev/null
MINER=$(cli getnewaddress miner bech32)
mine() { cli generatetoaddress "$1" "$MINER" >/dev/null; }

# Trimmed verbose block: ids, sizes, prevouts, output values (satoshis) and scripts, MWEB summary.
save_block() {
    local height=$1 hash
    hash=$(cli getblockhash "$height")
    cli getblock "$hash" 0 >"$HERE/block_$height.hex"
    cli getblock "$hash" 2 | jq '{
        hash, height, version, previousblockhash, merkleroot, time, bits, nonce,
        size, strippedsize, weight,
        tx: [.tx[] | {
            txid, hash, version, size, vsize, weight, locktime,
            vin: [.vin[] | if .coinbase then {coinbase} else {txid, vout} end],
            vout: [.vout[] | {n, value_sat: ((.value * 100000000) | round), script: .scriptPubKey.hex}]
        }],
        mweb: (if .mweb then {
            hash: .mweb.hash, height: .mweb.height,
            inputs: (.mweb.inputs | length), outputs: (.mweb.outputs | length),
            kernels: (.mweb.kernels | length)
        } else null end)
    }' >"$HERE/block_$height.json"
}

# An MWEB transaction as relayed (with its MWEB body), with the node's ids and sizes.
save_mempool_tx() {
    local name=$1 txid=$2
    cli getrawtransaction "$txid" >"$HERE/tx_$name.hex"
    cli getrawtransaction "$txid" 1 | jq '{
        txid, hash, size, vsize, weight,
        canonical_inputs: [.vin[] | select(.ismweb | not) | {txid, vout}],
        canonical_outputs: [.vout[] | select(.ismweb | not)
            | {value_sat: ((.value * 100000000) | round), script: .scriptPubKey.hex}],
        mweb_inputs: ([.vin[] | select(.ismweb)] | length),
        mweb_outputs: ([.vout[] | select(.ismweb)] | length),
        kernels: (.vkern // [] | length)
    }' >"$HERE/tx_$name.json"
}

utxo_of() { cli listunspent 1 9999 "[\"$1\"]" | jq -c '[.[] | {txid, vout}]'; }

rm -f "$HERE"/block_*.hex "$HERE"/block_*.json "$HERE"/tx_*.hex "$HERE"/tx_*.json

mine 110

# Block 111: outputs of every kind the node can pay to.
LEGACY=$(cli getnewaddress "" legacy)
LEGACY_ONLY=$(cli getnewaddress "" legacy)
P2SH_SEGWIT=$(cli getnewaddress "" p2sh-segwit)
BECH32=$(cli getnewaddress "" bech32)
PUBKEYS=$(for _ in 1 2 3; do cli getaddressinfo "$(cli getnewaddress)" | jq -r .pubkey; done | jq -R . | jq -sc .)
MULTISIG_P2SH=$(cli addmultisigaddress 2 "$PUBKEYS" "" legacy | jq -r .address)
MULTISIG_P2WSH=$(cli addmultisigaddress 2 "$PUBKEYS" "" bech32 | jq -r .address)
# Witness v1 (taproot) output: the 0.21.2 wallet has no bech32m addresses but pays to them.
# This one commits to the program 0x5a * 32 (nobody can spend it; only its output matters).
TAPROOT=rltc1ptfd95kj6tfd95kj6tfd95kj6tfd95kj6tfd95kj6tfd95kj6tfdqkh7mx9
cli sendmany "" "{\"$LEGACY\":1,\"$LEGACY_ONLY\":1,\"$P2SH_SEGWIT\":1,\"$BECH32\":1,
    \"$MULTISIG_P2SH\":1,\"$MULTISIG_P2WSH\":1,\"$TAPROOT\":0.5}" >/dev/null
RAW=$(cli createrawtransaction "[]" '[{"data":"726f742d70726f746f20666978747572652064617461"}]')
FUNDED=$(cli fundrawtransaction "$RAW" | jq -r .hex)
SIGNED=$(cli signrawtransactionwithwallet "$FUNDED" | jq -r .hex)
cli sendrawtransaction "$SIGNED" >/dev/null
mine 1

# Block 112: spend every input kind in one transaction, plus a witness-free transaction.
INPUTS=$(for address in "$LEGACY" "$P2SH_SEGWIT" "$BECH32" "$MULTISIG_P2SH" "$MULTISIG_P2WSH"; do
    utxo_of "$address"
done | jq -sc 'add')
RAW=$(cli createrawtransaction "$INPUTS" "{\"$MINER\":4.999}")
cli sendrawtransaction "$(cli signrawtransactionwithwallet "$RAW" | jq -r .hex)" >/dev/null
RAW=$(cli createrawtransaction "$(utxo_of "$LEGACY_ONLY")" "{\"$(cli getnewaddress "" legacy)\":0.999}")
cli sendrawtransaction "$(cli signrawtransactionwithwallet "$RAW" | jq -r .hex)" >/dev/null
mine 1

# MWEB activates at height 432 (BIP9 on regtest). The block that activates it must carry a
# peg-in, otherwise its HogEx has no input and the node cannot build it.
mine $((431 - $(cli getblockcount)))
PEGIN=$(cli sendtoaddress "$(cli getnewaddress "" mweb)" 5)
save_mempool_tx pegin "$PEGIN"
mine 1

# Block 433: MWEB-to-MWEB transfer and a peg-out (canonical coins locked so the wallet must
# spend MWEB coins), then a peg-in larger than the MWEB balance (so it takes canonical coins)
# and a canonical payment.
cli lockunspent false "$(cli listunspent | jq -c '[.[] | select(.address | startswith("tmweb") | not) | {txid, vout}]')" >/dev/null
MWEB_ONLY=$(cli sendtoaddress "$(cli getnewaddress "" mweb)" 1)
save_mempool_tx mweb_only "$MWEB_ONLY"
PEGOUT=$(cli sendtoaddress "$(cli getnewaddress "" bech32)" 1.5)
save_mempool_tx pegout "$PEGOUT"
cli lockunspent true >/dev/null
cli sendtoaddress "$(cli getnewaddress "" mweb)" 100 >/dev/null
cli sendtoaddress "$(cli getnewaddress "" p2sh-segwit)" 3 >/dev/null
mine 1

for height in 111 112 432 433; do save_block "$height"; done
echo "fixtures written to $HERE"
