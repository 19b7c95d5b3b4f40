"""Social and enterprise logins in Chromium through the hosted login page: the button and its
icon, the loopback provider's page (tests/fixtures/upstream.py), /login/callback (a query for
GitHub and OIDC, Apple's cross-site form_post re-posted from our own origin), a refusal at the
provider, a tampered ``state``, and linking to an existing account only after its password.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlencode
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser
from playwright.sync_api import Locator
from playwright.sync_api import Page
from playwright.sync_api import Request
from playwright.sync_api import Route
from playwright.sync_api import expect
from sqlalchemy import func
from sqlalchemy import select

from login_site.models import Identity
from login_site.models import Tenant
from login_site.models import User
from tests.conftest import ALICE
from tests.conftest import query_of
from tests.e2e.browser import ARTIFACTS
from tests.e2e.browser import TIMEOUT_MS
from tests.e2e.browser import open_login
from tests.e2e.test_login_page import id_token_claims
from tests.social.conftest import APPLE_KEY
from tests.social.conftest import APPLE_KID
from tests.social.conftest import APPLE_TEAM
from tests.social.conftest import CLIENT_ID
from tests.social.conftest import CLIENT_SECRET
from tests.social.conftest import FLAVOUR_OF
from tests.social.conftest import connection_options
from tests.social.conftest import create_connection

pytestmark = pytest.mark.e2e

APP_CALLBACK = "https://app.test/cb"
STATE = "st-123"  # authorize_params' default
BAD_STATE_TITLE = "This sign-in link cannot be used"
# strategy → the button's label without display_name: the provider's for social presets, the
# connection's own name for enterprise ones
LABELS = {"github": "GitHub", "google-oauth2": "Google", "apple": "Apple", "oidc": "oidc-conn"}


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture
def connect(live_server, fresh_upstream):
    """``connect(strategy)``: a connection of T1 enabled for ``web`` through the Management
    API's service, pointing at the loopback provider, which knows our callback exactly as the
    browser reaches us (``http://t1.localhost:PORT/login/callback``)."""
    callback = live_server.url("t1", "/login/callback")

    def make(strategy: str) -> str:
        if strategy == "apple":
            fresh_upstream.add_apple_client(
                CLIENT_ID, APPLE_TEAM, APPLE_KID, APPLE_KEY.as_pem().decode(), [callback]
            )
        else:
            fresh_upstream.add_client(FLAVOUR_OF[strategy], CLIENT_ID, CLIENT_SECRET, [callback])
        name = f"{strategy}-conn"
        options = connection_options(fresh_upstream, strategy)
        create_connection(live_server.app, name, strategy, options)
        return name

    return make


def _session(live_server):
    return live_server.app.extensions["login_site.sessionmaker"]()


def t1_user(live_server, email: str | None = None, user_id: str | None = None) -> User | None:
    with _session(live_server) as db:
        query = select(User).join(Tenant, Tenant.id == User.tenant_id).where(Tenant.name == "t1")
        if email is not None:
            query = query.where(User.email == email)
        if user_id is not None:
            query = query.where(User.user_id == user_id)
        user = db.execute(query).scalar_one_or_none()
        if user is not None:
            db.expunge(user)
        return user


def providers_of(live_server, user_id: str) -> list[str]:
    """The identities of a T1 user, by provider."""
    with _session(live_server) as db:
        query = (
            select(Identity.provider)
            .join(User, User.id == Identity.user_pk)
            .join(Tenant, Tenant.id == User.tenant_id)
            .where(Tenant.name == "t1", User.user_id == user_id)
        )
        return sorted(db.execute(query).scalars())


def t1_user_count(live_server) -> int:
    with _session(live_server) as db:
        query = (
            select(func.count())
            .select_from(User)
            .join(Tenant, Tenant.id == User.tenant_id)
            .where(Tenant.name == "t1")
        )
        return db.execute(query).scalar_one()


def social_button(page: Page, strategy: str) -> Locator:
    return page.get_by_role("button", name=f"Continue with {LABELS[strategy]}", exact=True)


def assert_icon_loaded(page: Page, button: Locator, strategy: str) -> None:
    icon = button.locator("img")
    expect(icon).to_have_count(1)
    src = icon.get_attribute("src")
    assert urlsplit(src).path == f"/static/icons/connections/{strategy}.svg", src
    # "complete" is also true for a broken image: the decoded width tells them apart.
    page.wait_for_function("img => img.complete", arg=icon.element_handle())
    assert icon.evaluate("img => img.naturalWidth") > 0, f"{src} did not load"
    box = icon.bounding_box()
    assert box is not None and box["width"] > 0 and box["height"] > 0


def choose_at_provider(page: Page, flavour: str, user: str, decision: str = "Allow") -> Locator:
    """On the loopback provider's page: pick the account; returns the Allow or Cancel button."""
    page.wait_for_url(re.compile(rf"^http://127\.0\.0\.1:\d+/{flavour}/authorize\?"))
    page.get_by_label("Account").select_option(user)
    return page.get_by_role("button", name=decision, exact=True)


def start_social_login(page: Page, live_server, strategy: str) -> None:
    open_login(page, live_server)
    button = social_button(page, strategy)
    expect(button).to_be_visible()
    assert_icon_loaded(page, button, strategy)
    button.click()


def is_app_arrival(request: Request) -> bool:
    return request.is_navigation_request() and request.url.startswith(APP_CALLBACK + "?")


def reach_app(page: Page, action: Callable[[], None]) -> dict[str, str]:
    """Run ``action`` and return the query the browser was sent to the application with.

    Waits for the navigation request itself: Playwright does not fire routes for redirect
    hops, so our 302 to https://app.test first fails to resolve, and only Chromium's reload
    of the error page reaches the ``callbacks`` route a second later."""
    with page.expect_request(is_app_arrival) as arrival:
        action()
    return query_of(arrival.value.url)


@pytest.fixture
def arrivals(page: Page) -> list[str]:
    """Every navigation of the page to the application's callback (routed or not)."""
    seen: list[str] = []
    page.on(
        "request", lambda request: seen.append(request.url) if is_app_arrival(request) else None
    )
    return seen


def add_upstream_user(up, sub: str, email: str, verified: bool = True) -> None:
    up.add_user(
        sub,
        email=email,
        email_verified=verified,
        name="Ann Lee",
        given_name="Ann",
        family_name="Lee",
        login="annlee",
    )


def _screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.unlink(missing_ok=True)
    page.screenshot(path=str(path), full_page=True)
    assert path.is_file()
    assert path.stat().st_size > 0


# --- a full login per kind of provider ------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "sub"),
    [
        pytest.param("github", "github|1001", id="github-query-callback"),
        pytest.param("oidc", "oidc|oidc-conn|1001", id="oidc-enterprise"),
        pytest.param("apple", "apple|1001", id="apple-form-post"),
    ],
)
def test_social_button_logs_in_through_the_provider_and_the_code_gives_its_user(
    page, live_server, callbacks, connect, fresh_upstream, strategy, sub
):
    connect(strategy)
    add_upstream_user(fresh_upstream, "1001", "ann@example.test")
    at_callback: list[tuple[str, int, str]] = []  # method, our status, posted body
    page.on(
        "response",
        lambda response: (
            at_callback.append(
                (response.request.method, response.status, response.request.post_data or "")
            )
            if urlsplit(response.url)[1:3]
            == (f"t1.localhost:{live_server.port}", "/login/callback")
            else None
        ),
    )

    start_social_login(page, live_server, strategy)
    allow = choose_at_provider(page, FLAVOUR_OF[strategy], "1001")
    query = reach_app(page, allow.click)

    assert query["state"] == STATE
    assert query["iss"] == live_server.url("t1", "/")
    claims = id_token_claims(live_server, query["code"])
    assert claims["sub"] == sub
    assert claims["email"] == "ann@example.test"
    assert claims["email_verified"] is True
    if strategy == "apple":
        # The provider's cross-site POST came without our SameSite=Lax cookie, so we answered
        # a page (200) that posted the same fields again from our own origin (then 302).
        assert [(method, status) for method, status, _ in at_callback] == [
            ("POST", 200),
            ("POST", 302),
        ]
        assert "code=" in at_callback[0][2] and "_same_site" not in at_callback[0][2]
        assert "_same_site=1" in at_callback[1][2]
    else:
        assert [(method, status) for method, status, _ in at_callback] == [("GET", 302)]
    assert fresh_upstream.authorize_log[-1]["redirect_uri"] == live_server.url(
        "t1", "/login/callback"
    )


