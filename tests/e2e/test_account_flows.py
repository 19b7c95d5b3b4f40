"""Account flows end to end in Chromium: a brute-force block and its unblock link, sign-up
and email verification, the logged-in password change, and two browsers racing for one
reset link."""

from __future__ import annotations

import time
import uuid
from urllib.parse import urlsplit

import pytest
import requests
import sqlalchemy as sa
from joserfc import jwt
from joserfc.jwk import KeySet
from playwright.sync_api import Browser
from playwright.sync_api import Page
from playwright.sync_api import expect

from login_site import passwords
from login_site.models import DatabaseCredential
from login_site.models import Identity
from login_site.models import LoginAttempt
from login_site.models import Tenant
from login_site.models import User
from login_site.models import UserTicket
from tests.conftest import ALICE
from tests.conftest import WEB_SECRET
from tests.conftest import query_of
from tests.e2e.browser import ARTIFACTS
from tests.e2e.browser import TIMEOUT_MS
from tests.e2e.browser import open_login

pytestmark = pytest.mark.e2e

CAROL = ("carol@example.test", "Carol-password-1")
WRONG = "Wrong-password-1"
GENERIC_FAILURE = "Wrong email or password."
BLOCKED_TEXT = "Your account has been blocked after multiple consecutive login attempts."
NEW_PASSWORD = "Fresh-Garden-Path7"
CALLBACK = "https://app.test/cb"


# --- helpers --------------------------------------------------------------------------------


def _screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.unlink(missing_ok=True)
    page.screenshot(path=str(path), full_page=True)
    assert path.is_file()
    assert path.stat().st_size > 0


def _session(live_server):
    return live_server.app.extensions["login_site.sessionmaker"]()


def fill_login_form(page: Page, username: str, password: str) -> None:
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)


def submit_login_form(page: Page, username: str, password: str) -> None:
    """Fill the login form and wait for the login page the server answers with."""
    fill_login_form(page, username, password)
    with page.expect_navigation():
        page.get_by_role("button", name="Continue").click()


def log_in(page: Page, live_server, username: str, password: str, **params) -> dict:
    """The hosted login up to the callback; returns the callback's query."""
    open_login(page, live_server, **params)
    fill_login_form(page, username, password)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(CALLBACK + "?**")
    return query_of(page.url)


def assert_login_refused(page: Page, live_server, username: str, password: str) -> None:
    open_login(page, live_server, prompt="login")
    submit_login_form(page, username, password)
    expect(page.get_by_role("alert")).to_contain_text(GENERIC_FAILURE)
    assert urlsplit(page.url).hostname != "app.test"


def local_link(live_server, message_links: list[str], path: str) -> str:
    """The mailed link for ``path``, on the host the browser uses."""
    matching = [u for u in message_links if urlsplit(u).path == path]
    assert len(matching) == 1, message_links
    parts = urlsplit(matching[0])
    return live_server.url("t1", f"{parts.path}?{parts.query}")


def id_token_claims(live_server, code: str) -> dict:
    """Redeem the code as the ``web`` backend would; the ID token's signature is checked."""
    response = requests.post(
        live_server.api_url("t1", "/oauth/token"),
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK},
        auth=("web", WEB_SECRET),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    jwks = requests.get(live_server.api_url("t1", "/.well-known/jwks.json"), timeout=30)
    claims = jwt.decode(response.json()["id_token"], KeySet.import_key_set(jwks.json())).claims
    assert claims["aud"] == "web"
    assert claims["nonce"] == "n-456"
    return claims


# --- brute force ----------------------------------------------------------------------------


