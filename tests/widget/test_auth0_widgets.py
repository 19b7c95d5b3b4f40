"""Auth0's own browser widgets, unchanged, against the live login service: auth0-lock 14.3.0
(bundled here by esbuild: the package ships CommonJS only) and auth0-js 10.2.1.

Both run on ``http://widget.t1.localhost:30124``, the same site as the login service, so the
ticket cookie of ``/co/authenticate`` reaches ``/authorize`` (compat §8). What they need from
the page over http is in docs/widget.md: ``domain`` given as ``http://…`` (auth0.js uses it as
is), Lock's ``configurationBaseUrl``, and ``overrides`` for the issuer and JWKS. The ``widget``
client is public, so the page passes a PKCE challenge through ``params``; the test process
redeems the code with the verifier.
"""

from __future__ import annotations

import json
import secrets
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page

from tests.widget.conftest import SAME_SITE
from tests.widget.conftest import Record
from tests.widget.conftest import id_claims
from tests.widget.conftest import pkce_pair
from tests.widget.conftest import redeem
from tests.widget.conftest import screenshot

pytestmark = pytest.mark.e2e

WENDY = ("wendy@example.test", "Widget-password-1")
CALLBACK = SAME_SITE + "/"


@pytest.fixture
def auth0_site(site, auth0_vendor):
    site.vendor = auth0_vendor
    return site


def _open(page: Page, path: str, login_site: str, challenge: str, state: str) -> Record:
    record = Record().attach(page)
    settings = {
        "clientId": "widget",
        "domain": login_site,
        "baseUrl": login_site,
        "tenant": "t1",
        "connection": "widget-db",
        "redirectUrl": CALLBACK,
        "codeChallenge": challenge,
        "state": state,
        "nonce": secrets.token_urlsafe(16),
    }
    page.add_init_script(f"window.AUTH0_TEST = {json.dumps(settings)};")
    page.goto(SAME_SITE + path)
    return record


def _code_at_callback(page: Page, record: Record) -> dict[str, str]:
    page.wait_for_url(CALLBACK + "?**")
    params = {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items()}
    assert "code" in params, record.report(params)
    return params


def test_auth0_lock_logs_in_with_the_database_connection(chromium, auth0_site, live_server):
    verifier, challenge = pkce_pair()

    def scenario(page: Page):
        record = _open(page, "/auth0-lock.html", auth0_site.login_site, challenge, "")
        try:
            page.wait_for_selector("input[name=email]")
        except PlaywrightError as exc:
            raise AssertionError(record.report("Lock did not show its form")) from exc
        screenshot(page, "20-auth0-lock")
        page.fill("input[name=email]", WENDY[0])
        page.fill("input[name=password]", WENDY[1])
        page.click("button[type=submit]")
        return _code_at_callback(page, record), record

    params, record = chromium.run(scenario)
    assert record.to("/co/authenticate"), record.report()
    assert record.to("/client/widget.js"), record.report()
    tokens = redeem(live_server, "widget", params["code"], CALLBACK, verifier)
    assert id_claims(tokens["id_token"])["email"] == WENDY[0]


def test_auth0_js_login_uses_cross_origin_authentication(chromium, auth0_site, live_server):
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)

    def scenario(page: Page):
        record = _open(page, "/auth0-js.html", auth0_site.login_site, challenge, state)
        page.wait_for_function("window.auth0Ready === true")
        page.evaluate("([u, p]) => loginWithPassword(u, p)", list(WENDY))
        return _code_at_callback(page, record), record

    params, record = chromium.run(scenario)
    assert params["state"] == state
    authorize = [r for r in record.to("/authorize") if "login_ticket=" in r]
    assert authorize, record.report()
    tokens = redeem(live_server, "widget", params["code"], CALLBACK, verifier)
    assert id_claims(tokens["id_token"])["email"] == WENDY[0]


def test_auth0_js_authorize_goes_through_the_hosted_page(chromium, auth0_site, live_server):
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)

    def scenario(page: Page):
        record = _open(page, "/auth0-js.html", auth0_site.login_site, challenge, state)
        page.wait_for_function("window.auth0Ready === true")
        page.evaluate("authorizeWithConnection()")
        page.wait_for_url("**/login?**")
        page.locator("#username").fill(WENDY[0])
        page.locator("#password").fill(WENDY[1])
        page.get_by_role("button", name="Continue").click()
        return _code_at_callback(page, record), record

    params, record = chromium.run(scenario)
    assert params["state"] == state
    tokens = redeem(live_server, "widget", params["code"], CALLBACK, verifier)
    assert id_claims(tokens["id_token"])["email"] == WENDY[0]
