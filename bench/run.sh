#!/usr/bin/env bash
# Latchkey's benchmark: one command, one table.
#
#   bench/run.sh [--postgres [URL]] [--seconds N] [--connections N] [--rows N] [--quick] [--no-peer]
#
# Builds the release binary, starts it on a fresh data folder (SQLite, or a fresh PostgreSQL
# database with --postgres; default URL postgres://postgres@127.0.0.1:5432), creates a user and
# clients through the CLI, and drives each scenario with wrk (installed from Debian if missing)
# at N connections (64). For each it prints requests/s, p50/p99 latency, errors (any non-200),
# the server's peak RSS and its CPU use, and, for the signing scenarios, the throughput as a
# fraction of this machine's RS256 signing rate measured in the same run with the library the
# server signs with (`latchkey-floor`, built from bench/floor.rs). Also: idle RSS, time to ready on an existing
# database, and the SQL statements of a full authorization-code flow.
#
# Scenarios: client_credentials in both dialects (RS256), refresh_token, password (argon2-bound,
# compared with the machine's argon2id verify rate), introspection, /v1/user/profile, JWKS,
# client_credentials with --rows (1,000,000) existing tokens, client_credentials with an ES256
# key, and the authorization-code flow (bench/flow.py).
#
# The peer: in the same run, node-oidc-provider (../shared/peer, copied to a temporary folder
# and installed with npm there) serves client_credentials with RS256 and with ES256 JWTs under
# the same wrk load, after Latchkey has stopped; each Latchkey client_credentials scenario is
# also printed as a ratio to the peer of its algorithm. --no-peer leaves it out; LATCHKEY_PEER
# names another copy of the peer's folder.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_RUN=10
CONNECTIONS=64
ROWS=1000000
PG_URL=""
PEER_SRC="${LATCHKEY_PEER:-$PWD/../shared/peer}"
PEER=1
while [ $# -gt 0 ]; do
  case "$1" in
    --postgres)
      PG_URL="postgres://postgres@127.0.0.1:5432"
      if [ $# -gt 1 ] && [[ "$2" == postgres://* ]]; then PG_URL="$2"; shift; fi ;;
    --seconds) SECONDS_PER_RUN="$2"; shift ;;
    --connections) CONNECTIONS="$2"; shift ;;
    --rows) ROWS="$2"; shift ;;
    --quick) SECONDS_PER_RUN=3; ROWS=100000 ;;
    --no-peer) PEER=0 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

source bench/lib.sh
need wrk wrk
need curl curl
need python3 python3
[ -z "$PG_URL" ] || need psql postgresql-client
if [ "$PEER" = 1 ] && { [ ! -f "$PEER_SRC/run-peer.sh" ] || ! command -v npm >/dev/null; }; then
  echo "bench/run.sh: no peer (needs $PEER_SRC and npm); running without it" >&2
  PEER=0
fi

echo "building (release)…" >&2
cargo build --release --locked --quiet
BIN="$PWD/target/release/latchkey"
PORT=18490
BASE="http://127.0.0.1:$PORT"
WORK=$(mktemp -d)
SERVER=""
PEER_PID=""
cleanup() {
  [ -z "$SERVER" ] || kill "$SERVER" 2>/dev/null || true
  [ -z "$PEER_PID" ] || kill "$PEER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

export LATCHKEY_DATA_DIR="$WORK/data" LATCHKEY_LOG=warn LATCHKEY_KEY_REFRESH=1 \
  LATCHKEY_ISSUER="$BASE"
if [ -n "$PG_URL" ]; then
  DB=latchkey_bench
  psql -q "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
  export LATCHKEY_DATABASE_URL="$PG_URL/$DB"
  BACKEND="PostgreSQL"
else
  BACKEND="SQLite"
fi

# ---- the machine's floors, with the libraries the server uses
echo "measuring this machine's signing and argon2 floors…" >&2
FLOOR=$("$PWD/target/release/latchkey-floor" 3)
floor() { printf '%s\n' "$FLOOR" | sed -n "s/^$1=//p"; }
RS256_FLOOR=$(floor rs256_sign_per_s)
ES256_FLOOR=$(floor es256_sign_per_s)
ARGON2_FLOOR=$(floor argon2id_verify_per_s)

# ---- set-up through the CLI
PASSWORD='bench password 1'
printf '%s\n' "$PASSWORD" | "$BIN" user create --username bench --name Bench >/dev/null
REDIRECT="http://127.0.0.1:9/callback"
CLIENT=$("$BIN" client create --owner bench --name Bench --json --redirect-uri "$REDIRECT" \
  --grant-type client_credentials --grant-type refresh_token --grant-type password \
  --grant-type authorization_code)
ID=$(json_field "$CLIENT" client_id)
SECRET=$(json_field "$CLIENT" client_secret)
BASIC=$(printf '%s:%s' "$ID" "$SECRET" | base64 -w0)

start_server() {
  "$BIN" serve --bind "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
  SERVER=$!
  TARGET=$SERVER
  for _ in $(seq 200); do
    curl -sf "$BASE/readyz" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "the server did not start:" >&2; cat "$WORK/server.log" >&2; exit 1
}
stop_server() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""; }
# The process the scenarios measure and where it listens: Latchkey, or the peer at the end.
TARGET=""
TARGET_BASE="$BASE"
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$TARGET/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$TARGET/stat"; }
TICKS=$(getconf CLK_TCK)

