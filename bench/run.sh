#!/usr/bin/env bash
# Latchkey's benchmark: one command, one table.
#
#   bench/run.sh [--postgres [URL]] [--seconds N] [--connections N] [--rows N] [--quick] [--no-peer]
#                [--only NAME,...]
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
# Scenarios, by the names --only takes (default: all, in this order):
#   cc-form     client_credentials, RFC form dialect, client_secret_basic (RS256)
#   cc-json     client_credentials, Revenue Monster JSON dialect, with a refresh token (RS256)
#   refresh     refresh_token with rotation (RS256)
#   password    password grant (argon2-bound, compared with the machine's argon2id verify rate)
#   introspect  introspection
#   profile     /v1/user/profile
#   jwks        JWKS
#   flow        the authorization-code flow's SQL statements (bench/flow.py)
#   rows        cc-form with --rows (1,000,000) existing tokens (its ratio needs cc-form)
#   es256       cc-form with an ES256 server key
#   dpop        client_credentials with private_key_jwt + DPoP, ES256 like the es256 row it is
#               compared with (so --only dpop runs es256 too): each request a fresh client
#               assertion and a fresh DPoP proof (bench/dpop_material.py makes them before the
#               run, sized from the es256 row's rate; each wrk thread spends its own file, never
#               one twice), so the difference is two ES256 verifications and two single-use
#               jti rows; a note gives the server CPU per request against the es256 row
#   peer        node-oidc-provider (below)
#
# The peer: in the same run, node-oidc-provider (../shared/peer, copied to a temporary folder
# and installed with npm there) serves client_credentials with RS256 and with ES256 JWTs under
# the same wrk load, after Latchkey has stopped; each Latchkey client_credentials scenario is
# also printed as a ratio to the peer of its algorithm (not dpop: the peer's client uses a
# secret). --no-peer leaves it out; LATCHKEY_PEER names another copy of the peer's folder.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_RUN=10
CONNECTIONS=64
ROWS=1000000
PG_URL=""
PEER_SRC="${LATCHKEY_PEER:-$PWD/../shared/peer}"
PEER=1
ONLY="" # ",name,name," from --only; empty: every scenario
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
    --only) ONLY=",$2,"; shift ;;
    -h|--help) sed -n '2,/^set -euo pipefail/{/^#/p}' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

for name in ${ONLY//,/ }; do
  case "$name" in
    cc-form|cc-json|refresh|password|introspect|profile|jwks|flow|rows|es256|dpop|peer) ;;
    *) echo "bench/run.sh: unknown scenario $name for --only (see --help)" >&2; exit 2 ;;
  esac
done
# want NAME: whether scenario NAME runs.
want() { [ -z "$ONLY" ] || [[ "$ONLY" == *",$1,"* ]]; }
# The dpop row is sized from, and compared with, the plain ES256 row just before it.
if want dpop && ! want es256; then
  echo "bench/run.sh: --only dpop runs es256 as well (its comparison and its sizing)" >&2
  ONLY="$ONLY,es256,"
fi
want peer || PEER=0

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
# LATCHKEY_BIN: another build of the server to measure (an older commit's, to compare); the
# signing floor is still this tree's.
BIN="${LATCHKEY_BIN:-$PWD/target/release/latchkey}"
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

METRICS="http://127.0.0.1:18492"
export LATCHKEY_DATA_DIR="$WORK/data" LATCHKEY_LOG=warn LATCHKEY_KEY_REFRESH=1 \
  LATCHKEY_ISSUER="$BASE" LATCHKEY_METRICS_BIND=127.0.0.1:18492
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
# The key-based client of the dpop row: its ES256 key as its JWKS (bench/dpop_material.py keys),
# --dpop so that a token request without a proof is refused (each 200 is a bound token).
if want dpop; then
  # `cryptography` signs the material; the same pinned joserfc as tests/interop/run.sh brings it.
  python3 -c 'import cryptography' 2>/dev/null || PIP_ROOT_USER_ACTION=ignore python3 -m pip install \
    --quiet --disable-pip-version-check 'joserfc==1.8.0'
  python3 bench/dpop_material.py keys "$WORK"
  DPOP_CLIENT=$("$BIN" client create --owner bench --name "Bench DPoP" --json \
    --auth-method private_key_jwt --jwks-file "$WORK/client-jwks.json" \
    --grant-type client_credentials --dpop)
  DPOP_ID=$(json_field "$DPOP_CLIENT" client_id)
