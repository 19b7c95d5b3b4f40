"""The hosted login page in a real browser: what it offers, sign-up, log-in, failures,
what it loads, labels, and screenshots for a human to look at."""

from __future__ import annotations

import re
import uuid
from urllib.parse import urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from playwright.sync_api import Browser
from playwright.sync_api import Page
from playwright.sync_api import expect

from tests.conftest import ALICE
from tests.conftest import WEB_SECRET
from tests.conftest import pkce_pair
from tests.conftest import query_of
from tests.e2e.browser import ARTIFACTS
from tests.e2e.browser import TIMEOUT_MS
from tests.e2e.browser import api
from tests.e2e.browser import open_login

pytestmark = pytest.mark.e2e

MET = re.compile(r"(^|\s)met(\s|$)")
GENERIC_FAILURE = "Wrong email or password."
STATE = "st-123"  # authorize_params' default
# Connections enabled for some client but never offerable: not implemented, or not enabled.
NEVER_SHOWN = ("corp-saml", "closed-db")


def assert_signup_screen(page: Page) -> None:
    # The page has loaded (wait_for_url waits for "load"): no need to poll.
    assert page.title().startswith("Sign up · "), page.title()


def open_signup(page: Page, live_server, **params) -> Page:
    open_login(page, live_server, **params)
    page.get_by_role("link", name="Sign up").click()
    page.wait_for_url("**screen=signup**")
    return page


def reach_callback(page: Page, button: str, prefix: str = "https://app.test/cb?") -> dict:
    page.get_by_role("button", name=button).click()
    page.wait_for_url(prefix + "**")
    return query_of(page.url)


def id_token_claims(live_server, code: str) -> dict:
    """Redeem the code as the ``web`` backend would and verify the ID token's signature."""
    response = api(
        live_server,
        "POST",
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "https://app.test/cb",
        },
        auth=("web", WEB_SECRET),
    )
    assert response.status_code == 200, response.text
    keys = KeySet.import_key_set(api(live_server, "GET", "/.well-known/jwks.json").json())
    claims = jwt.decode(response.json()["id_token"], keys).claims
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": live_server.url("t1", "/")},
        aud={"essential": True, "value": "web"},
        nonce={"essential": True, "value": "n-456"},
    ).validate(claims)
    return claims


# --- what the page offers -------------------------------------------------------------------


def _spa_params() -> dict:
    _, challenge = pkce_pair()
    return {
        "client_id": "spa",
        "redirect_uri": "http://127.0.0.1:8765/cb",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }


@pytest.mark.parametrize(
    ("params", "connection", "others", "identifier_label", "identifier_type"),
    [
        pytest.param(
            {},
            "db",
            ["email-otp", "sms"],
            "Email address",
            "email",
            id="web-gets-the-default-directory-and-its-passwordless",
        ),
        pytest.param(
            _spa_params(), "db", ["email-otp"], "Email address", "email", id="spa-gets-db-and-email"
        ),
        pytest.param(
            {"client_id": "partners", "redirect_uri": "https://partners.test/cb"},
            "partners-db",
            [],
            "Username or email address",
            "text",
            id="partners-gets-partners-db-with-a-username",
        ),
        pytest.param(
            {"connection": "partners-db"},
            "partners-db",
            [],
            "Username or email address",
            "text",
            id="web-asking-for-partners-db-gets-only-it",
        ),
    ],
)
def test_login_page_offers_exactly_the_clients_enabled_implemented_connection(
    page, live_server, params, connection, others, identifier_label, identifier_type
):
    open_login(page, live_server, **params)
    forms = page.locator("form[data-connection]")
    expect(forms).to_have_count(1 + len(others))
    names = [forms.nth(i).get_attribute("data-connection") for i in range(1 + len(others))]
    assert names == [connection, *others]
    form = forms.first
    expect(form.locator('input[name="connection"]')).to_have_value(connection)
    identifier = page.get_by_label(identifier_label, exact=True)
    expect(identifier).to_have_attribute("type", identifier_type)
    expect(identifier).to_have_attribute("name", "username")
    # No dead buttons for connections without a strategy (corp-saml, closed-db...).
    html = page.content()
    for name in NEVER_SHOWN:
        assert name not in html


def test_client_without_connections_shows_no_sign_in_method(page, live_server):
    open_login(page, live_server, client_id="empty", redirect_uri="https://empty.test/cb")
    expect(page.get_by_text("No sign-in method is enabled for this application")).to_be_visible()
    expect(page.locator("form")).to_have_count(0)
    expect(page.locator("input:visible")).to_have_count(0)
    expect(page.get_by_role("link", name="Sign up")).to_have_count(0)


# --- sign-up and log-in ---------------------------------------------------------------------


