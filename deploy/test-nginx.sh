#!/usr/bin/env bash
# Runs deploy/nginx-latchkey.conf for real: two instances on one PostgreSQL behind nginx. Checks
# that tokens are issued through the balancer, that a token from one instance is accepted by
# the other, that requests keep succeeding when one instance stops, that /metrics is not
# reachable through nginx, and that a burst at the token endpoint far over the example's
# limit_req is answered 429 by nginx (while the ordinary traffic above never is). Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${LATCHKEY_BIN:-$PWD/target/debug/latchkey}"
PG="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

WORK=$(mktemp -d)
SCHEMA="nginx_ci_$$"
P1=18781 P2=18782 LB=18780 M1=18783 M2=18784
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
export LATCHKEY_TRUSTED_PROXIES=127.0.0.1 LATCHKEY_WORKERS=1

"$BIN" migrate
# Each instance its own metrics listener (the default, 127.0.0.1:9464, fits one per machine).
"$BIN" serve --bind "127.0.0.1:$P1" --metrics-bind "127.0.0.1:$M1" & PIDS+=($!); A=$!
"$BIN" serve --bind "127.0.0.1:$P2" --metrics-bind "127.0.0.1:$M2" & PIDS+=($!)

sed -e "s/127.0.0.1:8081/127.0.0.1:$P1/" -e "s/127.0.0.1:8082/127.0.0.1:$P2/" -e "s/listen 80;/listen 127.0.0.1:$LB;/" \
  deploy/nginx-latchkey.conf > "$WORK/latchkey.conf"
mkdir -p "$WORK/logs"
cat > "$WORK/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/logs/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $WORK/body;
  proxy_temp_path $WORK/proxy;
  include $WORK/latchkey.conf;
}
CONF
"$NGINX" -t -p "$WORK" -c "$WORK/nginx.conf" 2>/dev/null
"$NGINX" -p "$WORK" -c "$WORK/nginx.conf"

for port in $P1 $P2 $LB; do
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { echo "FAIL: port $port not ready" >&2; exit 1; }
done

printf '%s\n' 'nginx test password' | "$BIN" user create --username nginxci --name "nginx CI" >/dev/null
CLIENT=$("$BIN" client create --owner nginxci --name "Behind nginx" --json)
ID=$(printf '%s' "$CLIENT" | sed -E 's/.*"client_id":"([^"]+)".*/\1/')
SECRET=$(printf '%s' "$CLIENT" | sed -E 's/.*"client_secret":"([^"]+)".*/\1/')
token() { curl -sf -u "$ID:$SECRET" -d grant_type=client_credentials "http://127.0.0.1:$1/oauth/token"; }

ok=0
for _ in $(seq 1 10); do token "$LB" | grep -q access_token && ok=$((ok + 1)); done
[ "$ok" = 10 ] || { echo "FAIL: $ok/10 token requests through nginx" >&2; exit 1; }

# A token from instance 1 is accepted by instance 2.
T=$(token "$P1" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
curl -sf -H "Authorization: Bearer $T" "http://127.0.0.1:$P2/v1/user/profile" | grep -q '"username":"nginxci"' \
  || { echo "FAIL: instance 2 refused a token from instance 1" >&2; exit 1; }

# One instance stops: the balancer keeps answering through the other.
kill -TERM "$A"; wait "$A" 2>/dev/null || true
ok=0
for _ in $(seq 1 10); do token "$LB" | grep -q access_token && ok=$((ok + 1)); done
[ "$ok" = 10 ] || { echo "FAIL: $ok/10 token requests after one instance stopped" >&2; cat "$WORK/logs/error.log" >&2; exit 1; }

# /metrics is never served through nginx: nginx itself answers 404 (its own page, so the
# location in the example is what refuses it, whatever the instances behind would answer).
for path in /metrics //metrics /metrics?x=1; do
  code=$(curl -s -o "$WORK/metrics" -w '%{http_code}' --path-as-is "http://127.0.0.1:$LB$path")
  [ "$code" = 404 ] && grep -q '<center>nginx' "$WORK/metrics" \
    || { echo "FAIL: $path through nginx answered $code, not nginx's 404" >&2; exit 1; }
done

# The token endpoint's limit_req (20 r/s, burst 50): 300 requests back to back on one connection
# from one address, far over it, must meet nginx's 429; the first ones must not. Last, because
# it leaves the bucket full for a few seconds. No credentials: nginx counts before Latchkey reads.
BURST=$WORK/burst
for path in /oauth/token /v1/token; do
  urls=()
  for _ in $(seq 1 150); do urls+=("http://127.0.0.1:$LB$path"); done
  # Status codes to one file (curl's %{stderr}), the bodies to another.
  curl -s -w '%{stderr}%{http_code}\n' -d grant_type=client_credentials "${urls[@]}" >> "$WORK/bodies" 2>> "$BURST"
done
[ "$(wc -l < "$BURST")" = 300 ] || { echo "FAIL: $(wc -l < "$BURST") answers to 300 requests" >&2; exit 1; }
limited=$(grep -c '^429$' "$BURST" || true)
first=$(head -n 20 "$BURST" | grep -c '^429$' || true)
[ "$limited" -gt 0 ] || { echo "FAIL: no 429 in 300 token requests at once; codes: $(sort "$BURST" | uniq -c | tr '\n' ' ')" >&2; exit 1; }
[ "$first" = 0 ] || { echo "FAIL: the first 20 requests of the burst met the limit" >&2; exit 1; }
# Each 429 is nginx's own page (Latchkey never answers 429).
pages=$(grep -c '<title>429 Too Many Requests</title>' "$WORK/bodies" || true)
[ "$pages" = "$limited" ] || { echo "FAIL: $limited answers 429, of which $pages nginx's page" >&2; exit 1; }
# Other paths are not counted: the discovery document still answers while the bucket is full.
curl -sf "http://127.0.0.1:$LB/.well-known/openid-configuration" >/dev/null \
  || { echo "FAIL: a path other than the token endpoint was limited" >&2; exit 1; }

echo "nginx: 10/10 tokens through the balancer, cross-instance token accepted, 10/10 with one instance down,"
echo "nginx: /metrics 404 through nginx; a burst of 300 token requests: $(sort "$BURST" | uniq -c | awk '{printf "%s%s x %s", sep, $2, $1; sep=", "}') (429 from nginx's limit_req)"