def test_cancel_at_the_provider_sends_access_denied_with_the_applications_state(
    page, live_server, callbacks, connect, fresh_upstream
):
    connect("github")
    add_upstream_user(fresh_upstream, "1001", "ann@example.test")
    users_before = t1_user_count(live_server)

    start_social_login(page, live_server, "github")
    cancel = choose_at_provider(page, "github", "1001", decision="Cancel")
    query = reach_app(page, cancel.click)

    assert query["error"] == "access_denied"
    assert query["state"] == STATE
    assert "code" not in query
    assert query["iss"] == live_server.url("t1", "/")
    assert t1_user_count(live_server) == users_before
    assert fresh_upstream.token_log == []


def test_tampered_state_at_the_callback_gets_a_readable_400_page_and_nobody_logs_in(
    page, live_server, callbacks, arrivals, connect, fresh_upstream
):
    connect("github")
    add_upstream_user(fresh_upstream, "1001", "ann@example.test")
    held: list[str] = []

    def hold(route: Route) -> None:
        """The provider's answer (a 302 to our callback) stops in the browser: Playwright
        cannot route the redirect hop itself, so the provider is asked from here."""
        if route.request.method != "POST":
            route.continue_()
            return
        answer = route.fetch(max_redirects=0)
        held.append(answer.headers["location"])
        route.fulfill(status=200, content_type="text/html", body="<title>held</title>")

    page.route(f"{fresh_upstream.base_url}/github/authorize", hold)
    start_social_login(page, live_server, "github")
    choose_at_provider(page, "github", "1001").click()
    expect(page).to_have_title("held")
    page.unroute(f"{fresh_upstream.base_url}/github/authorize")
    (genuine,) = held
    assert genuine.startswith(live_server.url("t1", "/login/callback?"))
    answer = query_of(genuine)
    tx_id, _, secret = answer["state"].partition(".")
    assert tx_id and secret
    tampered = f"{tx_id}.{secret[:-1]}{'B' if secret.endswith('A') else 'A'}"

    response = page.goto(
        live_server.url("t1", "/login/callback?")
        + urlencode({"code": answer["code"], "state": tampered})
    )

    assert response.status == 400
    expect(page.get_by_role("heading", name=BAD_STATE_TITLE)).to_be_visible()
    expect(page.get_by_text("Go back to the application and start again.")).to_be_visible()
    assert answer["code"] not in page.content()
    assert arrivals == []
    assert t1_user(live_server, user_id="github|1001") is None
    assert fresh_upstream.token_log == []  # the provider's code was never redeemed
    # Not vacuous: the untouched answer, in the same browser, does log in.
    query = reach_app(page, lambda: page.evaluate("url => location.assign(url)", genuine))
    assert id_token_claims(live_server, query["code"])["sub"] == "github|1001"


