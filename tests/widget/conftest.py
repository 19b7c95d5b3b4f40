"""Fixtures for the widget's browser tests: a third-party site on port 30124 that embeds the
widget from the live login_site, and headless Chromium on a thread of its own.

The site answers on three origins, each with a role in ``tests/fixtures/t1.yaml``:
``http://widget.t1.localhost:30124`` is the same *site* as the login service (what a custom
domain gives, so its cookies reach ``/authorize``), ``http://localhost:30124`` is another site,
and ``http://127.0.0.1:30124`` is an origin no client allows.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shutil
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import field
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import Browser
from playwright.sync_api import Page
from playwright.sync_api import sync_playwright

from tests.e2e.browser import ARTIFACTS
from tests.e2e.browser import CHROMIUM
from tests.e2e.browser import CHROMIUM_ARGS
from tests.e2e.browser import TIMEOUT_MS

HERE = Path(__file__).parent
PAGES = HERE / "pages"
NODE_MODULES = HERE / "node_modules"
# Registered for the widget clients in tests/fixtures/t1.yaml; below the ephemeral port range
# (32768+), so a client socket of another test cannot be holding it.
PORT = 30124
SAME_SITE = f"http://widget.t1.localhost:{PORT}"
OTHER_SITE = f"http://localhost:{PORT}"
NOT_ALLOWED = f"http://127.0.0.1:{PORT}"
SCREENSHOTS = ARTIFACTS / "widget"
AUTH0_LOCK_VERSION = "14.3.0"
AUTH0_JS_VERSION = "10.2.1"

HTML = "text/html; charset=utf-8"
JS = "text/javascript; charset=utf-8"
ROUTES = {
    "/": ("index.html", HTML),
    "/app.js": ("app.js", JS),
    "/page.css": ("page.css", "text/css; charset=utf-8"),
    "/co-verify.html": ("co-verify.html", HTML),
    "/co-verify.js": ("co-verify.js", JS),
    "/auth0-lock.html": ("auth0-lock.html", HTML),
    "/auth0-lock-app.js": ("auth0-lock-app.js", JS),
    "/auth0-js.html": ("auth0-js.html", HTML),
    "/auth0-js-app.js": ("auth0-js-app.js", JS),
}


def strict_csp(login_site: str) -> str:
    """No inline script or style, no eval, Trusted Types on: only files from this site and
    the login service. The widget's one Trusted Types policy is named ``login-site-lock``."""
    return (
        "default-src 'none'; "
        f"script-src 'self' {login_site}; style-src 'self' {login_site}; "
        f"connect-src {login_site}; img-src 'self' {login_site} data:; "
        "require-trusted-types-for 'script'; trusted-types login-site-lock; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'"
    )


class Site:
    """What the page server serves for the current test (tests run one at a time)."""

    login_site = ""
    csp = False
    vendor: dict[str, Path] = {}