fi

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
# private_key_jwt + DPoP: each wrk thread (its own Lua state) reads its own file of pairs made by
# bench/dpop_material.py and spends one pair per request, in order, never one twice (wrk calls
# request() again for a request it has to resend on a new connection). A thread that runs out
# sends "exhausted" (refused, so counted as an error) and says how often in done().
cat > "$WORK/dpop.lua" <<LUA
local counter = 1
local threads = {}
function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end
function init(args)
  pairs_ = {}
  for line in io.lines("$WORK/dpop-" .. id .. ".txt") do table.insert(pairs_, line) end
  used = 0
  exhausted = 0
end
local body = "grant_type=client_credentials&client_assertion_type=" ..
  "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion="
function request()
  used = used + 1
  local line = pairs_[used]
  local assertion, proof = "exhausted", "exhausted"
  if line then
    assertion, proof = line:match("^(%S+) (%S+)$")
    pairs_[used] = nil
  else
    exhausted = exhausted + 1
  end
  return wrk.format("POST", "/oauth/token", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["DPoP"] = proof,
  }, body .. assertion)
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("exhausted") end
  io.write("dpop pairs exhausted: " .. total .. "\n")
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

PLAIN_FORM="client_credentials, form (RS256)"
want cc-form && run "$PLAIN_FORM" /oauth/token cc-form.lua "$RS256_FLOOR"
want cc-json && run "client_credentials, JSON + refresh token (RS256)" /v1/token cc-json.lua "$RS256_FLOOR"
if want refresh; then
  seed_refresh_tokens
  run "refresh_token (RS256, rotation)" /oauth/token refresh.lua "$RS256_FLOOR"
fi
# Four connections: every sign-in takes one of the account's five places in its lockout budget
# before argon2 runs (auth/throttle.rs), so more than five at once for the one `bench` account
# would be refused as locked; four keep the argon2 queue of a 2-core machine full.
want password && run "password (argon2id-bound)" /oauth/token password.lua "$ARGON2_FLOOR" 4
want introspect && run "introspection" /oauth/introspect introspect.lua
want profile && run "/v1/user/profile" /v1/user/profile profile.lua
want jwks && run "JWKS" /.well-known/jwks.json jwks.lua

# ---- the authorization-code flow, with its SQL statements
FLOWS=""
want flow && FLOWS=$(python3 bench/flow.py "$BASE" "$ID" "$SECRET" "$REDIRECT" bench "$PASSWORD" 3 "$METRICS")

# req/s of the row named NAME, empty if it did not run.
rps_of() { awk -F'\t' -v n="$1" '$1 == n {print $2}' "$RESULTS"; }

# ---- a million tokens already in the database
EMPTY_RPS=$(rps_of "$PLAIN_FORM")
FULL_RPS=""
if want rows; then
  echo "inserting $ROWS token rows…" >&2
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
fi

# ---- ES256: rotate while serving; the server picks the key up within LATCHKEY_KEY_REFRESH (1 s)
PLAIN_ES256="client_credentials, form (ES256)"
DPOP_ROW="client_credentials, private_key_jwt + DPoP (ES256)"
DPOP_EXHAUSTED=0 # requests a wrk thread sent without a pair of its own
DPOP_ERRORS=0    # non-200 answers in the dpop row: a pair refused (stale, reused) or none left
if want es256; then
  "$BIN" keys rotate --alg ES256 >/dev/null
  sleep 2.5
  run "$PLAIN_ES256" /oauth/token cc-form.lua "$ES256_FLOOR"
fi

# ---- private_key_jwt + DPoP, against the plain ES256 row just before it. FAPI 2.0 allows the
# server no RS256, and with RS256 the server's own signature would hide the extra cost.
if want dpop; then
  # Pairs for 1.5 times what the plain row reached in as long a run, plus a request per
  # connection in flight: this row does strictly more per request than the plain one, so it
  # cannot go faster, and 1.5 covers one run to the next on a noisy machine.
  PAIRS=$(awk -v r="$(rps_of "$PLAIN_ES256")" -v s="$SECONDS_PER_RUN" -v c="$CONNECTIONS" \
    'BEGIN {printf "%d", r * s * 1.5 + 2 * c}')
  echo "signing $PAIRS client assertions and DPoP proofs…" >&2
  DPOP_T0=$(date +%s)
  VALID_UNTIL=$(python3 bench/dpop_material.py pairs "$WORK" "$DPOP_ID" "$BASE/oauth/token" "$PAIRS" 2)
  echo "  in $(( $(date +%s) - DPOP_T0 )) s" >&2
  # One pair before the run: a DPoP token whose cnf.jkt is the thumbprint of the proof key.
  read -r CHECK_ASSERTION CHECK_PROOF < "$WORK/dpop-check.txt"
  curl -sf -X POST "$BASE/oauth/token" -H "DPoP: $CHECK_PROOF" -d grant_type=client_credentials \
    -d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \
    -d client_assertion="$CHECK_ASSERTION" \
    | python3 -c '
