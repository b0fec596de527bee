"""Latchkey driven end to end by Authlib (https://authlib.org), an OAuth client library none of
us wrote, with keys and DPoP proofs made by joserfc, its JOSE library:

1. a key-based client (private_key_jwt, an ES256 key) registered with the CLI gets a
   client_credentials token through Authlib's OAuth2Session and PrivateKeyJWT, and calls
   /v1/user/profile with it;
2. it pushes an authorization request (PAR, RFC 9126) with PKCE, authenticated by an Authlib
   assertion whose `aud` is the PAR endpoint;
3. a person signs in and allows it on our pages (as a browser would: the forms' hidden fields,
   no JavaScript), and Authlib exchanges the code with the PKCE verifier;
4. an assertion Authlib made, sent a second time, is refused;
5. a FAPI 2.0 client (`client create --fapi2`): a direct authorization request is refused, the
   pushed one (private_key_jwt, PKCE S256) goes through sign-in and consent, and the code is
   exchanged with an assertion and a DPoP proof (RFC 9449): the token is of type DPoP and its
   `cnf.jkt` is joserfc's RFC 7638 thumbprint of the proof key. It reaches /v1/user/profile as
   `Authorization: DPoP` with a proof carrying `ath`, is refused as Bearer (401, a DPoP
   challenge), and a refresh with assertion and proof answers a new bound token and no new
   refresh token (FAPI 2.0 does not rotate them), the same refresh token working again.

Authlib 1.9.10 has no DPoP (its source says so: "Authlib supports neither DPoP nor mTLS"), so
the proofs are joserfc JWTs added to Authlib's requests by a `requests` auth hook, `DPoPProof`.

    python3 tests/interop/authlib_fapi.py BASE_URL LATCHKEY_BINARY

The binary runs with the environment of the server under test (its LATCHKEY_DATA_DIR or
LATCHKEY_DATABASE_URL and LATCHKEY_SECRET_KEY), to create the merchant, the person and the
clients. Exits non-zero, saying why, on the first thing that is not as it should be.
"""

import base64
import hashlib
import html.parser
import json
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.parse

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

BASE, BIN = sys.argv[1].rstrip("/"), sys.argv[2]
TOKEN_URL = f"{BASE}/oauth/token"
PAR_URL = f"{BASE}/oauth/par"
PROFILE_URL = f"{BASE}/v1/user/profile"
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


def key_client(key, name, *flags):
    """A private_key_jwt client registered with the CLI, with `key`'s public half as its JWKS."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as jwks:
        json.dump({"keys": [key.as_dict(private=False)]}, jwks)
    made = json.loads(
        cli(
            "client", "create", "--owner", merchant, "--name", name, "--json",
            "--auth-method", "private_key_jwt", "--jwks-file", jwks.name,
            "--redirect-uri", CALLBACK, "--scope", "get_user_profile", *flags,
        )
    )
    expect(made["token_endpoint_auth_method"] == "private_key_jwt", f"the CLI made a key-based client ({name})")
    return made


key = ECKey.generate_key("P-256", parameters={"kid": f"authlib-{suffix}"}, private=True)
client = key_client(
    key, "Authlib interop",
    "--grant-type", "client_credentials", "--grant-type", "authorization_code",
    "--grant-type", "refresh_token",
)
client_id = client["client_id"]


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


def session(audience, cid=None, signing_key=None):
    """An Authlib session that authenticates with ES256 assertions for `audience`, as the first
    client unless another's id and key are given."""
    s = OAuth2Session(cid or client_id, signing_key or key, token_endpoint_auth_method="private_key_jwt")
    s.register_client_auth_method(ShortLivedPrivateKeyJWT(audience, alg="ES256"))
    return s


def push(cid, signing_key, verifier, state):
    """A pushed authorization request (with PKCE S256) authenticated by Authlib's assertion
    for the PAR endpoint; the response."""
    auth = session(PAR_URL, cid, signing_key).client_auth("private_key_jwt")
    return requests.post(
        PAR_URL,
        data={
            "client_id": cid,
            "response_type": "code",
            "redirect_uri": CALLBACK,
            "scope": "get_user_profile",
            "state": state,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        },
        auth=auth,
    )


def sign_in_and_allow(cid, request_uri, app_name, state):
    """The person's browser, a fresh one each time: authorize with the pushed request, sign in,
    allow on the consent page. The callback's query."""
    browser = requests.Session()
    url = f"{BASE}/oauth/authorize?" + urllib.parse.urlencode({"client_id": cid, "request_uri": request_uri})
    res = browser.get(url, allow_redirects=False)
    expect(res.status_code == 303 and "/login" in res.headers["location"], "authorize sends the person to sign in")
    login = browser.get(BASE + res.headers["location"])
    fields = Form(login.text).fields
    fields.update({"username": person, "password": PASSWORD})
    res = browser.post(f"{BASE}/login", data=fields, allow_redirects=False)
    expect(res.status_code == 303, f"signed in ({res.status_code})")
    consent = browser.get(BASE + res.headers["location"], allow_redirects=False)
    expect(consent.status_code == 200 and app_name in consent.text, f"the consent page names {app_name}")
    answer = Form(consent.text).fields
    answer["decision"] = "allow"
    res = browser.post(f"{BASE}/oauth/authorize", data=answer, allow_redirects=False)
    callback = res.headers.get("location", "")
    expect(res.status_code == 303 and callback.startswith(CALLBACK), "allowed: back to the application")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback).query))
    expect(query.get("state") == state and query.get("iss") == BASE, "the pushed state comes back, with iss")
    return query