class PageFiles(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/vendor/") and path[len("/vendor/") :] in Site.vendor:
            file, content_type = Site.vendor[path[len("/vendor/") :]], JS
            body = file.read_bytes()
        elif path in ROUTES:
            name, content_type = ROUTES[path]
            body = (PAGES / name).read_text().replace("@@LOGIN_SITE@@", Site.login_site).encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if Site.csp and content_type == HTML:
            self.send_header("Content-Security-Policy", strict_csp(Site.login_site))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: failures print the browser's side."""


@pytest.fixture(scope="session")
def widget_site():
    server = ThreadingHTTPServer(("127.0.0.1", PORT), PageFiles)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Site
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def site(widget_site, live_server):
    """The page server pointed at this test's live login service."""
    widget_site.login_site = live_server.url("t1", "")
    widget_site.csp = False
    yield widget_site
    widget_site.csp = False


class BrowserThread:
    """Headless Chromium on a thread of its own: ``tests/e2e``'s session browser holds the
    main thread's event loop, where a second sync Playwright cannot start (the pattern of
    ``tests/sdk/spa``). Each scenario gets a fresh context."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="widget-chromium")
        self._playwright = None
        self._browser: Browser | None = None

    def run(self, scenario: Callable[..., Any], *args: Any, **context_options: Any) -> Any:
        return self._executor.submit(self._run, scenario, args, context_options).result()

    def _run(self, scenario, args, context_options) -> Any:
        if self._browser is None:
            self._playwright = sync_playwright().start()
            self._browser = self._playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
        options = {"locale": "en-US", "viewport": {"width": 1100, "height": 860}}
        context = self._browser.new_context(**{**options, **context_options})
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
def chromium():
    browser = BrowserThread()
    yield browser
    browser.close()


@dataclass
class Record:
    """What the page did: console lines, page errors, requests and CSP violations."""

    console: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> Record:
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        page.on("request", lambda r: self.requests.append(f"{r.method} {r.url}"))
        return self

    def to(self, path: str) -> list[str]:
        return [r for r in self.requests if urlsplit(r.split(" ", 1)[1]).path == path]

    def report(self, *context: Any) -> str:
        return "\n".join(
            [repr(c) for c in context]
            + ["--- console ---", *self.console]
            + ["--- requests ---", *(r[:240] for r in self.requests)]
        )


CSP_RECORDER = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.cspViolations.push(e.violatedDirective + " " + e.blockedURI + " " + e.sourceFile);
});
"""


def open_page(
    page: Page,
    origin: str,
    client_id: str,
    login_site: str,
    options: dict | None = None,
    auto_show: bool = True,
) -> Record:
    """The test page with the widget's settings in place before any of its scripts runs."""
    record = Record().attach(page)
    config = {
        "clientId": client_id,
        "domain": login_site,
        "options": options or {},
        "autoShow": auto_show,
    }
    page.add_init_script(f"window.WIDGET = {json.dumps(config)};" + CSP_RECORDER)
    page.goto(origin + "/")
    return record


def wait_screen(page: Page, screen: str) -> None:
    page.wait_for_selector(f'.lsl-card[data-screen="{screen}"][aria-busy="false"]')


def events(page: Page, name: str | None = None) -> list[dict]:
    found = page.evaluate("window.widgetEvents || []")
    return [e for e in found if name is None or e["name"] == name]


def wait_event(page: Page, name: str) -> dict:
    page.wait_for_function(
        "name => (window.widgetEvents || []).some(e => e.name === name)", arg=name
    )
    return events(page, name)[0]


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def redeem(live_server, client_id: str, code: str, redirect_uri: str, verifier: str) -> dict:
    """The code exchange as a public client, from the test process."""
    response = requests.post(
        f"http://127.0.0.1:{live_server.port}/oauth/token",
        headers={"Host": f"t1.localhost:{live_server.port}"},
        data={
            "grant_type": "authorization_code",
            "client_id": client_id,
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()


def id_claims(id_token: str) -> dict:
    payload = id_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.fixture(scope="session")
def auth0_vendor(tmp_path_factory):
    """Auth0's widgets from tests/widget/node_modules (``npm ci --prefix tests/widget``).
    auth0-lock ships CommonJS sources only: ``build-auth0-lock.mjs`` bundles it (esbuild)."""
    lock_package = NODE_MODULES / "auth0-lock" / "package.json"
    js_package = NODE_MODULES / "auth0-js" / "package.json"
    if not lock_package.exists() or not js_package.exists():
        pytest.fail("Auth0's widgets are not installed: run `npm ci --prefix tests/widget`")
    for package, version in ((lock_package, AUTH0_LOCK_VERSION), (js_package, AUTH0_JS_VERSION)):
        installed = json.loads(package.read_text())["version"]
        if installed != version:
            pytest.fail(f"{package.parent.name} {installed} installed, expected {version}")
    out = tmp_path_factory.mktemp("vendor") / "auth0-lock.js"
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "esbuild").exists():
        pytest.fail("node and esbuild are needed: run `npm ci --prefix tests/widget`")
    subprocess.run(  # noqa: S603 - fixed command on files of this repository
        [node, str(HERE / "build-auth0-lock.mjs"), str(out)], check=True, cwd=HERE
    )
    return {
        "auth0-lock.js": out,
        "auth0.min.js": NODE_MODULES / "auth0-js" / "dist" / "auth0.min.js",
    }
