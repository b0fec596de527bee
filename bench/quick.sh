#!/usr/bin/env bash
# A quick client_credentials throughput figure: release build, fresh SQLite data folder, one
# client from the CLI, then wrk (installed from Debian if missing) for 10 s at 64 connections in
# each dialect. Prints requests/s, latency, the server's RSS when idle and after the load, and the
# machine's RS256 signing rate (openssl) as the floor to compare against.
# Usage: bench/quick.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${1:-10}"
PORT=18480

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet
BIN="$PWD/target/release/latchkey"
WORK=$(mktemp -d)
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT
export LATCHKEY_DATA_DIR="$WORK/data" LATCHKEY_LOG=warn

printf '%s\n' 'bench password 1' | "$BIN" user create --username bench --name Bench >/dev/null
CLIENT=$("$BIN" client create --owner bench --name Bench --json)
ID=$(printf '%s' "$CLIENT" | sed -E 's/.*"client_id":"([^"]+)".*/\1/')
SECRET=$(printf '%s' "$CLIENT" | sed -E 's/.*"client_secret":"([^"]+)".*/\1/')
BASIC=$(printf '%s:%s' "$ID" "$SECRET" | base64 -w0)

"$BIN" serve --bind "127.0.0.1:$PORT" & SERVER=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$SERVER/status"; }
echo "machine: $(nproc) cores; idle RSS after start: $(rss)"

cat > "$WORK/form.lua" <<LUA
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $BASIC"
LUA
cat > "$WORK/json.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"grantType":"client_credentials"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic $BASIC"
LUA
for dialect in form json; do
  echo "== client_credentials ($dialect dialect), 64 connections, ${SECONDS_PER_RUN}s"
  wrk -t2 -c64 -d"${SECONDS_PER_RUN}s" --latency -s "$WORK/$dialect.lua" "http://127.0.0.1:$PORT/oauth/token" \
    | grep -E 'Requests/sec|Latency  |50%|99%|Non-2xx|Socket errors'
done
echo "RSS after load: $(rss)"
echo "== RS256 signing floor on this machine (openssl, 2 processes)"
openssl speed -multi 2 -seconds 3 rsa2048 2>/dev/null | awk '/^rsa 2048/ {print "rsa2048 sign/s:", $6}'