start_server
sleep 1
IDLE_RSS=$(rss_kib)

token_form() {
  curl -sf -X POST "$BASE/oauth/token" -H "Authorization: Basic $BASIC" -d "grant_type=client_credentials" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
ACCESS=$(token_form)

# ---- wrk scripts
cat > "$WORK/cc-form.lua" <<LUA
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $BASIC"
LUA
cat > "$WORK/cc-json.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"grantType":"client_credentials"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic $BASIC"
LUA
cat > "$WORK/password.lua" <<LUA
wrk.method = "POST"
wrk.body = "grant_type=password&username=bench&password=bench+password+1"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $BASIC"
LUA
cat > "$WORK/introspect.lua" <<LUA
wrk.method = "POST"
wrk.body = "token=$ACCESS"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $BASIC"
LUA
cat > "$WORK/profile.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $ACCESS"
LUA
: > "$WORK/jwks.lua"
# Refresh tokens rotate: each wrk thread keeps a queue of live tokens, spends one per request
# and queues the one that comes back. Seeded with twice the connections, so it never runs dry.
cat > "$WORK/refresh.lua" <<LUA
local counter = 1
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  tokens = {}
  for line in io.lines("$WORK/refresh-" .. id .. ".txt") do table.insert(tokens, line) end
end
function request()
  local token = table.remove(tokens, 1) or "exhausted"
  return wrk.format("POST", "/oauth/token", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = "Basic $BASIC",
  }, "grant_type=refresh_token&refresh_token=" .. token)
end
function response(status, headers, body)
  local token = body:match('"refresh_token":"([^"]+)"')
  if token then table.insert(tokens, token) end
end
LUA
seed_refresh_tokens() {
  for thread in 1 2; do
    : > "$WORK/refresh-$thread.txt"
    for _ in $(seq "$CONNECTIONS"); do
      curl -sf -X POST "$BASE/v1/token" -H "Authorization: Basic $BASIC" \
        -H 'Content-Type: application/json' -d '{"grantType":"client_credentials"}' \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["refreshToken"])' >> "$WORK/refresh-$thread.txt"
    done
  done
}

