"""Auth0's browser SDK, @auth0/auth0-spa-js 2.27.0, unchanged against the live server in
headless Chromium.

A static single-page app (``app/``) is served on ``http://localhost:38123``, the origin
registered for client ``sdk-spa`` in ``tests/fixtures/t1.yaml``, and configured with
``domain: "http://t1.localhost:PORT"``: spa-js uses an ``http`` domain as-is and expects the
issuer ``http://t1.localhost:PORT/`` (compat §0.1). What the SDK needs from login_site:
the hosted login and a code at the callback (§1), the token endpoint called cross-origin with a
preflight (§0.5, §2), ``web_message`` in a hidden iframe for silent authentication (§1.2), and
``/v2/logout`` (§5).

Every browser request, response, failure and console message is recorded, and a failed
assertion prints them: what the SDK saw is the evidence.

The SDK is installed with ``npm ci --prefix tests/sdk/spa``.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page
from playwright.sync_api import Request
from playwright.sync_api import Response
from playwright.sync_api import sync_playwright

from tests.conftest import ALICE
from tests.e2e.browser import CHROMIUM
from tests.e2e.browser import CHROMIUM_ARGS
from tests.e2e.browser import TIMEOUT_MS

pytestmark = pytest.mark.e2e

HERE = Path(__file__).parent
SDK_PACKAGE = HERE / "node_modules" / "@auth0" / "auth0-spa-js"
SDK_VERSION = "2.27.0"
CLIENT_ID = "sdk-spa"
APP_PORT = 38123  # registered for sdk-spa in tests/fixtures/t1.yaml
APP = f"http://localhost:{APP_PORT}"
CALLBACK = f"{APP}/callback"
# The same app on the login site's own site (t1.localhost): what a custom domain gives.
SAME_SITE_APP = f"http://spa.t1.localhost:{APP_PORT}"
SCOPE = "openid profile email offline_access"
# spa-js's own iframe timeout; its default (60 s) would outlast Playwright's.
IFRAME_TIMEOUT_SECONDS = 10
URL_CHARS_SHOWN = 220
SHOWN_RESPONSE_HEADERS = (
    "headers unavailable",
    "location",
    "access-control-allow-origin",
    "content-security-policy",
    "x-frame-options",
    "set-cookie",
)


# --- the static app -------------------------------------------------------------------------

ROUTES = {
    "/": (HERE / "app" / "index.html", "text/html; charset=utf-8"),
    "/callback": (HERE / "app" / "index.html", "text/html; charset=utf-8"),
    "/app.js": (HERE / "app" / "app.js", "text/javascript; charset=utf-8"),
    "/sdk/auth0-spa-js.production.js": (
        SDK_PACKAGE / "dist" / "auth0-spa-js.production.js",
        "text/javascript; charset=utf-8",
    ),
}


class AppFiles(BaseHTTPRequestHandler):
    """Serves the few files of the app and nothing else (no directory listing of the repo)."""

    def do_GET(self) -> None:
        route = ROUTES.get(urlsplit(self.path).path)
        if route is None:
            self.send_error(404)
            return
        path, content_type = route
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the browser-side record is what the tests print."""


def _require_sdk() -> None:
    if not (SDK_PACKAGE / "package.json").exists():
        pytest.fail("auth0-spa-js is not installed: run `npm ci --prefix tests/sdk/spa`")


@pytest.fixture(scope="session")
def spa_app() -> str:
    """The app on 127.0.0.1:38123, addressed as ``http://localhost:38123`` (the registered
    origin: ``localhost`` is not ``127.0.0.1`` to the browser)."""
    _require_sdk()
    version = json.loads((SDK_PACKAGE / "package.json").read_text())["version"]
    if version != SDK_VERSION:
        pytest.fail(f"auth0-spa-js {version} installed, expected {SDK_VERSION}")
    server = ThreadingHTTPServer(("127.0.0.1", APP_PORT), AppFiles)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield APP
    server.shutdown()
    server.server_close()
    thread.join(5)


# --- the browser ----------------------------------------------------------------------------


