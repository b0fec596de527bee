#!/usr/bin/env bash
# Where the server's CPU goes under client_credentials load: a sampling profile (perf) of the
# release server while wrk drives /oauth/token, once with an RS256 key and once with ES256.
#
#   bench/profile.sh [--seconds N] [--connections N] [--top N] [--rows N]
#
# With --rows N, a third profile, between the two: RS256 again once N token rows are loaded
# (bench/rows.py), to see what a full table costs a token.
#
# SQLite, a fresh data folder, wrk on the same machine (as in bench/run.sh). For each algorithm
# it prints the throughput, the server's and wrk's CPU, the share of the server's samples per
# shared object (kernel, latchkey, libc) and the top symbols. The release binary has no frame
# pointers, so there are no call graphs: symbols are self cost. Needs perf (linux-perf) and wrk.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_RUN=8
CONNECTIONS=64
TOP=25
ROWS=0
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_PER_RUN="$2"; shift ;;
    --connections) CONNECTIONS="$2"; shift ;;
    --top) TOP="$2"; shift ;;
    --rows) ROWS="$2"; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "bench/profile.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

source bench/lib.sh
need wrk wrk
need perf linux-perf
need curl curl
need python3 python3

echo "building (release)…" >&2
cargo build --release --locked --quiet --bin latchkey
BIN="$PWD/target/release/latchkey"
PORT=18492
BASE="http://127.0.0.1:$PORT"
WORK=$(mktemp -d)
SERVER=""
cleanup() {
  [ -z "$SERVER" ] || kill "$SERVER" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
export LATCHKEY_METRICS_BIND=127.0.0.1:0
export LATCHKEY_DATA_DIR="$WORK/data" LATCHKEY_LOG=warn LATCHKEY_KEY_REFRESH=1 \
  LATCHKEY_ISSUER="$BASE"

printf '%s\n' 'profile password 1' | "$BIN" user create --username profile --name Profile >/dev/null
CLIENT=$("$BIN" client create --owner profile --name Profile --json \
  --redirect-uri http://127.0.0.1:9/callback --grant-type client_credentials)
BASIC=$(printf '%s:%s' "$(json_field "$CLIENT" client_id)" "$(json_field "$CLIENT" client_secret)" | base64 -w0)
cat > "$WORK/cc.lua" <<LUA
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $BASIC"
LUA

"$BIN" serve --bind "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 200); do
  curl -sf "$BASE/readyz" >/dev/null 2>&1 && break
  sleep 0.05
done
curl -sf "$BASE/readyz" >/dev/null || { cat "$WORK/server.log" >&2; exit 1; }

TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# The first N lines of standard input, reading all of it (no SIGPIPE under pipefail).
first() { awk -v n="$1" 'NR <= n'; }

# profile NAME: warm up, then wrk and perf over the same seconds.
profile() {
  local name=$1
  wrk -t2 -c"$CONNECTIONS" -d2s -s "$WORK/cc.lua" "$BASE/oauth/token" >/dev/null
  local t0 c0 t1 c1 w0 w1
  t0=$(date +%s.%N); c0=$(cpu_ticks "$SERVER"); children_cpu w0
  wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -s "$WORK/cc.lua" \
    "$BASE/oauth/token" > "$WORK/wrk.out" 2>&1 &
  local load=$!
  perf record -q -e cpu-clock -F 1999 -p "$SERVER" -o "$WORK/${name// /-}.data" -- \
    sleep "$SECONDS_PER_RUN" 2>/dev/null
  wait "$load"
  t1=$(date +%s.%N); c1=$(cpu_ticks "$SERVER"); children_cpu w1
  echo
  echo "## client_credentials ($name): $(awk '/^Requests\/sec/ {print $2}' "$WORK/wrk.out") req/s"
  awk -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v hz="$TICKS" -v w0="$w0" -v w1="$w1" \
    -v cores="$(nproc)" 'BEGIN {printf "server CPU %.0f%%, wrk CPU %.0f%% (of %d%%)\n",
      100 * (c1 - c0) / hz / (t1 - t0), 100 * (w1 - w0) / (t1 - t0), 100 * cores}'
  echo
  echo "### share of the server's samples by object"
  perf report -i "$WORK/${name// /-}.data" --no-children --sort dso --stdio 2>/dev/null \
    | grep -E '^ +[0-9]' | first 8
  echo
  echo "### top $TOP symbols (self)"
  perf report -i "$WORK/${name// /-}.data" --no-children --sort dso,sym --stdio 2>/dev/null \
    | grep -E '^ +[0-9]' | first "$TOP"
}

profile RS256
if [ "$ROWS" -gt 0 ]; then
  echo "inserting $ROWS token rows…" >&2
  python3 bench/rows.py "$WORK/data/latchkey.db" "$ROWS" "$BASE"
  profile "RS256, $ROWS more rows"
fi
"$BIN" keys rotate --alg ES256 >/dev/null
sleep 2.5
profile ES256
