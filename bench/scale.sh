#!/usr/bin/env bash
# Token throughput on PostgreSQL: one instance, then two instances behind nginx
# (deploy/nginx-latchkey.conf), both driven by wrk with client_credentials at 64 connections.
# Prints requests/s and latency for each, and the ratio. Usage: bench/scale.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-10}"
PG="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
cargo build --release --quiet
BIN="$PWD/target/release/latchkey"

WORK=$(mktemp -d)
SCHEMA="bench_scale_$$"
P1=18791 P2=18792 LB=18790
PIDS=()
cleanup() {
  "$NGINX" -p "$WORK" -c "$WORK/nginx.conf" -s stop 2>/dev/null || true
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  psql "$PG" -qc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
psql "$PG" -qc "CREATE SCHEMA $SCHEMA"
export LATCHKEY_DATABASE_URL="$PG?options=-c%20search_path%3D$SCHEMA"
export LATCHKEY_SECRET_KEY="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export LATCHKEY_ISSUER="http://127.0.0.1:$LB" LATCHKEY_DATA_DIR="$WORK/data" LATCHKEY_LOG=warn
export LATCHKEY_TRUSTED_PROXIES=127.0.0.1 LATCHKEY_DB_POOL_SIZE=16 LATCHKEY_METRICS_BIND=127.0.0.1:0

"$BIN" migrate
printf '%s\n' 'bench password 1' | "$BIN" user create --username bench --name Bench >/dev/null
CLIENT=$("$BIN" client create --owner bench --name Bench --json)
ID=$(printf '%s' "$CLIENT" | sed -E 's/.*"client_id":"([^"]+)".*/\1/')
SECRET=$(printf '%s' "$CLIENT" | sed -E 's/.*"client_secret":"([^"]+)".*/\1/')
cat > "$WORK/form.lua" <<LUA
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $(printf '%s:%s' "$ID" "$SECRET" | base64 -w0)"
LUA
wait_ready() { for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return; sleep 0.1; done; exit 1; }
run() { wrk -t2 -c64 -d"${SECS}s" --latency -s "$WORK/form.lua" "http://127.0.0.1:$1/oauth/token" | tee "$WORK/$2.txt" | grep -E 'Requests/sec|50%|99%|Non-2xx'; }

"$BIN" serve --bind "127.0.0.1:$P1" & PIDS+=($!)
wait_ready "$P1"
echo "== one instance (direct), $(nproc) cores, PostgreSQL"
run "$P1" one

"$BIN" serve --bind "127.0.0.1:$P2" & PIDS+=($!)
wait_ready "$P2"
sed -e "s/127.0.0.1:8081/127.0.0.1:$P1/" -e "s/127.0.0.1:8082/127.0.0.1:$P2/" -e "s/listen 80;/listen 127.0.0.1:$LB;/" \
  deploy/nginx-latchkey.conf > "$WORK/latchkey.conf"
mkdir -p "$WORK/logs"
cat > "$WORK/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/logs/error.log warn;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $WORK/body; proxy_temp_path $WORK/proxy; include $WORK/latchkey.conf; }
CONF
"$NGINX" -p "$WORK" -c "$WORK/nginx.conf"
wait_ready "$LB"
echo "== two instances behind nginx"
run "$LB" two
one=$(awk '/Requests\/sec/ {print $2}' "$WORK/one.txt"); two=$(awk '/Requests\/sec/ {print $2}' "$WORK/two.txt")
echo "scaling factor (two behind nginx / one direct): $(awk -v a="$two" -v b="$one" 'BEGIN {printf "%.2f", a / b}')"
