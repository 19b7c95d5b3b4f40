"""Browser fixtures (registered once, in tests/conftest.py): one headless Chromium per run,
a fresh context and page per test, and helpers to reach the hosted login page.

The app's callbacks (``https://app.test``, ``https://partners.test``) do not exist: the
``callbacks`` fixture answers them inside the browser and records the URLs it saw."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from playwright.sync_api import Browser
from playwright.sync_api import BrowserContext
from playwright.sync_api import Page
from playwright.sync_api import Route
from playwright.sync_api import sync_playwright

from tests.conftest import authorize_params

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Generous: argon2 at the production floor runs on every login and sign-up.
TIMEOUT_MS = 15_000
CALLBACK_ORIGINS = ("https://app.test", "https://partners.test", "https://empty.test")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="session")
def browser() -> Browser:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def context(browser: Browser) -> BrowserContext:
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


class Callbacks:
    """Navigations to a client's callback, answered with a tiny page instead of the network."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def handle(self, route: Route) -> None:
        if not route.request.is_navigation_request():  # a favicon, say: not a callback
            route.fulfill(status=404)
            return
        self.urls.append(route.request.url)
        route.fulfill(
            status=200,
            content_type="text/html; charset=utf-8",
            body="<!doctype html><title>callback</title><p>callback reached</p>",
        )


@pytest.fixture
def callbacks(page: Page) -> Callbacks:
    recorder = Callbacks()
    for origin in CALLBACK_ORIGINS:
        page.route(f"{origin}/**", recorder.handle)
    return recorder


def open_login(page: Page, live_server, tenant: str = "t1", **params) -> Page:
    """Start at /authorize as an application would and wait for the hosted login page."""
    page.goto(live_server.url(tenant, "/authorize?" + urlencode(authorize_params(**params))))
    page.wait_for_url("**/login?**")
    return page


def api(live_server, method: str, path: str, tenant: str = "t1", **kwargs) -> requests.Response:
    """Back-channel call from the test process. Python does not resolve ``*.localhost``
    the way Chromium does, so connect to loopback and name the tenant in ``Host``."""
    host = f"{tenant}.localhost:{live_server.port}"
    headers = {"Host": host, **kwargs.pop("headers", {})}
    return requests.request(
        method,
        f"http://127.0.0.1:{live_server.port}{path}",
        headers=headers,
        timeout=30,
        allow_redirects=False,
        **kwargs,
    )
