#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: a number that does not drift with
# the machine's noise, so a change on the request path can be judged on a shared 2-core box.
#
#   bench/instructions.sh [--requests N] [--postgres [URL]]
#
# Builds the release binary, creates a user and a client through the CLI, and starts the
# server under `valgrind --tool=callgrind` with instrumentation off. For each scenario it sends
# 20 requests to warm up, zeroes the counters, sends N (200) more one after another with curl,
# dumps, and prints the instructions the whole process (every thread: workers, blocking pool,
# writer) executed per request. Every response must be a 200, or the script fails.
#
# Scenarios: client_credentials (RS256, form), refresh_token (rotating), /v1/user/profile,
# introspection, a client_credentials request with a wrong secret (answered 401, and counted
# for the activity page), and client_credentials with an ES256 key. A curl request costs the server the
# same whatever the machine does meanwhile; the counts include the HTTP parsing and the
# kernel-facing code in libc, not the kernel itself.
set -euo pipefail
[ -z "${TRACE:-}" ] || set -x
cd "$(dirname "$0")/.."

REQUESTS=200
PG_URL=""
while [ $# -gt 0 ]; do
  case "$1" in
    --requests) REQUESTS="$2"; shift ;;
    --postgres)
      PG_URL="postgres://postgres@127.0.0.1:5432"
      if [ $# -gt 1 ] && [[ "$2" == postgres://* ]]; then PG_URL="$2"; shift; fi ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "bench/instructions.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

source bench/lib.sh
need valgrind valgrind
need callgrind_control valgrind
need curl curl
need python3 python3
[ -z "$PG_URL" ] || need psql postgresql-client

# LATCHKEY_BIN: a binary built already (for example an older commit's, to compare).
if [ -n "${LATCHKEY_BIN:-}" ]; then
  BIN="$LATCHKEY_BIN"
else
  echo "building (release)…" >&2
  cargo build --release --locked --quiet --bin latchkey
  BIN="$PWD/target/release/latchkey"
fi
PORT=18491
BASE="http://127.0.0.1:$PORT"
WORK=$(mktemp -d)
SERVER=""
cleanup() { [ -z "$SERVER" ] || kill "$SERVER" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

# BENCH_LOG=info counts what the default log level costs (a line and a span per request).
export LATCHKEY_DATA_DIR="$WORK/data" LATCHKEY_LOG="${BENCH_LOG:-warn}" LATCHKEY_ISSUER="$BASE" LATCHKEY_METRICS_BIND=127.0.0.1:0
if [ -n "$PG_URL" ]; then
  DB=latchkey_instructions
  psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
  export LATCHKEY_DATABASE_URL="$PG_URL/$DB"
  BACKEND="PostgreSQL"
else
  BACKEND="SQLite"
fi

printf '%s\n' 'bench password 1' | "$BIN" user create --username bench --name Bench >/dev/null
CLIENT=$("$BIN" client create --owner bench --name Bench --json --redirect-uri http://127.0.0.1:9/cb \
  --grant-type client_credentials --grant-type refresh_token)
BASIC=$(printf '%s:%s' "$(json_field "$CLIENT" client_id)" "$(json_field "$CLIENT" client_secret)" | base64 -w0)
WRONG=$(printf '%s:%s' "$(json_field "$CLIENT" client_id)" "lks_not-the-secret" | base64 -w0)

start_server() {
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/callgrind.%p" \
    "$BIN" serve --bind "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 600); do
    curl -sf "$BASE/readyz" >/dev/null 2>&1 && { callgrind_control -i on "$SERVER" >/dev/null 2>&1; return 0; }
    sleep 0.1
  done
  echo "the server did not start under valgrind:" >&2; cat "$WORK/server.log" >&2; exit 1
}
stop_server() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""; }

# request KIND: one request of the scenario; fails unless the answer is a 200 (401 for `wrong`).
REFRESH=""
request() {
  case "$1" in
    cc) curl -sf -o /dev/null -X POST "$BASE/oauth/token" -H "Authorization: Basic $BASIC" \
          -d grant_type=client_credentials ;;
    refresh)
      REFRESH=$(curl -sf -X POST "$BASE/oauth/token" -H "Authorization: Basic $BASIC" \
        -d grant_type=refresh_token --data-urlencode "refresh_token=$REFRESH" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["refresh_token"])') ;;
    profile) curl -sf -o /dev/null "$BASE/v1/user/profile" -H "Authorization: Bearer $ACCESS" ;;
    introspect) curl -sf -o /dev/null -X POST "$BASE/oauth/introspect" \
          -H "Authorization: Basic $BASIC" --data-urlencode "token=$ACCESS" ;;
    wrong)
      local status
      status=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$BASE/oauth/token" \
        -H "Authorization: Basic $WRONG" -d grant_type=client_credentials)
      [ "$status" = 401 ] || { echo "a wrong secret was answered $status" >&2; exit 1; } ;;
  esac
}

# measure NAME KIND: instructions per request of KIND, over REQUESTS requests.
measure() {
  local name=$1 kind=$2
  for _ in $(seq 20); do request "$kind"; done
  callgrind_control -z "$SERVER" >/dev/null 2>&1
  for _ in $(seq "$REQUESTS"); do request "$kind"; done
  rm -f "$WORK"/callgrind.*.[0-9]*
  callgrind_control -d "$kind" "$SERVER" >/dev/null 2>&1
  local total
  total=$(awk '/^(summary|totals):/ {print $2; exit}' "$WORK"/callgrind.*.[0-9]* 2>/dev/null || true)
  [ -n "$total" ] || { echo "no callgrind dump for $name" >&2; exit 1; }
  # KEEP_CALLGRIND=DIR keeps each scenario's dump, for callgrind_annotate.
  [ -z "${KEEP_CALLGRIND:-}" ] || cp "$WORK"/callgrind.*.[0-9]* "$KEEP_CALLGRIND/$kind.callgrind"
  printf '%-34s %12s\n' "$name" "$((total / REQUESTS))"
}

start_server
ACCESS=$(curl -sf -X POST "$BASE/oauth/token" -H "Authorization: Basic $BASIC" -d grant_type=client_credentials \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
REFRESH=$(curl -sf -X POST "$BASE/v1/token" -H "Authorization: Basic $BASIC" \
  -H 'Content-Type: application/json' -d '{"grantType":"client_credentials"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["refreshToken"])')

echo "instructions per request, $BACKEND, $REQUESTS requests each, $(nproc) cores, $(git rev-parse --short HEAD)"
printf '%-34s %12s\n' scenario instructions
measure "client_credentials (RS256)" cc
measure "refresh_token" refresh
measure "/v1/user/profile" profile
measure "introspection" introspect
measure "client_credentials, wrong secret" wrong
stop_server

"$BIN" keys rotate --alg ES256 >/dev/null
start_server
measure "client_credentials (ES256)" cc
stop_server
