#!/usr/bin/env bash
# Installs ElectrumX 2.0.0 (PyPI package `e-x`) into bench/.venv-electrumx, the peer the
# benchmarks and the Electrum-backend tests run against. Does nothing when it is already there.
#
# Needs Python 3.10+ with venv and pip. The database engine is LevelDB through `plyvel`, whose
# PyPI wheels bundle LevelDB, so no system library is needed (RocksDB's binding, rocksdb-ng,
# builds from source against librocksdb-dev; LevelDB is ElectrumX 1.x's default engine).
#
# Usage: bench/install-electrumx.sh            (venv at bench/.venv-electrumx)
#        ELECTRUMX_VENV=/some/dir bench/install-electrumx.sh
set -euo pipefail

version=2.0.0
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${ELECTRUMX_VENV:-$here/.venv-electrumx}"

if [[ -x "$venv/bin/electrumx_server" ]] \
    && "$venv/bin/python" -c "import electrumx, plyvel, sys; sys.exit(electrumx.__version__ != '$version')" 2>/dev/null; then
    echo "ElectrumX $version already installed in $venv"
    exit 0
fi

python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "ElectrumX $version needs Python 3.10 or newer; $python is $("$python" --version 2>&1)" >&2
    echo "install one (e.g. apt-get install python3 python3-venv) or set PYTHON" >&2
    exit 1
fi
if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
    echo "$python lacks venv/ensurepip: apt-get install python3-venv" >&2
    exit 1
fi

"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "e-x[leveldb]==$version"
"$venv/bin/python" -c "import electrumx, plyvel; print('ElectrumX', electrumx.__version__, 'with plyvel', plyvel.__version__)"
echo "installed in $venv"
