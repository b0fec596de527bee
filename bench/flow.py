#!/usr/bin/env python3
"""One person's authorization-code flow against a running Latchkey, as a browser would do it:
/oauth/authorize -> login page -> sign in -> consent page -> Allow -> code -> token (PKCE); with
remembered consent, the sign-in answers with the code.

Counts the SQL statements the server ran for the whole flow (from /metrics) and times it.
Standard library only. Used by bench/run.sh:

    flow.py BASE_URL CLIENT_ID CLIENT_SECRET REDIRECT_URI USERNAME PASSWORD [FLOWS]

Prints one line per flow: `flow=N consent=shown|remembered statements=S ms=T`.
"""

import base64
import hashlib
import html as htmllib
import http.cookiejar
import json
import re
import secrets
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def statements(metrics):
    with urllib.request.urlopen(metrics + "/metrics") as res:
        text = res.read().decode()
    match = re.search(r"^latchkey_sql_statements_total (\d+)$", text, re.M)
    if not match:
        sys.exit("flow.py: /metrics has no latchkey_sql_statements_total")
    return int(match.group(1))


def hidden(html, name):
    match = re.search(r'name="%s" value="([^"]*)"' % re.escape(name), html)
    if not match:
        sys.exit("flow.py: the page has no %s field" % name)
    return htmllib.unescape(match.group(1))


def one_flow(base, client_id, secret, redirect_uri, username, password):
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)

    def call(method, path, form=None, headers=None):
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
        try:
            res = opener.open(req)
        except urllib.error.HTTPError as e:  # 3xx and errors arrive here without redirects
            res = e
        return res.status, res.headers.get("Location"), res.read().decode()

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(16)
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
        "scope": "get_user_profile", "state": state,
        "code_challenge": challenge, "code_challenge_method": "S256",
    })
    status, location, _ = call("GET", "/oauth/authorize?" + query)
    assert status == 303 and location.startswith("/login"), (status, location)
    status, _, login = call("GET", location)
    assert status == 200, status
    status, location, _ = call("POST", "/login", {
        "username": username, "password": password,
        "next": hidden(login, "next"), "csrf_token": hidden(login, "csrf_token"),
    })
    assert status == 303, status
    consent = "remembered"
    # A consent that covers the request finishes it at the sign-in: straight to the application.
    if not location.startswith(redirect_uri):
        status, location, page = call("GET", location)
    if status == 200:
        consent = "shown"
        status, location, _ = call("POST", "/oauth/authorize", {
            "csrf_token": hidden(page, "csrf_token"),
            "request_id": hidden(page, "request_id"),
            "decision": "allow",
        })
    assert status == 303 and location.startswith(redirect_uri), (status, location)
    params = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)
    assert params["state"] == [state], params
    basic = base64.b64encode(("%s:%s" % (client_id, secret)).encode()).decode()
    status, _, body = call("POST", "/oauth/token", {
        "grant_type": "authorization_code", "code": params["code"][0],
        "redirect_uri": redirect_uri, "code_verifier": verifier,
    }, {"Authorization": "Basic " + basic})
    assert status == 200 and "access_token" in json.loads(body), (status, body)
    return consent


def main():
    base, client_id, secret, redirect_uri, username, password = sys.argv[1:7]
    flows = int(sys.argv[7]) if len(sys.argv) > 7 else 1
    # The metrics listener (LATCHKEY_METRICS_BIND) is apart from the public one.
    metrics = sys.argv[8] if len(sys.argv) > 8 else "http://127.0.0.1:9464"
    for n in range(1, flows + 1):
        before = statements(metrics)
        start = time.perf_counter()
        consent = one_flow(base, client_id, secret, redirect_uri, username, password)
        elapsed = (time.perf_counter() - start) * 1000
        after = statements(metrics)
        print("flow=%d consent=%s statements=%d ms=%.1f" % (n, consent, after - before, elapsed))


if __name__ == "__main__":
    main()