RESULTS="$WORK/results.tsv"
: > "$RESULTS"
# run NAME PATH SCRIPT [FLOOR] [CONNECTIONS]: one wrk run; appends a row to the results.
run() {
  local name=$1 path=$2 script=$3 floor=${4:-} connections=${5:-$CONNECTIONS}
  echo 5 > "/proc/$TARGET/clear_refs" 2>/dev/null || true # reset the peak RSS
  local t0 c0 t1 c1 w0 w1
  t0=$(date +%s.%N); c0=$(cpu_ticks); children_cpu w0
  wrk -t2 -c"$connections" -d"${SECONDS_PER_RUN}s" --timeout 10s --latency -s "$WORK/$script" \
    "$TARGET_BASE$path" > "$WORK/wrk.out" 2>&1
  t1=$(date +%s.%N); c1=$(cpu_ticks); children_cpu w1
  local rps p50 p99 total non2xx socket peak cpu wrk_cpu fraction
  rps=$(awk '/^Requests\/sec/ {print $2}' "$WORK/wrk.out")
  p50=$(awk '$1 == "50%" {print $2}' "$WORK/wrk.out")
  p99=$(awk '$1 == "99%" {print $2}' "$WORK/wrk.out")
  total=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$WORK/wrk.out"); non2xx=${non2xx:-0}
  socket=$(awk -F'[ ,]+' '/Socket errors/ {print $4 + $6 + $8 + $10}' "$WORK/wrk.out"); socket=${socket:-0}
  peak=$(awk '/^VmHWM/ {printf "%.1f", $2/1024}' "/proc/$TARGET/status")
  cpu=$(awk -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v hz="$TICKS" \
    'BEGIN {printf "%.0f%%", 100 * (c1 - c0) / hz / (t1 - t0)}')
  wrk_cpu=$(awk -v w0="$w0" -v w1="$w1" -v t0="$t0" -v t1="$t1" \
    'BEGIN {printf "%.0f%%", 100 * (w1 - w0) / (t1 - t0)}')
  fraction="-"
  [ -z "$floor" ] || fraction=$(awk -v r="$rps" -v f="$floor" 'BEGIN {printf "%.0f%%", 100 * r / f}')
  local tail
  tail=$(awk -v a="$p50" -v b="$p99" 'function ms(t) {
      if (t ~ /us$/) return t / 1000; if (t ~ /ms$/) return t + 0; if (t ~ /s$/) return t * 1000; return t }
    BEGIN {if (ms(a) > 0) printf "%.1f", ms(b) / ms(a); else print "-"}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$rps" "$p50" "$p99" \
    "$((non2xx + socket))/$total" "$peak" "$cpu" "$fraction" "$tail" "$wrk_cpu" >> "$RESULTS"
  echo "done: $name ($rps req/s)" >&2
  # Requests wrk gave up on may still be queued in the server (argon2 takes seconds under load):
  # let them drain so they are not charged to the next scenario.
  sleep 3
}

run "client_credentials, form (RS256)" /oauth/token cc-form.lua "$RS256_FLOOR"
run "client_credentials, JSON + refresh token (RS256)" /v1/token cc-json.lua "$RS256_FLOOR"
seed_refresh_tokens
run "refresh_token (RS256, rotation)" /oauth/token refresh.lua "$RS256_FLOOR"
# Four connections: every sign-in takes one of the account's five places in its lockout budget
# before argon2 runs (auth/throttle.rs), so more than five at once for the one `bench` account
# would be refused as locked; four keep the argon2 queue of a 2-core machine full.
run "password (argon2id-bound)" /oauth/token password.lua "$ARGON2_FLOOR" 4
run "introspection" /oauth/introspect introspect.lua
run "/v1/user/profile" /v1/user/profile profile.lua
run "JWKS" /.well-known/jwks.json jwks.lua

# ---- the authorization-code flow, with its SQL statements
FLOWS=$(python3 bench/flow.py "$BASE" "$ID" "$SECRET" "$REDIRECT" bench "$PASSWORD" 3)

# ---- a million tokens already in the database
echo "inserting $ROWS token rows…" >&2
EMPTY_RPS=$(awk -F'\t' 'NR == 1 {print $2}' "$RESULTS")
if [ -n "$PG_URL" ]; then
  psql -q "$LATCHKEY_DATABASE_URL" -c "INSERT INTO client_access_tokens
      (client_id, user_id, access_token, grant_type, scope, audience, expired_at, created_at)
    SELECT c.id, c.user_id, md5(g::text) || md5('x' || g::text), 'client_credentials',
      'get_user_profile', '$BASE', now() + interval '1 hour', now()
    FROM generate_series(1, $ROWS) g, (SELECT id, user_id FROM clients LIMIT 1) c" -c "VACUUM ANALYZE client_access_tokens" >/dev/null
else
  python3 bench/rows.py "$WORK/data/latchkey.db" "$ROWS" "$BASE"
fi
run "client_credentials, form, $ROWS more rows" /oauth/token cc-form.lua "$RS256_FLOOR"
FULL_RPS=$(awk -F'\t' 'END {print $2}' "$RESULTS")

# ---- ES256: rotate while serving; the server picks the key up within LATCHKEY_KEY_REFRESH (1 s)
"$BIN" keys rotate --alg ES256 >/dev/null
sleep 2.5
run "client_credentials, form (ES256)" /oauth/token cc-form.lua "$ES256_FLOOR"

stop_server