# 1. client_credentials.
oauth = session(TOKEN_URL)
token = oauth.fetch_token(TOKEN_URL, grant_type="client_credentials")
expect(token.get("token_type") == "Bearer" and token.get("access_token"), "client_credentials with private_key_jwt")
profile = requests.get(PROFILE_URL, headers={"Authorization": f"Bearer {token['access_token']}"})
expect(profile.status_code == 200 and profile.json()["username"] == merchant, "the token reaches /v1/user/profile")

# 2. PAR, authenticated by Authlib's assertion for the PAR endpoint.
verifier = secrets.token_urlsafe(48)
state = secrets.token_urlsafe(12)
pushed = push(client_id, key, verifier, state)
expect(pushed.status_code == 201, f"PAR answered 201 ({pushed.status_code} {pushed.text})")
request_uri = pushed.json()["request_uri"]
expect(request_uri.startswith("urn:ietf:params:oauth:request_uri:"), "PAR gave a request_uri")

# 3. The person's browser: authorize, sign in, allow; Authlib redeems the code.
query = sign_in_and_allow(client_id, request_uri, "Authlib interop", state)
tokens = oauth.fetch_token(
    TOKEN_URL,
    grant_type="authorization_code",
    code=query["code"],
    redirect_uri=CALLBACK,
    code_verifier=verifier,
)
expect(tokens.get("refresh_token") and tokens.get("scope") == "get_user_profile", "the code exchanged by Authlib with PKCE")
profile = requests.get(PROFILE_URL, headers={"Authorization": f"Bearer {tokens['access_token']}"})
expect(profile.status_code == 200 and profile.json()["username"] == person, "the person's token reaches the profile")

# 4. One of Authlib's assertions, sent twice.
once = session(TOKEN_URL).client_auth("private_key_jwt")
prepared = requests.Request("POST", TOKEN_URL, data={"grant_type": "client_credentials"}, auth=once).prepare()
first = requests.Session().send(prepared)
second = requests.Session().send(prepared)
expect(first.status_code == 200, "an assertion works once")
expect(second.status_code == 401 and second.json()["error"] == "invalid_client", "the same assertion again is refused")
print("interop: Authlib drove private_key_jwt and PAR end to end")


# 5. FAPI 2.0: PAR + private_key_jwt + DPoP.
def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def dpop_proof(dpop_key, method, url, access_token=None):
    """A DPoP proof (RFC 9449 §4.2) made with joserfc: `typ: dpop+jwt`, the public half of
    `dpop_key` as `jwk`, a fresh `jti`, the request's method and URL (no query or fragment,
    §4.3), `iat` now, and at a resource `ath` = base64url(SHA-256(access token))."""
    claims = {
        "jti": secrets.token_urlsafe(24),
        "htm": method,
        "htu": urllib.parse.urlsplit(url)._replace(query="", fragment="").geturl(),
        "iat": int(time.time()),
    }
    if access_token is not None:
        claims["ath"] = b64url(hashlib.sha256(access_token.encode()).digest())
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": dpop_key.as_dict(private=False)}
    return jwt.encode(header, claims, dpop_key)


class DPoPProof(requests.auth.AuthBase):
    """A `requests` auth hook that adds a fresh DPoP proof for the request it is applied to,
    after `inner` (Authlib's private_key_jwt) has added the client assertion: a proof is made
    from the prepared request's own method and URL, so it cannot name another one. With
    `access_token`, it also sets `Authorization: DPoP <token>` and the proof's `ath`."""

    def __init__(self, dpop_key, inner=None, access_token=None):
        self.dpop_key, self.inner, self.access_token = dpop_key, inner, access_token

    def __call__(self, req):
        if self.inner is not None:
            req = self.inner(req)
        if self.access_token is not None:
            req.headers["Authorization"] = f"DPoP {self.access_token}"
        req.headers["DPoP"] = dpop_proof(self.dpop_key, req.method, req.url, self.access_token)
        return req


def claims_of(access_token):
    """The access token's claims, its signature verified by joserfc with the server's JWKS."""
    server_keys = KeySet.import_key_set(requests.get(f"{BASE}/.well-known/jwks.json").json())
    return jwt.decode(access_token, server_keys).claims


