"""Latchkey quickstart, Python: the authorization code flow with PKCE, with Authlib.

A person signs in on Latchkey and allows your application; your application gets tokens that
act for that person. This script plays a small web application on your machine:

1. it builds the authorization URL (PKCE S256, state, nonce) from the server's discovery
   document and prints it: open it in a browser, sign in, press Allow;
2. Latchkey sends the browser back to REDIRECT_URI, where a tiny local web server receives the
   code;
3. the script exchanges the code (with the PKCE verifier and the client secret), checks the
   id_token, calls /oauth/userinfo and /v1/user/profile, and refreshes the tokens once.

    pip install -r requirements.txt
    LATCHKEY_ISSUER=http://127.0.0.1:8080 CLIENT_ID=... CLIENT_SECRET=... \
        REDIRECT_URI=http://127.0.0.1:8000/callback python3 code_flow.py
"""

import http.server
import json
import os
import sys
import urllib.parse

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.jwk import KeySet

# Where the server is, and who we are (from `latchkey client create ... --json`). REDIRECT_URI
# must be registered on the application exactly as written here (`--redirect-uri`).
ISSUER = os.environ.get("LATCHKEY_ISSUER", "http://127.0.0.1:8080").rstrip("/")
CLIENT_ID = os.environ["CLIENT_ID"]
CLIENT_SECRET = os.environ["CLIENT_SECRET"]
REDIRECT_URI = os.environ.get("REDIRECT_URI", "http://127.0.0.1:8000/callback")
# openid + profile: an id_token and the person's name; get_user_profile: /v1/user/profile.
SCOPE = "openid profile get_user_profile"


def show(what, data):
    print(f"{what}: {json.dumps(data, sort_keys=True)}", flush=True)


# 1. Discovery: the server says where its endpoints are. Check that it is the server we meant.
metadata = requests.get(f"{ISSUER}/.well-known/openid-configuration", timeout=10).json()
if metadata["issuer"] != ISSUER:
    sys.exit(f"discovery answered issuer {metadata['issuer']!r}, expected {ISSUER!r}")

oauth = OAuth2Session(
    CLIENT_ID,
    CLIENT_SECRET,
    scope=SCOPE,
    redirect_uri=REDIRECT_URI,
    code_challenge_method="S256",
    token_endpoint_auth_method="client_secret_basic",
)

# 2. The authorization URL. A real web app keeps code_verifier, state and nonce in the user's
#    session until the browser comes back; here they simply stay in these variables.
code_verifier = generate_token(48)  # PKCE: only its SHA-256 (the challenge) goes in the URL
nonce = generate_token(20)  # comes back inside the id_token
url, state = oauth.create_authorization_url(
    metadata["authorization_endpoint"], code_verifier=code_verifier, nonce=nonce
)


# 3. A one-shot web server on REDIRECT_URI's host and port that waits for the browser.
class Callback(http.server.BaseHTTPRequestHandler):
    received = None

    def do_GET(self):
        if urllib.parse.urlsplit(self.path).path != urllib.parse.urlsplit(REDIRECT_URI).path:
            self.send_error(404)
            return
        # The full URL the browser was sent to, built on REDIRECT_URI (not on the Host header).
        Callback.received = urllib.parse.urljoin(REDIRECT_URI, self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        self.wfile.write(b"Done: you can close this tab and go back to the terminal.\n")

    def log_message(self, *args):
        pass  # keep the terminal quiet


where = urllib.parse.urlsplit(REDIRECT_URI)
with http.server.HTTPServer((where.hostname, where.port or 80), Callback) as server:
    # Listening already, so the browser finds us however fast it comes back.
    print("Open this URL in your browser, sign in and allow the application:\n", flush=True)
    print(f"    {url}\n", flush=True)
    print(f"Waiting for the browser at {REDIRECT_URI} ...", flush=True)
    while Callback.received is None:
        server.handle_request()

query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(Callback.received).query))
if "error" in query:  # e.g. access_denied when the person pressed Deny
    sys.exit(f"authorization refused: {query['error']}: {query.get('error_description', '')}")
# RFC 9207: Latchkey names itself in the redirect; refuse a response from another server.
if query.get("iss") != ISSUER:
    sys.exit(f"the authorization response came from {query.get('iss')!r}, not {ISSUER!r}")

# 4. Exchange the code. Authlib checks that `state` is the one we sent, then posts the code,
#    the redirect URI and the PKCE verifier, authenticated with client ID and secret.
token = oauth.fetch_token(
    metadata["token_endpoint"],
    authorization_response=Callback.received,
    state=state,
    code_verifier=code_verifier,
)
print(f"tokens: {token['token_type']}, expires in {token['expires_in']} s, scope {token['scope']!r}, "
      f"refresh token: {'yes' if token.get('refresh_token') else 'no'}", flush=True)

# 5. The id_token says who signed in. Check its signature with the server's published keys,
#    and its issuer, audience (us), expiry, nonce and at_hash, as Authlib's own web clients do.
keys = KeySet.import_key_set(requests.get(metadata["jwks_uri"], timeout=10).json())
decoded = jwt.decode(token["id_token"], keys, algorithms=metadata["id_token_signing_alg_values_supported"])
id_token = CodeIDToken(
    decoded.claims,
    decoded.header,
    {"iss": {"values": [ISSUER]}},
    {"client_id": CLIENT_ID, "nonce": nonce, "access_token": token["access_token"]},
)
id_token.validate()
print(f"id_token: valid, sub {id_token['sub']!r}", flush=True)

# 6. Call the APIs with the access token (OAuth2Session adds `Authorization: Bearer ...`).
userinfo = oauth.get(metadata["userinfo_endpoint"], timeout=10)
userinfo.raise_for_status()
show("userinfo", userinfo.json())
if userinfo.json()["sub"] != id_token["sub"]:
    sys.exit("userinfo is about someone else than the id_token")

profile = oauth.get(f"{ISSUER}/v1/user/profile", timeout=10)
profile.raise_for_status()
show("profile", profile.json())

# 7. Refresh. Latchkey rotates refresh tokens: each refresh answers a new one and the old one
#    stops working, so always keep the newest (Authlib's session does).
old_refresh = token["refresh_token"]
token = oauth.refresh_token(metadata["token_endpoint"])
if token["refresh_token"] == old_refresh:
    sys.exit("the refresh did not rotate the refresh token")
print("refreshed: new access token and new refresh token", flush=True)
profile = oauth.get(f"{ISSUER}/v1/user/profile", timeout=10)
profile.raise_for_status()
show("profile after refresh", profile.json())