# ---- the peer: node-oidc-provider under the same load, Latchkey stopped
PEER_RS256=""
PEER_ES256=""
if [ "$PEER" = 1 ]; then
  cp -r "$PEER_SRC" "$WORK/peer"
  rm -rf "$WORK/peer/node_modules"
  echo "installing the peer (npm ci)…" >&2
  "$WORK/peer/run-peer.sh" install >/dev/null 2>&1 || { echo "bench/run.sh: npm ci of the peer failed" >&2; PEER=0; }
fi
if [ "$PEER" = 1 ]; then
  PEER_PORT=18491
  TARGET_BASE="http://127.0.0.1:$PEER_PORT"
  cat > "$WORK/cc-peer.lua" <<LUA
wrk.method = "POST"
wrk.body = "grant_type=client_credentials&scope=get_user_profile"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $(printf 'bench:benchsecret' | base64 -w0)"
LUA
  for variant in rs256 es256; do
    PEER_PID=$(PEER_LOG="$WORK/peer-$variant.log" "$WORK/peer/run-peer.sh" start "$PEER_PORT" "$variant")
    TARGET=$PEER_PID
    curl -sf -X POST "$TARGET_BASE/token" -u bench:benchsecret \
      -d grant_type=client_credentials -d scope=get_user_profile | grep -q access_token \
      || { echo "bench/run.sh: the peer issues no token" >&2; exit 1; }
    upper=$(printf '%s' "$variant" | tr a-z A-Z)
    floor_var="${upper}_FLOOR"
    run "node-oidc-provider: client_credentials ($upper)" /token cc-peer.lua "${!floor_var}"
    declare "PEER_$upper=$(awk -F'\t' 'END {print $2}' "$RESULTS")"
    "$WORK/peer/run-peer.sh" stop "$PEER_PID" 2>/dev/null
    PEER_PID=""
  done
fi

# ---- ready after start on an existing database
READY_MS=$(python3 - "$BIN" "$PORT" <<'PY'
import socket, subprocess, sys, time
binary, port = sys.argv[1], int(sys.argv[2])
start = time.perf_counter()
proc = subprocess.Popen([binary, "serve", "--bind", "127.0.0.1:%d" % port],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while time.perf_counter() - start < 30:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if s.recv(64).startswith(b"HTTP/1.1 200"):
                print("%.0f" % ((time.perf_counter() - start) * 1000))
                break
    except OSError:
        time.sleep(0.002)
proc.terminate()
proc.wait()
PY
)

# ---- the report
echo
echo "## Latchkey benchmark: $BACKEND, $CONNECTIONS connections, ${SECONDS_PER_RUN}s per scenario"
echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); wrk on the same machine."
echo "Floors (all cores, aws-lc-rs / argon2 as the server uses them): RS256 $RS256_FLOOR signatures/s, ES256 $ES256_FLOOR signatures/s, argon2id (m=19456, t=2, p=1) $ARGON2_FLOOR verifies/s."
echo
echo "| scenario | req/s | p50 | p99 | p99/p50 | errors/requests | peak RSS MiB | server CPU | wrk CPU | of floor | to peer |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
# A Latchkey client_credentials scenario's ratio to the peer signing with the same algorithm.
awk -F'\t' -v rs="$PEER_RS256" -v es="$PEER_ES256" '{
    peer = "-"
    if ($1 ~ /^client_credentials/ && $1 ~ /RS256/ && rs > 0) peer = sprintf("%.2f×", $2 / rs)
    if ($1 ~ /^client_credentials/ && $1 ~ /ES256/ && es > 0) peer = sprintf("%.2f×", $2 / es)
    if ($1 ~ /^client_credentials, form, / && rs > 0) peer = sprintf("%.2f×", $2 / rs)
    printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $9, $5, $6, $7, $10, $8, peer
  }' "$RESULTS"
echo
awk -v e="$EMPTY_RPS" -v f="$FULL_RPS" -v n="$ROWS" \
  'BEGIN {printf "With %d more token rows: %.0f%% of the empty-database client_credentials throughput.\n", n, 100 * f / e}'
echo "Idle RSS after start: $(awk -v k="$IDLE_RSS" 'BEGIN {printf "%.1f", k/1024}') MiB. Ready (GET /readyz = 200) ${READY_MS} ms after start on an existing database."
echo "Authorization-code flow (authorize, login page, sign in, consent, allow, token), SQL statements per flow:"
printf '%s\n' "$FLOWS" | sed 's/^/  /'