# The client's key (its assertions) and the DPoP key (its proofs) are two keys, as RFC 9449
# advises, so the thumbprint in cnf.jkt cannot come from the wrong one by accident.
fapi_key = ECKey.generate_key("P-256", parameters={"kid": f"fapi-{suffix}"}, private=True)
dpop_key = ECKey.generate_key("P-256", private=True)
fapi = key_client(
    fapi_key, "FAPI interop", "--fapi2",
    "--grant-type", "authorization_code", "--grant-type", "refresh_token",
)
fapi_id = fapi["client_id"]
expect(
    fapi["fapi2"] and fapi["require_pushed_authorization_requests"] and fapi["dpop_bound_access_tokens"],
    "--fapi2 turns on pushed requests and DPoP-bound tokens",
)

verifier = secrets.token_urlsafe(48)
state = secrets.token_urlsafe(12)
# A request in the browser's URL, not pushed: back to the app with invalid_request.
direct = requests.get(
    f"{BASE}/oauth/authorize?" + urllib.parse.urlencode({
        "client_id": fapi_id, "response_type": "code", "redirect_uri": CALLBACK,
        "scope": "get_user_profile", "state": state,
        "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256",
    }),
    allow_redirects=False,
)
refused = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(direct.headers.get("location", "")).query))
expect(direct.status_code == 303 and refused.get("error") == "invalid_request",
       f"FAPI 2.0: an authorization request not pushed is refused ({direct.status_code} {refused})")

pushed = push(fapi_id, fapi_key, verifier, state)
expect(pushed.status_code == 201, f"FAPI 2.0: PAR with private_key_jwt answered 201 ({pushed.status_code} {pushed.text})")
query = sign_in_and_allow(fapi_id, pushed.json()["request_uri"], "FAPI interop", state)

fapi_oauth = session(TOKEN_URL, fapi_id, fapi_key)
redeem = {"grant_type": "authorization_code", "code": query["code"], "redirect_uri": CALLBACK, "code_verifier": verifier}
# Without a proof the FAPI client gets no token; the server leaves the code unspent.
bare = requests.post(TOKEN_URL, data=redeem, auth=fapi_oauth.client_auth("private_key_jwt"))
expect(bare.status_code == 400 and bare.json().get("error") == "invalid_dpop_proof",
       f"FAPI 2.0: no token without a DPoP proof ({bare.status_code} {bare.text})")

tokens = fapi_oauth.fetch_token(
    TOKEN_URL,
    auth=DPoPProof(dpop_key, fapi_oauth.client_auth("private_key_jwt")),
    **redeem,
)
expect(tokens.get("token_type") == "DPoP", f"FAPI 2.0: the code exchanged with assertion and proof gives a DPoP token ({tokens.get('token_type')})")
expect(tokens.get("refresh_token"), "FAPI 2.0: with a refresh token")
jkt = dpop_key.thumbprint()
bound = claims_of(tokens["access_token"])
expect(bound.get("cnf", {}).get("jkt") == jkt, f"the token's cnf.jkt is joserfc's RFC 7638 thumbprint of the DPoP key ({bound.get('cnf')} vs {jkt})")

profile = requests.get(PROFILE_URL, auth=DPoPProof(dpop_key, access_token=tokens["access_token"]))
expect(profile.status_code == 200 and profile.json()["username"] == person,
       f"Authorization: DPoP with a proof carrying ath reaches the profile ({profile.status_code} {profile.text})")
as_bearer = requests.get(PROFILE_URL, headers={"Authorization": f"Bearer {tokens['access_token']}"})
challenge = as_bearer.headers.get("WWW-Authenticate", "")
expect(as_bearer.status_code == 401 and challenge.startswith("DPoP"),
       f"the bound token as Bearer is refused with a DPoP challenge ({as_bearer.status_code} {challenge!r})")

# The refresh: Authlib's refresh_token() keeps the refresh token it had when the response has
# none, so the raw response is kept (a compliance hook) to see what the server answered.
answered = []


def keep_raw(resp):
    answered.append(resp.json())
    return resp


fapi_oauth.register_compliance_hook("refresh_token_response", keep_raw)
refresh = tokens["refresh_token"]
for turn in ("a refresh", "the same refresh token again"):
    fapi_oauth.refresh_token(TOKEN_URL, refresh_token=refresh, auth=DPoPProof(dpop_key, fapi_oauth.client_auth("private_key_jwt")))
    raw = answered[-1]
    expect(raw.get("token_type") == "DPoP" and raw.get("access_token") and "refresh_token" not in raw,
           f"FAPI 2.0: {turn} with assertion and proof answers a bound token and no new refresh token ({sorted(raw)})")
    expect(claims_of(raw["access_token"]).get("cnf", {}).get("jkt") == jkt, "the refreshed token is bound to the same key")
profile = requests.get(PROFILE_URL, auth=DPoPProof(dpop_key, access_token=answered[-1]["access_token"]))
expect(profile.status_code == 200, f"the refreshed token reaches the profile with a proof ({profile.status_code})")
print("interop: Authlib and joserfc drove FAPI 2.0 (PAR, private_key_jwt, DPoP) end to end")