import base64, json, sys
token = json.load(sys.stdin)
claims = json.loads(base64.urlsafe_b64decode(token["access_token"].split(".")[1] + "=="))
jkt = open(sys.argv[1]).read().strip()
kind, cnf = token["token_type"], claims.get("cnf", {})
assert kind == "DPoP", f"token_type {kind}, not DPoP"
assert cnf.get("jkt") == jkt, f"cnf {cnf}, not the thumbprint of the proof key {jkt}"
' "$WORK/dpop.jkt" || { echo "bench/run.sh: the private_key_jwt + DPoP pair before the run got no bound token" >&2; exit 1; }
  # Every proof's iat must stay within the server's window until the run ends.
  if [ $(( $(date +%s) + SECONDS_PER_RUN + 2 )) -gt "$VALID_UNTIL" ]; then
    echo "bench/run.sh: signing the DPoP proofs took too long: they would be stale before the end of a ${SECONDS_PER_RUN} s run (try fewer --seconds)" >&2
    exit 1
  fi
  run "$DPOP_ROW" /oauth/token dpop.lua "$ES256_FLOOR"
  DPOP_EXHAUSTED=$(awk '/^dpop pairs exhausted:/ {print $NF}' "$WORK/wrk.out")
  DPOP_ERRORS=$(awk -F'\t' -v n="$DPOP_ROW" '$1 == n {split($5, e, "/"); print e[1]}' "$RESULTS")
fi

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
    if ($1 ~ /^client_credentials/ && $1 ~ /ES256/ && $1 !~ /DPoP/ && es > 0) peer = sprintf("%.2f×", $2 / es)
    if ($1 ~ /^client_credentials, form, / && rs > 0) peer = sprintf("%.2f×", $2 / rs)
    printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $9, $5, $6, $7, $10, $8, peer
  }' "$RESULTS"
echo
[ -z "$EMPTY_RPS" ] || [ -z "$FULL_RPS" ] || awk -v e="$EMPTY_RPS" -v f="$FULL_RPS" -v n="$ROWS" \
  'BEGIN {printf "With %d more token rows: %.0f%% of the empty-database client_credentials throughput.\n", n, 100 * f / e}'
# The dpop row against the plain ES256 row: throughput, and the server's CPU time per request
# (its CPU share over the run divided by the requests per second), whose difference is what the
# assertion and the proof cost: two ES256 verifications, the proof key's thumbprint and two
# single-use jti rows written.
if want dpop; then
  awk -F'\t' -v plain="$PLAIN_ES256" -v dpop="$DPOP_ROW" '
    $1 == plain {pr = $2; pc = $7 + 0} $1 == dpop {dr = $2; dc = $7 + 0}
    END {
      if (pr > 0 && dr > 0) printf "private_key_jwt + DPoP against the plain ES256 row: %.0f%% of its req/s; server CPU per request %.0f µs against %.0f µs, +%.0f µs for the client assertion and the DPoP proof (two ES256 verifications, two single-use jti rows).\n", 100 * dr / pr, 10000 * dc / dr, 10000 * pc / pr, 10000 * dc / dr - 10000 * pc / pr
    }' "$RESULTS"
fi
echo "Idle RSS after start: $(awk -v k="$IDLE_RSS" 'BEGIN {printf "%.1f", k/1024}') MiB. Ready (GET /readyz = 200) ${READY_MS} ms after start on an existing database."
if [ -n "$FLOWS" ]; then
  echo "Authorization-code flow (authorize, login page, sign in, consent, allow, token), SQL statements per flow:"
  printf '%s\n' "$FLOWS" | sed 's/^/  /'
fi
# Every request of the dpop row must have had its own fresh pair and been answered 200: a
# refused pair means the row measured refusals, not tokens.
if [ "${DPOP_EXHAUSTED:-missing}" != 0 ] || [ "${DPOP_ERRORS:-missing}" != 0 ]; then
  echo "bench/run.sh: the private_key_jwt + DPoP row is not valid: ${DPOP_ERRORS:-unknown} errors, ${DPOP_EXHAUSTED:-an unknown number of} requests without a pair of their own (any other error is a pair refused: stale or used before)" >&2
  exit 1
fi
