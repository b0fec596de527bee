#!/usr/bin/env bash
# Runs the four quickstarts in this folder (Python with Authlib, Node.js with openid-client; each
# client_credentials and the code flow with PKCE) against a fresh Latchkey server: the given
# binary (default target/debug/latchkey), SQLite in a temporary data folder, on a free local port.
# The CLI makes a merchant, a person and the merchant's application, as the READMEs tell a
# developer to; examples/ci/person.py plays the person's browser for the code flows. Fails if an
# example fails or prints anything but the expected accounts (so a token exchange that did not
# really happen cannot pass).
#
#   bash examples/run.sh [LATCHKEY_BINARY]
#
# Installs the pinned Python requirements with pip when they are missing, and runs `npm ci` in
# examples/node (npm's cache makes repeat runs quick).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-$PWD/target/debug/latchkey}"

# The exact versions of examples/python/requirements.txt, or pip installs them.
if ! python3 - 2>/dev/null <<'EOF'
import importlib.metadata, sys
pins = [line.strip().split("==") for line in open("examples/python/requirements.txt")
        if "==" in line and not line.startswith("#")]
sys.exit(any(importlib.metadata.version(name) != version for name, version in pins))
EOF
then
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
    -r examples/python/requirements.txt
fi
command -v node >/dev/null && command -v npm >/dev/null \
  || { echo "examples/run.sh: the Node.js quickstarts need Node.js 20 or newer, with npm" >&2; exit 1; }
(cd examples/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

source tests/serve.sh
start_server "$BIN"

# What the READMEs tell a developer to make: a merchant, the merchant's application with a
# loopback redirect URI, and (here) a person who signs in to it.
suffix=$(python3 -c 'import secrets; print(secrets.token_hex(4))')
MERCHANT="merchant$suffix" PERSON="person$suffix" PASSWORD="quickstart password $suffix"
MERCHANT_ID=$(printf '%s\n' "$PASSWORD" | "$BIN" user create --username "$MERCHANT" --name "Quickstart Merchant")
PERSON_ID=$(printf '%s\n' "$PASSWORD" | "$BIN" user create --username "$PERSON" --name "Quickstart Person")
REDIRECT_URI="http://127.0.0.1:$(free_port)/callback"
CLIENT=$("$BIN" client create --owner "$MERCHANT" --name "Quickstart" --json \
  --grant-type client_credentials --grant-type authorization_code --grant-type refresh_token \
  --scope openid --scope profile --scope get_user_profile --redirect-uri "$REDIRECT_URI")
field() { python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$CLIENT" "$1"; }
CLIENT_ID=$(field client_id)
CLIENT_SECRET=$(field client_secret)
export CLIENT_ID CLIENT_SECRET REDIRECT_URI
echo "server $BASE; merchant $MERCHANT (id $MERCHANT_ID), person $PERSON (id $PERSON_ID), client $CLIENT_ID"

FAILED=()
# run NAME COMMAND...: runs an example (at most 60 s), its output shown and kept in $WORK/NAME.
run() {
  local name=$1
  shift
  printf '\n-- %s\n' "$name"
  if ! timeout 60 "$@" 2>&1 | tee "$WORK/$name"; then
    FAILED+=("$name: exited non-zero")
  fi
}
# expect NAME REGEX WHAT: a line of NAME's output matches REGEX (grep -E).
expect() {
  if ! grep -Eq -- "$2" "$WORK/$1"; then
    FAILED+=("$1: $3 (no line matching $2)")
  fi
}
PERSON_AT_BROWSER=(python3 examples/ci/person.py --username "$PERSON" --password "$PASSWORD" --timeout 50 --)

# client_credentials acts for the application's owner: the merchant.
for lang in python node; do
  if [ $lang = python ]; then ext=py cmd=python3; else ext=js cmd=node; fi
  name="$lang client_credentials"
  run "$name" $cmd "examples/$lang/client_credentials.$ext"
  expect "$name" "^access token: [Bb]earer, expires in [0-9]+ s, scope 'get_user_profile'$" "a Bearer token with the asked scope"
  expect "$name" "^profile \(the application's owner\): .*\"username\": ?\"$MERCHANT\"" "the profile is the merchant's"
  expect "$name" "^introspection: .*\"active\": ?true" "introspection says active"

  name="$lang code_flow"
  run "$name" "${PERSON_AT_BROWSER[@]}" $cmd "examples/$lang/code_flow.$ext"
  expect "$name" "^tokens: [Bb]earer, .*refresh token: yes$" "the code was exchanged for tokens"
  expect "$name" "^id_token: valid, sub '$PERSON_ID'$" "the id_token names the person who signed in"
  expect "$name" "^userinfo: .*\"sub\": ?\"$PERSON_ID\"" "userinfo names the person"
  expect "$name" "^profile: .*\"username\": ?\"$PERSON\"" "the profile is the person's"
  expect "$name" "^refreshed: " "one refresh"
  expect "$name" "^profile after refresh: .*\"username\": ?\"$PERSON\"" "the refreshed token works"
done

echo
if [ ${#FAILED[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${FAILED[@]}" >&2
  echo "server log:" >&2
  cat "$WORK/server.log" >&2
  exit 1
fi
echo "quickstarts: all four examples worked against $BASE"