class BrowserThread:
    """Headless Chromium on a thread of its own.

    A sync Playwright instance claims its thread's event loop, and ``tests/e2e``'s
    session-scoped browser already holds the main thread's for the rest of the run, so a
    second instance cannot start there. Scenarios run here instead, one fresh context each."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spa-chromium")
        self._playwright = None
        self._browser: Browser | None = None

    def run(self, scenario: Callable[..., Any], *args: Any) -> Any:
        return self._executor.submit(self._run, scenario, *args).result()

    def _run(self, scenario: Callable[..., Any], *args: Any) -> Any:
        if self._browser is None:
            self._playwright = sync_playwright().start()
            self._browser = self._playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
        context = self._browser.new_context(locale="en-US")
        context.set_default_timeout(TIMEOUT_MS)
        try:
            return scenario(context.new_page(), *args)
        finally:
            context.close()

    def close(self) -> None:
        def stop() -> None:
            if self._browser is not None:
                self._browser.close()
                self._playwright.stop()

        self._executor.submit(stop).result()
        self._executor.shutdown()


@pytest.fixture(scope="session")
def chromium() -> BrowserThread:
    _require_sdk()
    browser = BrowserThread()
    yield browser
    browser.close()


# --- what the browser saw -------------------------------------------------------------------


def _short(url: str) -> str:
    return url if len(url) <= URL_CHARS_SHOWN else url[:URL_CHARS_SHOWN] + "…"


def _raw_headers(message: Request | Response) -> dict[str, str]:
    """All headers, cookies included (``.headers`` leaves them out)."""
    try:
        return message.all_headers()
    except PlaywrightError as exc:
        return {"headers unavailable": str(exc).splitlines()[0]}


def _cookie_names(header: str) -> list[str]:
    return sorted(c.split("=", 1)[0].strip() for c in header.split(";") if c.strip())


def _set_cookie_attributes(header: str) -> str:
    """Names and attributes of the cookies set, never their values."""
    return " | ".join(
        "; ".join([cookie.split("=", 1)[0], *(a.strip() for a in cookie.split(";")[1:])])
        for cookie in header.split("\n")
    )


class Traffic:
    """Requests, responses, failures and console output of a page and its frames, in order.

    Handlers only record; headers are read when the report is written, because reading them
    takes a round trip to the browser and a handler still waiting for one can be overtaken by
    the test."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.requests: list[Request] = []
        self.events: list[tuple[str, Any]] = []
        page.on("request", self._on_request)
        page.on("response", lambda response: self.events.append(("response", response)))
        page.on("requestfailed", self._on_failed)
        # A 404 favicon shows up here without a request event.
        page.on("console", lambda m: self.events.append(("text", f"console.{m.type}: {m.text}")))
        page.on("pageerror", lambda error: self.events.append(("text", f"page error: {error}")))

    def _on_request(self, request: Request) -> None:
        self.requests.append(request)
        self.events.append(("request", request))

    def _on_failed(self, request: Request) -> None:
        text = f"✗ {request.method} {_short(request.url)}: {request.failure}"
        self.events.append(("text", text))

    def to(self, path: str, method: str | None = None) -> list[Request]:
        """Requests the page sent to ``path`` on any host."""
        return [
            r
            for r in self.requests
            if urlsplit(r.url).path == path and (method is None or r.method == method)
        ]

    def _where(self, request: Request) -> str:
        try:
            frame = request.frame
        except PlaywrightError:  # a worker's request has no frame
            return " [worker]"
        return "" if frame == self.page.main_frame else " [iframe]"

    def _request_line(self, request: Request) -> str:
        line = f"→ {request.method} {_short(request.url)}{self._where(request)}"
        if request.method == "POST" and request.post_data:
            line += f" body fields={sorted(parse_qs(request.post_data)) or ['<json>']}"
        cookies = _cookie_names(_raw_headers(request).get("cookie", ""))
        return line + (f" cookies={cookies}" if cookies else " (no cookies)")

    def _response_line(self, response: Response) -> str:
        line = f"← {response.status} {response.request.method} {_short(response.url)}"
        headers = _raw_headers(response)
        shown = {k: headers[k] for k in SHOWN_RESPONSE_HEADERS if k in headers}
        if "set-cookie" in shown:
            shown["set-cookie"] = _set_cookie_attributes(shown["set-cookie"])
        if "content-security-policy" in shown:
            shown["content-security-policy"] = shown["content-security-policy"].split(";")[-1]
        if response.status >= 400 and "json" in headers.get("content-type", ""):
            shown["body"] = response.text()[:300]
        return f"{line} {shown}" if shown else line

    def report(self, *context: Any) -> str:
        lines = [repr(c) for c in context] + ["--- browser traffic ---"]
        for kind, item in self.events:
            if kind == "request":
                lines.append(self._request_line(item))
            elif kind == "response":
                lines.append(self._response_line(item))
            else:
                lines.append(item[:600])
        return "\n".join(lines)