# --- linking to an existing account ---------------------------------------------------------


def test_verified_email_of_an_existing_user_links_only_after_her_password(
    page, live_server, callbacks, arrivals, connect, fresh_upstream
):
    alice = t1_user(live_server, email=ALICE[0])
    assert alice is not None and alice.email_verified
    assert alice.user_id.startswith("auth0|")
    assert providers_of(live_server, alice.user_id) == ["auth0"]
    connect("github")
    add_upstream_user(fresh_upstream, "1001", ALICE[0], verified=True)

    start_social_login(page, live_server, "github")
    choose_at_provider(page, "github", "1001").click()
    expect(page.get_by_role("heading", name="You already have an account")).to_be_visible()
    expect(page.get_by_text(ALICE[0])).to_be_visible()
    _screenshot(page, "social-link-account.png")
    assert arrivals == []

    password = page.get_by_label("Password of the existing account", exact=True)
    password.fill("Not-alices-password-1")
    page.get_by_role("button", name="Link accounts and continue").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong password for the existing account.")
    assert providers_of(live_server, alice.user_id) == ["auth0"]
    assert arrivals == []

    page.get_by_label("Password of the existing account", exact=True).fill(ALICE[1])
    link = page.get_by_role("button", name="Link accounts and continue")
    query = reach_app(page, link.click)

    assert query["state"] == STATE
    claims = id_token_claims(live_server, query["code"])
    assert claims["sub"] == alice.user_id
    assert claims["email"] == ALICE[0]
    assert providers_of(live_server, alice.user_id) == ["auth0", "github"]
    assert t1_user(live_server, user_id="github|1001") is None


