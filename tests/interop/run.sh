#!/usr/bin/env bash
# Runs the interop scripts in this folder against a fresh Latchkey server: the given binary
# (default target/debug/latchkey, as `cargo test` built it), SQLite in a temporary data folder,
# on a free local port. Installs the client libraries they use (pinned) with pip if missing.
#
#   bash tests/interop/run.sh [LATCHKEY_BINARY]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${1:-$PWD/target/debug/latchkey}"

if ! python3 -c 'import authlib, joserfc, requests' 2>/dev/null; then
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
    'authlib==1.9.10' 'joserfc==1.8.0' 'requests>=2.31'
fi

source tests/serve.sh
start_server "$BIN"

python3 tests/interop/authlib_fapi.py "$BASE" "$BIN" || { echo "server log:" >&2; cat "$WORK/server.log" >&2; exit 1; }
