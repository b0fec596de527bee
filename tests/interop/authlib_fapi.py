"""Latchkey driven end to end by Authlib (https://authlib.org), an OAuth client library none of
us wrote, with keys made by joserfc, its JOSE library:

1. a key-based client (private_key_jwt, an ES256 key) registered with the CLI gets a
   client_credentials token through Authlib's OAuth2Session and PrivateKeyJWT, and calls
   /v1/user/profile with it;
2. it pushes an authorization request (PAR, RFC 9126) with PKCE, authenticated by an Authlib
   assertion whose `aud` is the PAR endpoint;
3. a person signs in and allows it on our pages (as a browser would: the forms' hidden fields,
   no JavaScript), and Authlib exchanges the code with the PKCE verifier;
4. an assertion Authlib made, sent a second time, is refused.

    python3 tests/interop/authlib_fapi.py BASE_URL LATCHKEY_BINARY

The binary runs with the environment of the server under test (its LATCHKEY_DATA_DIR or
LATCHKEY_DATABASE_URL and LATCHKEY_SECRET_KEY), to create the merchant, the person and the
client. Exits non-zero, saying why, on the first thing that is not as it should be.
"""

import html.parser
import json
import secrets
import subprocess
import sys
import tempfile
import urllib.parse

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc.jwk import ECKey

BASE, BIN = sys.argv[1].rstrip("/"), sys.argv[2]
TOKEN_URL = f"{BASE}/oauth/token"
PAR_URL = f"{BASE}/oauth/par"
CALLBACK = "https://app.example.com/callback"
PASSWORD = "interop password 1"


def cli(*args, stdin=""):
    out = subprocess.run([BIN, *args], input=stdin, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"latchkey {' '.join(args)} failed: {out.stderr}")
    return out.stdout


def expect(condition, what):
    if not condition:
        sys.exit(f"interop: {what}")
    print(f"ok: {what}")


class Form(html.parser.HTMLParser):
    """The inputs of a page's forms, by name."""

    def __init__(self, text):
        super().__init__()
        self.fields = {}
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("name"):
            self.fields.setdefault(attrs["name"], attrs.get("value") or "")


suffix = secrets.token_hex(4)
merchant, person = f"merchant{suffix}", f"person{suffix}"
cli("user", "create", "--username", merchant, "--name", "Interop Merchant", stdin=PASSWORD + "\n")
cli("user", "create", "--username", person, "--name", "Interop Person", stdin=PASSWORD + "\n")

key = ECKey.generate_key("P-256", parameters={"kid": f"authlib-{suffix}"}, private=True)
with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as jwks:
    json.dump({"keys": [key.as_dict(private=False)]}, jwks)
client = json.loads(
    cli(
        "client", "create", "--owner", merchant, "--name", "Authlib interop", "--json",
        "--auth-method", "private_key_jwt", "--jwks-file", jwks.name,
        "--redirect-uri", CALLBACK, "--scope", "get_user_profile",
        "--grant-type", "client_credentials", "--grant-type", "authorization_code",
        "--grant-type", "refresh_token",
    )
)
client_id = client["client_id"]
expect(client["token_endpoint_auth_method"] == "private_key_jwt", "the CLI made a key-based client")


class ShortLivedPrivateKeyJWT(PrivateKeyJWT):
    """Authlib's private_key_jwt with assertions that live 60 seconds: Latchkey accepts an
    `exp` at most 5 minutes ahead, and Authlib's default is an hour (its `expires_in`)."""

    def sign(self, auth, token_endpoint):
        return private_key_jwt_sign(
            auth.client_secret,
            client_id=auth.client_id,
            token_endpoint=token_endpoint,
            claims=self.claims,
            header=self.headers,
            alg=self.alg,
            expires_in=60,
        )


def session(audience):
    """An Authlib session that authenticates with ES256 assertions for `audience`."""
    s = OAuth2Session(client_id, key, token_endpoint_auth_method="private_key_jwt")
    s.register_client_auth_method(ShortLivedPrivateKeyJWT(audience, alg="ES256"))
    return s


# 1. client_credentials.
oauth = session(TOKEN_URL)
token = oauth.fetch_token(TOKEN_URL, grant_type="client_credentials")
expect(token.get("token_type") == "Bearer" and token.get("access_token"), "client_credentials with private_key_jwt")
profile = requests.get(f"{BASE}/v1/user/profile", headers={"Authorization": f"Bearer {token['access_token']}"})
expect(profile.status_code == 200 and profile.json()["username"] == merchant, "the token reaches /v1/user/profile")

# 2. PAR, authenticated by Authlib's assertion for the PAR endpoint.
verifier = secrets.token_urlsafe(48)
state = secrets.token_urlsafe(12)
pushing = session(PAR_URL)
auth = pushing.client_auth("private_key_jwt")
pushed = requests.post(
    PAR_URL,
    data={
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": CALLBACK,
        "scope": "get_user_profile",
        "state": state,
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    },
    auth=auth,
)
expect(pushed.status_code == 201, f"PAR answered 201 ({pushed.status_code} {pushed.text})")
request_uri = pushed.json()["request_uri"]
expect(request_uri.startswith("urn:ietf:params:oauth:request_uri:"), "PAR gave a request_uri")

# 3. The person's browser: authorize, sign in, allow.
browser = requests.Session()
url = f"{BASE}/oauth/authorize?" + urllib.parse.urlencode({"client_id": client_id, "request_uri": request_uri})
res = browser.get(url, allow_redirects=False)
expect(res.status_code == 303 and "/login" in res.headers["location"], "authorize sends the person to sign in")
login = browser.get(BASE + res.headers["location"])
fields = Form(login.text).fields
fields.update({"username": person, "password": PASSWORD})
res = browser.post(f"{BASE}/login", data=fields, allow_redirects=False)
expect(res.status_code == 303, f"signed in ({res.status_code})")
consent = browser.get(BASE + res.headers["location"], allow_redirects=False)
expect(consent.status_code == 200 and "Authlib interop" in consent.text, "the consent page names the application")
answer = Form(consent.text).fields
answer["decision"] = "allow"
res = browser.post(f"{BASE}/oauth/authorize", data=answer, allow_redirects=False)
callback = res.headers.get("location", "")
expect(res.status_code == 303 and callback.startswith(CALLBACK), "allowed: back to the application")
query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback).query))
expect(query.get("state") == state and query.get("iss") == BASE, "the pushed state comes back, with iss")

tokens = oauth.fetch_token(
    TOKEN_URL,
    grant_type="authorization_code",
    code=query["code"],
    redirect_uri=CALLBACK,
    code_verifier=verifier,
)
expect(tokens.get("refresh_token") and tokens.get("scope") == "get_user_profile", "the code exchanged by Authlib with PKCE")
profile = requests.get(f"{BASE}/v1/user/profile", headers={"Authorization": f"Bearer {tokens['access_token']}"})
expect(profile.status_code == 200 and profile.json()["username"] == person, "the person's token reaches the profile")

# 4. One of Authlib's assertions, sent twice.
once = session(TOKEN_URL).client_auth("private_key_jwt")
prepared = requests.Request("POST", TOKEN_URL, data={"grant_type": "client_credentials"}, auth=once).prepare()
first = requests.Session().send(prepared)
second = requests.Session().send(prepared)
expect(first.status_code == 200, "an assertion works once")
expect(second.status_code == 401 and second.json()["error"] == "invalid_client", "the same assertion again is refused")
print("interop: Authlib drove private_key_jwt and PAR end to end")
