#!/usr/bin/env bash
# Fuzzes a fresh Latchkey server against its own OpenAPI description (docs/openapi.json, served
# at /openapi.json) with schemathesis: the given binary (default target/debug/latchkey, as
# `cargo test` built it), SQLite in a temporary data folder, on a free local port. A merchant
# and a confidential client are made with the CLI, and a client_credentials access token with
# scopes get_user_profile, openid and email is fetched, so that schemathesis reaches the
# authenticated answers too: tests/schemathesis/schemathesis.toml gives each operation the
# credentials its security scheme names (Basic for the client endpoints, the bearer token for
# the resources). Any 5xx, or any answer whose status, content type, headers or body the
# description does not give, fails the run. Installs schemathesis (pinned) with pip if missing.
#
#   bash tests/schemathesis/run.sh [LATCHKEY_BINARY [SCHEMATHESIS_RUN_OPTIONS...]]
#
# Further options go to `schemathesis run` (`--report har --report-dir DIR` keeps every
# request and answer).
#
# MAX_EXAMPLES (default 100) sets the test cases per operation and phase; SCHEMATHESIS_SEED
# makes a run repeatable.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN="${1:-$ROOT/target/debug/latchkey}"
shift $(($# > 0 ? 1 : 0))
VERSION=4.32.5
MAX_EXAMPLES="${MAX_EXAMPLES:-100}"

schemathesis() {
  python3 -c 'import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())' "$@"
}
if ! python3 -c "import importlib.metadata as m, sys; sys.exit(m.version('schemathesis') != '$VERSION')" 2>/dev/null; then
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$VERSION"
fi

# The document itself first: OpenAPI 3.1 as its JSON Schema says (openapi-spec-validator comes
# with schemathesis).
python3 -c 'import json, sys; from openapi_spec_validator import validate; validate(json.load(open(sys.argv[1])))' \
  docs/openapi.json

source tests/serve.sh
start_server "$BIN"

# A merchant, a client of theirs, and a token that the two resources accept.
printf '%s\n' 'schemathesis password 1' \
  | "$BIN" user create --username fuzz --name "Fuzz Merchant" --email fuzz@example.com >/dev/null
CLIENT=$("$BIN" client create --owner fuzz --name "Schemathesis" --json \
  --scope get_user_profile --scope openid --scope email \
  --redirect-uri https://shop.example.com/callback)
read -r LATCHKEY_CLIENT_ID LATCHKEY_CLIENT_SECRET < <(python3 -c \
  'import json, sys; c = json.load(sys.stdin); print(c["client_id"], c["client_secret"])' <<<"$CLIENT")
TOKEN=""
# The server sees a client made by another process within LATCHKEY_CLIENT_REFRESH (1 s).
for _ in $(seq 30); do
  TOKEN=$(curl -s -u "$LATCHKEY_CLIENT_ID:$LATCHKEY_CLIENT_SECRET" "$BASE/oauth/token" \
    -d grant_type=client_credentials --data-urlencode 'scope=get_user_profile openid email' \
    | python3 -c 'import json, sys; print(json.load(sys.stdin).get("access_token", ""))')
  [ -n "$TOKEN" ] && break
  sleep 0.2
done
[ -n "$TOKEN" ] || { echo "FATAL: no access token for the fuzzing client" >&2; cat "$WORK/server.log" >&2; exit 1; }
export LATCHKEY_CLIENT_ID LATCHKEY_CLIENT_SECRET LATCHKEY_ACCESS_TOKEN="$TOKEN"

# From the scratch folder, so that hypothesis' example database stays out of the checkout.
cd "$WORK"
# One worker: with two, hypothesis in two threads calls ast.parse at once, and CPython 3.11's
# AST converter keeps its recursion depth in state shared by the threads, so a run could die
# of "SystemError: AST constructor recursion depth mismatch" (cpython#106905) with nothing
# wrong in the server (CI, 2026-12-07, in the coverage phase of POST /v1/token).
status=0
schemathesis --config-file "$ROOT/tests/schemathesis/schemathesis.toml" run "$BASE/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,unsupported_method \
  --max-examples "$MAX_EXAMPLES" \
  --workers 1 \
  ${SCHEMATHESIS_SEED:+--seed "$SCHEMATHESIS_SEED"} \
  "$@" \
  || status=$?
if [ "$status" -ne 0 ]; then
  echo "server log:" >&2
  cat "$WORK/server.log" >&2
  exit "$status"
fi
# The token must still work: nothing the fuzzer sent may have revoked it by accident, which
# would have turned the resources' runs into 401s only.
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$BASE/v1/user/profile")
[ "$code" = 200 ] || { echo "FATAL: the access token stopped working during the run ($code)" >&2; exit 1; }