def test_signup_marks_policy_rules_as_typed_and_returns_a_code_for_the_new_user(
    page, live_server, callbacks
):
    open_signup(page, live_server)
    assert_signup_screen(page)
    length = page.locator('#policy > li[data-code="lengthAtLeast"]')
    kinds = page.locator('#policy > li[data-code="containsAtLeast"]')
    expect(length).not_to_have_class(MET)
    expect(kinds).not_to_have_class(MET)

    email = f"new-{uuid.uuid4().hex[:10]}@example.test"
    page.get_by_label("Email address", exact=True).fill(email)
    password = page.get_by_label("Password", exact=True)
    password.press_sequentially("Sturdy")  # lower and upper case, six characters
    expect(page.locator('#policy [data-class="lower"]')).to_have_class(MET)
    expect(page.locator('#policy [data-class="upper"]')).to_have_class(MET)
    expect(page.locator('#policy [data-class="digit"]')).not_to_have_class(MET)
    expect(length).not_to_have_class(MET)
    expect(kinds).not_to_have_class(MET)
    password.press_sequentially("-Passw0rd")
    expect(page.locator('#policy [data-class="digit"]')).to_have_class(MET)
    expect(page.locator('#policy [data-class="special"]')).to_have_class(MET)
    expect(length).to_have_class(MET)
    expect(kinds).to_have_class(MET)

    query = reach_callback(page, "Create account")
    assert query["state"] == STATE
    assert query["code"]
    assert len(callbacks.urls) == 1
    assert id_token_claims(live_server, query["code"])["email"] == email


def test_alice_logs_in_and_lands_on_the_callback_with_code_state_and_issuer(
    page, live_server, callbacks
):
    open_login(page, live_server)
    page.get_by_label("Email address", exact=True).fill(ALICE[0])
    page.get_by_label("Password", exact=True).fill(ALICE[1])
    query = reach_callback(page, "Continue")
    assert query["state"] == STATE
    assert query["code"]
    assert query["iss"] == live_server.url("t1", "/")  # RFC 9207
    assert callbacks.urls == [page.url]
    assert id_token_claims(live_server, query["code"])["email"] == ALICE[0]


def _failed_login(page: Page, live_server, email: str, password: str) -> str:
    open_login(page, live_server)
    page.get_by_label("Email address", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Continue").click()
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible()
    assert password not in page.content()  # never echoed back (no escapable characters)
    return alert.inner_text().strip()


def test_wrong_password_and_unknown_user_get_the_same_generic_alert(page, live_server, callbacks):
    wrong_password = _failed_login(page, live_server, ALICE[0], "Not-alices-password-1")
    unknown_user = _failed_login(page, live_server, "nobody@example.test", ALICE[1])
    assert wrong_password == unknown_user == GENERIC_FAILURE
    assert callbacks.urls == []
    expect(page.locator("#username")).to_have_attribute("aria-describedby", "form-error")
    field = page.get_by_label("Password", exact=True)
    expect(field).to_have_attribute("type", "password")
    expect(field).to_have_attribute("autocomplete", "current-password")  # never "off"


# --- what the page loads, and accessibility -------------------------------------------------


def test_login_page_loads_nothing_from_other_origins(page, live_server, callbacks):
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    open_login(page, live_server)
    page.wait_for_load_state("load")
    page.get_by_label("Email address", exact=True).fill(ALICE[0])
    page.get_by_label("Password", exact=True).fill(ALICE[1])
    reach_callback(page, "Continue")

    own = f"http://t1.localhost:{live_server.port}"
    foreign = [
        url
        for url in requested
        if f"{urlsplit(url).scheme}://{urlsplit(url).netloc}" != own and url not in callbacks.urls
    ]
    assert foreign == []
    paths = {urlsplit(url).path for url in requested}
    # Not vacuous: the page's own styles and script were fetched and watched.
    assert {"/static/css/login.css", "/branding.css", "/static/js/login.js"} <= paths
    assert len(callbacks.urls) == 1


LABELLED = """
el => Boolean(
    Array.from(el.labels || []).some(label => label.innerText.trim())
    || (el.getAttribute("aria-label") || "").trim()
    || (el.getAttribute("aria-labelledby") || "").trim()
)
"""


def _assert_visible_inputs_are_labelled(page: Page) -> None:
    fields = page.locator("input:visible, select:visible, textarea:visible")
    assert fields.count() > 0
    unlabelled = [
        field.evaluate("el => el.outerHTML")
        for field in fields.all()
        if not field.evaluate(LABELLED)
    ]
    assert unlabelled == []


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({}, id="db"),
        pytest.param(
            {"client_id": "partners", "redirect_uri": "https://partners.test/cb"},
            id="partners-db",
        ),
    ],
)
def test_every_visible_input_on_the_login_form_has_a_label(page, live_server, params):
    open_login(page, live_server, **params)
    _assert_visible_inputs_are_labelled(page)


def test_every_visible_input_on_the_signup_form_has_a_label(page, live_server):
    open_signup(page, live_server)
    assert_signup_screen(page)
    _assert_visible_inputs_are_labelled(page)


# --- screenshots for review -----------------------------------------------------------------

DESKTOP = {"viewport": {"width": 1280, "height": 800}}
MOBILE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


def _screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.unlink(missing_ok=True)
    page.screenshot(path=str(path), full_page=True)
    assert path.is_file()
    assert path.stat().st_size > 0


@pytest.mark.parametrize(
    ("device", "name"),
    [(DESKTOP, "login-desktop.png"), (MOBILE, "login-mobile.png")],
    ids=["desktop", "mobile"],
)
def test_login_page_screenshot_is_saved_for_review(browser: Browser, live_server, device, name):
    context = browser.new_context(locale="en-US", **device)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = open_login(context.new_page(), live_server)
        expect(page.locator("form").first).to_be_visible()
        _screenshot(page, name)
    finally:
        context.close()


def test_signup_page_screenshot_is_saved_for_review(page, live_server):
    open_signup(page, live_server)
    # Saved first, so a broken page is visible to the reviewer too.
    _screenshot(page, "signup-desktop.png")
    assert_signup_screen(page)