# --- driving the app ------------------------------------------------------------------------


def open_app(page: Page, domain: str, app: str = APP, **config: Any) -> Traffic:
    """Load the app with its SDK configuration set before any script of the page runs."""
    traffic = Traffic(page)
    settings = {"domain": domain, "clientId": CLIENT_ID, **config}
    page.add_init_script(f"window.SPA_CONFIG = {json.dumps(settings)};")
    page.goto(app + "/")
    page.wait_for_function("window.spaReady === true")
    return traffic


def log_in(page: Page, traffic: Traffic, app: str = APP) -> None:
    """loginWithRedirect, the hosted login page as Alice, then handleRedirectCallback."""
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/login?**")
    page.locator("#username").fill(ALICE[0])
    page.locator("#password").fill(ALICE[1])
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(app + "/callback?**")
    page.wait_for_function("window.spaReady === true")
    result = page.evaluate("spa.handleRedirectCallback()")
    assert result["ok"], traffic.report("handleRedirectCallback failed", result)


def token_entry(page: Page) -> dict:
    """The SDK's cached token set (cacheLocation "localstorage"), not the user entry."""
    entries = page.evaluate("spa.cacheEntries()")
    tokens = [v for k, v in entries.items() if not k.endswith("@@user@@")]
    assert len(tokens) == 1, entries.keys()
    return tokens[0]["body"]


def telemetry(value: str) -> dict:
    return json.loads(base64.b64decode(value + "=" * (-len(value) % 4)))


def domain_of(live_server) -> str:
    """``http://t1.localhost:PORT``, no trailing slash: spa-js appends paths and the "/" of
    the issuer it expects."""
    return live_server.url("t1", "")


# --- the tests ------------------------------------------------------------------------------


def test_login_with_redirect_returns_to_the_app_and_get_user_returns_alice(
    chromium, spa_app, live_server
):
    def scenario(page: Page) -> None:
        traffic = open_app(page, domain_of(live_server))
        # handleRedirectCallback has also checked the ID token's iss, aud, nonce and times.
        log_in(page, traffic)
        authorize = traffic.to("/authorize")[0]
        params = {k: v[0] for k, v in parse_qs(urlsplit(authorize.url).query).items()}
        assert params["client_id"] == CLIENT_ID
        assert params["redirect_uri"] == CALLBACK
        assert params["code_challenge_method"] == "S256"
        assert set(params["scope"].split()) == set(SCOPE.split())
        assert telemetry(params["auth0Client"])["version"] == SDK_VERSION
        exchange = traffic.to("/oauth/token", "POST")
        assert len(exchange) == 1, traffic.report()
        assert parse_qs(exchange[0].post_data)["grant_type"] == ["authorization_code"]
        user = page.evaluate("spa.getUser()")
        assert user["ok"], traffic.report(user)
        assert user["value"]["email"] == ALICE[0], traffic.report(user)
        assert user["value"]["sub"]
        assert page.evaluate("spa.client.isAuthenticated()") is True

    chromium.run(scenario)