def test_blocked_account_is_refused_with_the_right_password_until_the_mailed_link_unblocks_it(
    page, live_server, callbacks, mailbox
):
    open_login(page, live_server)
    for _ in range(10):  # BRUTE_FORCE_MAX_ATTEMPTS, Auth0's default
        submit_login_form(page, CAROL[0], WRONG)
        expect(page.get_by_role("alert")).to_contain_text(GENERIC_FAILURE)

    submit_login_form(page, CAROL[0], CAROL[1])
    expect(page.get_by_role("alert")).to_contain_text(BLOCKED_TEXT)
    _screenshot(page, "account-blocked.png")
    assert callbacks.urls == []
    assert urlsplit(page.url).hostname != "app.test"

    message = mailbox.wait_for(to=CAROL[0], subject_contains="were blocked")
    link = local_link(live_server, mailbox.links(message), "/unblock")

    # A mail scanner's GET spends nothing: the page asks, twice, and the block stays.
    for _ in range(2):
        page.goto(link)
        expect(page.locator("h1")).to_have_text("Unblock your account?")
    with _session(live_server) as db:
        tickets = db.scalars(sa.select(UserTicket).where(UserTicket.kind == "unblock")).all()
        assert [t.used_at for t in tickets] == [None]
        assert db.scalar(sa.select(sa.func.count()).select_from(LoginAttempt)) == 1
    _screenshot(page, "account-unblock-confirm.png")

    page.get_by_role("button", name="Unblock my account").click()
    expect(page.locator("h1")).to_have_text("Account unblocked")
    expect(page.get_by_role("status")).to_contain_text("Your account is unblocked.")
    with _session(live_server) as db:
        assert db.scalar(sa.select(sa.func.count()).select_from(LoginAttempt)) == 0

    # The link is spent: a second use is refused.
    page.goto(link)
    expect(page.locator("h1")).to_have_text("Link not valid")

    query = log_in(page, live_server, *CAROL)
    assert query["code"]
    assert query["state"] == "st-123"
    assert len(callbacks.urls) == 1
    assert callbacks.urls[0].startswith(CALLBACK + "?")


# --- sign-up and email verification ---------------------------------------------------------


def sign_up(page: Page, live_server, email: str, password: str) -> dict:
    """Sign up on the hosted page up to the callback; returns the callback's query."""
    open_login(page, live_server)
    page.get_by_role("link", name="Sign up").click()
    page.wait_for_url("**screen=signup**")
    page.locator("#email").fill(email)
    page.locator("#password").fill(password)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(CALLBACK + "?**")
    return query_of(page.url)


def test_signup_on_the_hosted_page_mails_a_verification_link(page, live_server, callbacks, mailbox):
    email = f"new-{uuid.uuid4().hex[:10]}@example.test"
    sign_up(page, live_server, email, "Sturdy-Passw0rd")
    message = mailbox.wait_for(to=email, subject_contains="Verify your email")
    assert local_link(live_server, mailbox.links(message), "/verify_email")


def test_signup_then_the_mailed_link_verifies_the_email_once_and_the_id_token_says_so(
    page, live_server, callbacks, mailbox
):
    email = f"new-{uuid.uuid4().hex[:10]}@example.test"
    password = "Sturdy-Passw0rd"
    first = id_token_claims(live_server, sign_up(page, live_server, email, password)["code"])
    assert first["email"] == email
    assert first["email_verified"] is False

    # Ask for a new link with the session the sign-up left (verification on demand); it
    # replaces the one mailed at sign-up. Only the newest link is live.
    mailbox.clear()
    page.goto(live_server.url("t1", "/account/verify_email"))
    page.get_by_role("button", name="Send the link").click()
    expect(page.locator("h1")).to_have_text("Check your email")
    message = mailbox.wait_for(to=email, subject_contains="Verify your email")
    link = local_link(live_server, mailbox.links(message), "/verify_email")

    page.goto(link)
    expect(page.locator("h1")).to_have_text("Email verified")
    page.goto(link)
    expect(page.locator("h1")).to_have_text("Email already verified")
    expect(page.get_by_role("status")).to_contain_text("already verified")

    with _session(live_server) as db:
        user = db.scalars(sa.select(User).where(User.email == email)).one()
        assert user.email_verified is True

    # prompt=login: the browser still has the sign-up's session.
    query = log_in(page, live_server, email, password, prompt="login")
    claims = id_token_claims(live_server, query["code"])
    assert claims["email"] == email
    assert claims["email_verified"] is True
    assert claims["sub"] == first["sub"]


