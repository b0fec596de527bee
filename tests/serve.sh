# Sourced by the scripts that drive a real server (tests/interop/run.sh,
# tests/schemathesis/run.sh, examples/run.sh): `free_port` prints a free local port, and
# `start_server BIN` starts BIN on one with SQLite in a scratch folder, waits until /readyz
# answers, and sets WORK (the scratch folder: server.log is there), PORT, BASE and SERVER.
# The server is stopped and WORK removed when the script exits.

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_server() {
  WORK=$(mktemp -d)
  PORT=$(free_port)
  BASE="http://127.0.0.1:$PORT"
  export LATCHKEY_DATA_DIR="$WORK/data" LATCHKEY_LOG=warn LATCHKEY_ISSUER="$BASE" LATCHKEY_METRICS_BIND=127.0.0.1:0
  "$1" serve --bind "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
  SERVER=$!
  trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT
  for _ in $(seq 100); do
    curl -sf "$BASE/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  cat "$WORK/server.log" >&2
  exit 1
}