def test_get_token_silently_with_refresh_tokens_returns_a_new_token_and_rotates_the_refresh_token(
    chromium, spa_app, live_server
):
    def scenario(page: Page) -> None:
        traffic = open_app(
            page, domain_of(live_server), useRefreshTokens=True, cacheLocation="localstorage"
        )
        log_in(page, traffic)
        before = token_entry(page)
        assert before.get("refresh_token"), traffic.report("no refresh token issued", before)

        result = page.evaluate("spa.getTokenSilently({cacheMode: 'off'})")
        assert result["ok"], traffic.report("getTokenSilently failed", result)
        refreshes = [
            r
            for r in traffic.to("/oauth/token", "POST")
            if parse_qs(r.post_data).get("grant_type") == ["refresh_token"]
        ]
        assert len(refreshes) == 1, traffic.report()
        assert not traffic.to("/authorize", "GET")[1:], traffic.report("fell back to the iframe")
        assert result["value"]["access_token"] != before["access_token"]
        after = token_entry(page)
        assert after["access_token"] == result["value"]["access_token"]
        assert after["refresh_token"], traffic.report("refresh token lost", after)
        assert after["refresh_token"] != before["refresh_token"], "refresh token not rotated"

    chromium.run(scenario)


def silent_authentication(page: Page, traffic: Traffic, app: str) -> tuple[dict, dict, list]:
    """Log in, then getTokenSilently through the hidden iframe (response_mode=web_message)."""
    log_in(page, traffic, app)
    before = page.evaluate("spa.getTokenSilently()")  # from the cache
    assert before["ok"], traffic.report(before)
    options = {"cacheMode": "off", "timeoutInSeconds": IFRAME_TIMEOUT_SECONDS}
    result = page.evaluate("options => spa.getTokenSilently(options)", options)
    silent = [
        r
        for r in traffic.to("/authorize", "GET")
        if "prompt=none" in r.url and "response_mode=web_message" in r.url
    ]
    assert len(silent) == 1, traffic.report("no silent /authorize in an iframe", result)
    return before, result, silent


def test_get_token_silently_without_refresh_tokens_uses_the_iframe_and_returns_a_token(
    chromium, spa_app, live_server
):
    """Same site (a custom domain in production): the session cookie reaches the iframe."""

    def scenario(page: Page) -> None:
        traffic = open_app(page, domain_of(live_server), SAME_SITE_APP, useRefreshTokens=False)
        before, result, silent = silent_authentication(page, traffic, SAME_SITE_APP)
        session_cookie = live_server.app.config["SESSION_COOKIE_NAME"]
        sent = _cookie_names(_raw_headers(silent[0]).get("cookie", ""))
        assert session_cookie in sent, traffic.report("no session cookie in the iframe", result)
        assert result["ok"], traffic.report("silent authentication failed", result)
        assert result["value"]["access_token"] != before["value"]["access_token"]
        assert len(traffic.to("/oauth/token", "POST")) == 2, traffic.report()

    chromium.run(scenario)


def test_cross_site_iframe_gets_login_required_not_a_broken_page(chromium, spa_app, live_server):
    """Another site: browsers withhold the cookie from third-party iframes, so silent
    authentication answers login_required cleanly (use refresh tokens there, as Auth0
    advises)."""

    def scenario(page: Page) -> None:
        traffic = open_app(page, domain_of(live_server), useRefreshTokens=False)
        _, result, _ = silent_authentication(page, traffic, APP)
        assert not result["ok"] and result["error"] == "login_required", traffic.report(result)

    chromium.run(scenario)


def test_logout_returns_to_the_app_and_ends_the_login_session(chromium, spa_app, live_server):
    def scenario(page: Page) -> None:
        traffic = open_app(page, domain_of(live_server))
        log_in(page, traffic)

        page.get_by_role("button", name="Log out").click()
        page.wait_for_url(APP + "/")
        logout = traffic.to("/v2/logout", "GET")
        assert len(logout) == 1, traffic.report()
        params = {k: v[0] for k, v in parse_qs(urlsplit(logout[0].url).query).items()}
        assert params["client_id"] == CLIENT_ID
        assert params["returnTo"] == APP + "/"
        page.wait_for_function("window.spaReady === true")
        assert page.evaluate("spa.client.isAuthenticated()") is False

        options = {"timeoutInSeconds": IFRAME_TIMEOUT_SECONDS}
        result = page.evaluate("options => spa.getTokenSilently(options)", options)
        assert not result["ok"], traffic.report("a token after logout", result)
        assert result["error"] == "login_required", traffic.report(result)

        # The iframe above cannot tell a dead session from a cookie that never reached it;
        # a top-level login can: it must ask for the password again.
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/login?**")
        assert page.locator("#password").is_visible()

    chromium.run(scenario)