# --- change password while logged in --------------------------------------------------------


def test_logged_in_user_changes_password_only_with_the_right_current_one(
    page, live_server, callbacks
):
    log_in(page, live_server, *ALICE)
    page.goto(live_server.url("t1", "/account/password"))
    expect(page.locator("h1")).to_have_text("Change your password")
    _screenshot(page, "account-change-password.png")

    page.locator("#current").fill("not the current password")
    page.locator("#password").fill(NEW_PASSWORD)
    page.locator("#confirm").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("alert")).to_contain_text("Your current password is not correct.")
    expect(page.locator("h1")).to_have_text("Change your password")

    page.locator("#current").fill(ALICE[1])
    page.locator("#password").fill(NEW_PASSWORD)
    page.locator("#confirm").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("h1")).to_have_text("Password changed")

    # Logged out everywhere: the page now asks to log in first.
    page.goto(live_server.url("t1", "/account/password"))
    expect(page.locator("h1")).to_have_text("Log in first")

    assert_login_refused(page, live_server, ALICE[0], ALICE[1])
    query = log_in(page, live_server, ALICE[0], NEW_PASSWORD, prompt="login")
    assert query["code"]


# --- two browsers, one reset link -----------------------------------------------------------


def test_one_reset_link_submitted_from_two_browsers_at_once_changes_the_password_once(
    browser: Browser, live_server, mailbox
):
    response = requests.post(
        live_server.api_url("t1", "/dbconnections/change_password"),
        json={"client_id": "web", "connection": "db", "email": ALICE[0]},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    message = mailbox.wait_for(to=ALICE[0], subject_contains="Reset your")
    link = local_link(live_server, mailbox.links(message), "/reset_password")

    candidates = {"first": "Fresh-Garden-Path7", "second": "Other-River-Stone8"}
    contexts, pages = [], {}
    try:
        for name, password in candidates.items():
            context = browser.new_context(locale="en-US")
            context.set_default_timeout(TIMEOUT_MS)
            contexts.append(context)
            page = context.new_page()
            page.goto(link)
            expect(page.locator("h1")).to_have_text("Choose a new password")
            page.locator("#password").fill(password)
            page.locator("#confirm").fill(password)
            pages[name] = page

        # Both forms submit themselves at the same wall-clock instant.
        at = int(time.time() * 1000) + 500
        for page in pages.values():
            page.evaluate(
                """at => { setTimeout(
                    () => document.querySelector('form[method=post]').requestSubmit(),
                    Math.max(0, at - Date.now())); }""",
                at,
            )
        headings = {}
        for name, page in pages.items():
            page.wait_for_url("**/reset_password")
            headings[name] = page.locator("h1").inner_text()

        assert sorted(headings.values()) == ["Link not valid", "Password changed"], headings
        loser = next(p for n, p in pages.items() if headings[n] == "Link not valid")
        expect(loser.get_by_role("status")).to_contain_text("invalid or has expired")
        winner = next(n for n in pages if headings[n] == "Password changed")
    finally:
        for context in contexts:
            context.close()

    with _session(live_server) as db, live_server.app.app_context():
        stored = db.scalars(
            sa.select(DatabaseCredential.password_hash)
            .join(Identity, Identity.id == DatabaseCredential.identity_id)
            .join(User, User.id == Identity.user_pk)
            .join(Tenant, Tenant.id == User.tenant_id)
            .where(Tenant.name == "t1", User.email == ALICE[0])
        ).one()
        assert passwords.verify_password(stored, candidates[winner])
        assert not any(
            passwords.verify_password(stored, p) for n, p in candidates.items() if n != winner
        )
        assert not passwords.verify_password(stored, ALICE[1])
