"""CI's stand-in for the person at the browser, so that the code-flow quickstarts run without
anyone there. The quickstarts themselves know nothing of it: each prints an authorization URL
and waits for the browser at its redirect URI, as it would for you.

    python3 examples/ci/person.py --username U --password P -- python3 examples/python/code_flow.py

runs the command, passes its output through, and when it prints a URL with `/oauth/authorize?`
does what a person with a browser (no JavaScript) would: opens it, signs in on the login page
(its form's hidden fields, CSRF token included), presses Allow on the consent page (if the app
was allowed before, Latchkey skips that page), and follows the redirect back to the example's
callback. Then waits for the command and exits with its status; non-zero (and why) when the
command printed no URL, the pages were not as expected, or it took longer than --timeout.
"""

import argparse
import html.parser
import re
import subprocess
import sys
import threading
import time
import urllib.parse

import requests

AUTHORIZE_URL = re.compile(r"https?://\S+/oauth/authorize\?\S+")


def say(message):
    print(f"[person] {message}", flush=True)


class Forms(html.parser.HTMLParser):
    """A page's forms: action, method, the named inputs (hidden ones keep their values) and
    the named submit buttons."""

    def __init__(self, text):
        super().__init__()
        self.forms, self.current = [], None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.current = {"action": attrs.get("action", ""), "method": attrs.get("method", "get").lower(),
                            "fields": {}, "buttons": {}}
            self.forms.append(self.current)
        elif self.current is not None and tag == "input" and attrs.get("name"):
            self.current["fields"].setdefault(attrs["name"], attrs.get("value") or "")
        elif self.current is not None and tag == "button" and attrs.get("name"):
            self.current["buttons"].setdefault(attrs["name"], []).append(attrs.get("value") or "")

    def handle_endtag(self, tag):
        if tag == "form":
            self.current = None


def play_browser(url, username, password):
    """Opens `url` like a browser, signs in and allows; delivers the redirect to the app's
    callback. Raises on anything unexpected."""
    redirect_uri = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query)).get("redirect_uri")
    if not redirect_uri:
        raise RuntimeError("the authorization URL has no redirect_uri")
    browser = requests.Session()
    response = browser.get(url, allow_redirects=False, timeout=10)
    for _ in range(10):
        if response.status_code in (301, 302, 303, 307, 308):
            location = urllib.parse.urljoin(response.url, response.headers["Location"])
            if location.split("?")[0] == redirect_uri:
                say("back to the application's callback")
                deliver(browser, location)
                return
            response = browser.get(location, allow_redirects=False, timeout=10)
            continue
        if response.status_code != 200:
            raise RuntimeError(f"{response.url} answered {response.status_code}: {response.text[:300]}")
        forms = Forms(response.text).forms
        login = next((f for f in forms if "password" in f["fields"]), None)
        consent = next((f for f in forms if "allow" in f["buttons"].get("decision", [])), None)
        if login is not None:
            say("signing in")
            form, extra = login, {"username": username, "password": password}
        elif consent is not None:
            say("allowing on the consent page")
            form, extra = consent, {"decision": "allow"}
        else:
            raise RuntimeError(f"neither a login nor a consent page at {response.url}: {response.text[:300]}")
        action = urllib.parse.urljoin(response.url, form["action"] or response.url)
        response = browser.post(action, data={**form["fields"], **extra}, allow_redirects=False, timeout=10)
    raise RuntimeError("too many pages without reaching the application's callback")


def deliver(browser, location):
    """The browser's last step: the app's callback, retried briefly if it is not listening."""
    for attempt in range(50):
        try:
            response = browser.get(location, timeout=30)
            say(f"the callback answered {response.status_code}")
            return
        except requests.ConnectionError:
            if attempt == 49:
                raise
            time.sleep(0.1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--timeout", type=float, default=60, help="seconds for the whole run")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the example's command after --")

    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, bufsize=1)
    timer = threading.Timer(args.timeout, child.kill)
    timer.start()
    problems, browser = [], None

    def person_at_browser(url):
        try:
            play_browser(url, args.username, args.password)
        except Exception as error:  # noqa: BLE001 - any failure ends the run, said plainly
            problems.append(f"the browser's part failed: {error}")
            child.kill()

    try:
        # The example's output passes through; the browser works beside it, as a person would.
        for line in child.stdout:
            print(line, end="", flush=True)
            found = AUTHORIZE_URL.search(line)
            if found and browser is None:
                browser = threading.Thread(target=person_at_browser, args=(found.group(0),))
                browser.start()
        status = child.wait()
        if browser is not None:
            browser.join()
    finally:
        timed_out = not timer.is_alive()
        timer.cancel()
    if problems:
        say(problems[0])
        return 1
    if timed_out:
        say(f"the example did not finish within {args.timeout:.0f} s")
        return 1
    if browser is None:
        say("the example printed no authorization URL")
        return status or 1
    return status


if __name__ == "__main__":
    sys.exit(main())