def test_keeping_a_separate_account_on_the_linking_page_leaves_the_existing_user_alone(
    page, live_server, callbacks, connect, fresh_upstream
):
    alice = t1_user(live_server, email=ALICE[0])
    connect("github")
    add_upstream_user(fresh_upstream, "1001", ALICE[0], verified=True)

    start_social_login(page, live_server, "github")
    choose_at_provider(page, "github", "1001").click()
    separate = page.get_by_role("button", name="Keep a separate account")
    query = reach_app(page, separate.click)

    claims = id_token_claims(live_server, query["code"])
    assert claims["sub"] == "github|1001"
    assert providers_of(live_server, alice.user_id) == ["auth0"]
    assert providers_of(live_server, "github|1001") == ["github"]


def test_unverified_upstream_email_of_an_existing_user_makes_a_separate_user_without_asking(
    page, live_server, callbacks, connect, fresh_upstream
):
    alice = t1_user(live_server, email=ALICE[0])
    connect("github")
    fresh_upstream.add_user(
        "2002",
        login="mallory",
        name="Mallory",
        emails=[{"email": ALICE[0], "verified": False, "primary": True}],
    )
    callback_statuses: list[int] = []
    page.on(
        "response",
        lambda response: (
            callback_statuses.append(response.status)
            if urlsplit(response.url).path == "/login/callback"
            else None
        ),
    )

    start_social_login(page, live_server, "github")
    allow = choose_at_provider(page, "github", "2002")
    query = reach_app(page, allow.click)

    assert callback_statuses == [302]  # straight to the application: no linking page
    claims = id_token_claims(live_server, query["code"])
    assert claims["sub"] == "github|2002"
    assert claims["sub"] != alice.user_id
    assert claims["email"] == ALICE[0]
    assert claims["email_verified"] is False
    assert providers_of(live_server, alice.user_id) == ["auth0"]
    assert providers_of(live_server, "github|2002") == ["github"]


# --- screenshots for review -----------------------------------------------------------------


def test_login_page_with_several_social_buttons_is_saved_for_review(
    browser: Browser, live_server, connect
):
    strategies = ("github", "google-oauth2", "apple", "oidc")
    for strategy in strategies:
        connect(strategy)
    for name, device in (
        ("social-login-desktop.png", {"viewport": {"width": 1280, "height": 800}}),
        (
            "social-login-mobile.png",
            {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
        ),
    ):
        context = browser.new_context(locale="en-US", **device)
        context.set_default_timeout(TIMEOUT_MS)
        try:
            page = open_login(context.new_page(), live_server)
            buttons = page.locator("button.button-connection")
            expect(buttons).to_have_count(len(strategies))
            for strategy in strategies:
                button = social_button(page, strategy)
                expect(button).to_be_visible()
                assert_icon_loaded(page, button, strategy)
            # The buttons sit in one column, each fully inside the viewport's width.
            width = page.viewport_size["width"]
            boxes = [buttons.nth(i).bounding_box() for i in range(len(strategies))]
            assert all(b["x"] >= 0 and b["x"] + b["width"] <= width for b in boxes), boxes
            assert len({round(b["x"]) for b in boxes}) == 1, boxes
            _screenshot(page, name)
        finally:
            context.close()
