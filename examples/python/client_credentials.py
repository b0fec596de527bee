"""Latchkey quickstart, Python: the client_credentials grant with Authlib.

Your server-side application gets an access token with its own client ID and secret (no person
involved) and calls an API with it. For client_credentials, Latchkey's token acts for the
application's owner (the merchant account that registered it), so /v1/user/profile answers
with that account.

    pip install -r requirements.txt
    LATCHKEY_ISSUER=http://127.0.0.1:8080 CLIENT_ID=... CLIENT_SECRET=... python3 client_credentials.py
"""

import json
import os
import sys

import requests
from authlib.integrations.requests_client import OAuth2Session

# Where the server is, and who we are (from `latchkey client create ... --json`).
ISSUER = os.environ.get("LATCHKEY_ISSUER", "http://127.0.0.1:8080").rstrip("/")
CLIENT_ID = os.environ["CLIENT_ID"]
CLIENT_SECRET = os.environ["CLIENT_SECRET"]


def show(what, data):
    print(f"{what}: {json.dumps(data, sort_keys=True)}")


# 1. Discovery: the server says where its endpoints are. Check that it is the server we meant.
metadata = requests.get(f"{ISSUER}/.well-known/openid-configuration", timeout=10).json()
if metadata["issuer"] != ISSUER:
    sys.exit(f"discovery answered issuer {metadata['issuer']!r}, expected {ISSUER!r}")

# 2. The token request: client ID and secret go in an HTTP Basic header (client_secret_basic).
#    Ask only for the scopes you need; without `scope` you get every scope the app is allowed.
oauth = OAuth2Session(
    CLIENT_ID,
    CLIENT_SECRET,
    scope="get_user_profile",
    token_endpoint_auth_method="client_secret_basic",
)
token = oauth.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
print(f"access token: {token['token_type']}, expires in {token['expires_in']} s, scope {token['scope']!r}")

# 3. Call the API. OAuth2Session is a requests.Session that adds `Authorization: Bearer ...`.
profile = oauth.get(f"{ISSUER}/v1/user/profile", timeout=10)
profile.raise_for_status()
show("profile (the application's owner)", profile.json())

# 4. Optional: what a resource server learns by introspecting the token (RFC 7662).
info = oauth.introspect_token(metadata["introspection_endpoint"], token=token["access_token"]).json()
show("introspection", {k: info.get(k) for k in ("active", "client_id", "scope", "sub", "username")})
