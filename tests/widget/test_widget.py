"""The embeddable widget (``static/lock/``): its files and client script, then a third-party
page in headless Chromium that embeds it from the live login service.

Screenshots of each screen go to ``test-artifacts/widget/``.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page
from playwright.sync_api import expect

from login_site.api.lock import script_json
from login_site.connections.base import get_strategy
from login_site.models import Client
from login_site.models import Connection
from login_site.models import ConnectionClient
from tests.widget.conftest import NOT_ALLOWED
from tests.widget.conftest import OTHER_SITE
from tests.widget.conftest import SAME_SITE
from tests.widget.conftest import events
from tests.widget.conftest import open_page
from tests.widget.conftest import screenshot
from tests.widget.conftest import wait_event
from tests.widget.conftest import wait_screen

WENDY = ("wendy@example.test", "Widget-password-1")
WALT = ("walt", "Walt-widget-pass-1")
T1 = "http://t1.test"


def expected_connections(app, client_id: str) -> dict[str, str]:
    """Connection name -> strategy: enabled for the client and implemented here."""
    with app.extensions["login_site.sessionmaker"]() as db:
        rows = db.execute(
            sa.select(Connection.name, Connection.strategy)
            .join(ConnectionClient, ConnectionClient.connection_id == Connection.id)
            .join(Client, Client.id == ConnectionClient.client_pk)
            .where(Client.client_id == client_id)
        ).all()
    return {name: strategy for name, strategy in rows if get_strategy(strategy) is not None}


# --- the files and the client script (no browser) ------------------------------------------


@pytest.mark.parametrize(
    ("name", "mimetype"), [("lock.js", "text/javascript"), ("lock.css", "text/css")]
)
def test_widget_files_are_served_cacheable_and_loadable_from_any_page(client, name, mimetype):
    response = client.get(f"/lock/1/{name}", base_url=T1)
    assert response.status_code == 200
    assert response.mimetype == mimetype
    assert response.headers["Cache-Control"].startswith("public, max-age=86400")
    assert response.headers["Access-Control-Allow-Origin"] == "*"  # SRI and module loads
    assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    etag = response.headers["ETag"]
    again = client.get(f"/lock/1/{name}", base_url=T1, headers={"If-None-Match": etag})
    assert again.status_code == 304


@pytest.mark.parametrize("path", ["/lock/1/app.py", "/lock/1/../app.py", "/lock/2/lock.js"])
def test_only_the_widget_files_are_served(client, path):
    assert client.get(path, base_url=T1).status_code == 404


def test_client_script_is_lock_jsonp_with_no_cache(client):
    response = client.get("/client/widget.js?t1700000000000", base_url=T1)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/x-javascript; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-cache"
    body = response.get_data(as_text=True)
    assert body.startswith("Auth0.setClient({") and body.endswith("});\n")


@pytest.mark.parametrize("client_id", ["widget", "widget-b", "web"])
def test_client_script_lists_only_enabled_and_implemented_connections(app, client, client_id):
    body = client.get(f"/client/{client_id}.js", base_url=T1).get_data(as_text=True)
    config = _config(body)
    listed = {c["name"]: s["name"] for s in config["strategies"] for c in s["connections"]}
    assert listed == expected_connections(app, client_id)
    assert config["id"] == client_id
    assert config["authorize"] == "http://t1.test/authorize"


def test_client_script_carries_the_database_settings_and_policy_rules(client):
    config = _config(client.get("/client/widget-b.js", base_url=T1).get_data(as_text=True))
    (db,) = [c for s in config["strategies"] if s["name"] == "auth0" for c in s["connections"]]
    assert db == {
        "name": "widget-b-db",
        "passwordPolicy": "excellent",
        "showSignup": False,
        "showForgot": False,
        "requires_username": True,
        "passwordRules": [
            {"code": "lengthAtLeast", "format": [10]},
            {"code": "containsAtLeast", "format": [3, 4]},
            {"code": "identicalChars", "format": [2, "aaa"]},
        ],
    }


def test_client_script_reveals_no_secret_or_upstream_setting(app, client):
    body = client.get("/client/web.js", base_url=T1).get_data(as_text=True)
    for secret in ("secret", "127.0.0.1:4100", "login-site", "callbacks", "web_origins"):
        assert secret not in body


@pytest.mark.parametrize("client_id", ["nobody", "t2web"])
def test_client_script_of_an_unknown_or_other_tenants_client_is_404(client, client_id):
    response = client.get(f"/client/{client_id}.js", base_url=T1)
    assert response.status_code == 404
    assert "setClient" not in response.get_data(as_text=True)


def test_client_script_escapes_markup_in_names(app, client, db):
    row = db.execute(sa.select(Client).where(Client.client_id == "widget")).scalar_one()
    row.name = "</script><img src=x onerror=alert(1)>"
    db.commit()
    body = client.get("/client/widget.js", base_url=T1).get_data(as_text=True)
    assert "<" not in body and ">" not in body
    assert _config(body)["name"] == row.name
    assert script_json({"a": "&"}) == '{"a":"\\u0026"}'


def _config(body: str) -> dict:
    match = re.fullmatch(r"Auth0\.setClient\((.*)\);\n", body, re.S)
    assert match, body[:200]
    return json.loads(match.group(1))


# --- in the browser ------------------------------------------------------------------------


def field(page: Page, label: str):
    return page.get_by_label(label, exact=True)


def submit(page: Page):
    return page.locator(".lsl-form button[type=submit]")


def tab(page: Page, name: str):
    return page.locator(".lsl-tab", has_text=name)


def _shown_connections(page: Page) -> dict[str, list[str]]:
    return page.evaluate(
        """() => ({
          buttons: [...document.querySelectorAll('.lsl-connection')].map(b => b.dataset.connection),
          forms: [...document.querySelectorAll('.lsl-form')].map(f => f.dataset.form),
          tabs: [...document.querySelectorAll('.lsl-tab')].map(t => t.textContent),
          links: [...document.querySelectorAll('.lsl-link')].map(t => t.textContent),
        })"""
    )


@pytest.mark.e2e
def test_two_clients_show_exactly_their_connections(chromium, site, live_server):
    domain = site.login_site
    widget = expected_connections(live_server.app, "widget")
    widget_b = expected_connections(live_server.app, "widget-b")

    def scenario(page: Page) -> tuple[dict, dict]:
        open_page(page, OTHER_SITE, "widget", domain)
        wait_screen(page, "login")
        first = _shown_connections(page)
        expect(page.get_by_role("dialog")).to_be_visible()
        screenshot(page, "01-login-modal-widget")
        page.goto("about:blank")
        open_page(page, OTHER_SITE, "widget-b", domain)
        wait_screen(page, "login")
        second = _shown_connections(page)
        expect(field(page, "Username or email address")).to_be_visible()
        screenshot(page, "02-login-modal-widget-b")
        return first, second

    first, second = chromium.run(scenario)
    # Database connections are the form; every other connection is a button.
    assert first["forms"] == ["login"]
    assert sorted(first["buttons"]) == sorted(n for n, s in widget.items() if s != "auth0")
    assert first["tabs"] == ["Log in", "Sign up"]
    assert "Forgot password?" in first["links"]
    assert second["forms"] == ["login"]
    assert sorted(second["buttons"]) == sorted(n for n, s in widget_b.items() if s != "auth0")
    assert second["tabs"] == []  # sign-up disabled on widget-b-db
    assert "Forgot password?" not in second["links"]  # self-service reset disabled


@pytest.mark.e2e
def test_embedded_database_login_returns_tokens_to_the_page(chromium, site, live_server):
    def scenario(page: Page):
        record = open_page(page, SAME_SITE, "widget", site.login_site)
        wait_screen(page, "login")
        field(page, "Email address").fill(WENDY[0])
        field(page, "Password").fill(WENDY[1])
        submit(page).click()
        result = wait_event(page, "authenticated")["payload"]
        expect(page.locator("#result")).to_have_text(f"Signed in as {WENDY[0]}")
        storage = page.evaluate(
            "() => ({local: localStorage.length, session: Object.keys(sessionStorage),"
            " url: location.href})"
        )
        return result, storage, record

    result, storage, record = chromium.run(scenario)
    assert result["idTokenPayload"]["email"] == WENDY[0], record.report()
    assert result["accessToken"] and result["idToken"]
    # The redirect went through /co/authenticate and a login_ticket, with PKCE.
    assert len(record.to("/co/authenticate")) == 1, record.report()
    authorize = record.to("/authorize")[0].split(" ", 1)[1]
    params = {k: v[0] for k, v in parse_qs(urlsplit(authorize).query).items()}
    assert params["login_ticket"] and params["code_challenge_method"] == "S256"
    assert len(params["state"]) == 43 and len(params["nonce"]) == 43
    assert params["redirect_uri"] == SAME_SITE + "/"
    # No token in localStorage, the spent transaction gone, the code out of the URL.
    assert storage["local"] == 0
    assert not [k for k in storage["session"] if k.startswith("lsl.tx.")]
    assert storage["url"] == SAME_SITE + "/"


@pytest.mark.e2e
def test_popup_mode_logs_in_without_leaving_the_page(chromium, site, live_server):
    def scenario(page: Page):
        record = open_page(
            page, SAME_SITE, "widget", site.login_site, {"auth": {"redirect": False}}
        )
        wait_screen(page, "login")
        field(page, "Email address").fill(WENDY[0])
        field(page, "Password").fill(WENDY[1])
        with page.context.expect_page() as popup_info:
            submit(page).click()
        popup = popup_info.value
        result = wait_event(page, "authenticated")["payload"]
        return result, popup.is_closed(), page.url, record

    result, closed, url, record = chromium.run(scenario)
    assert result["idTokenPayload"]["email"] == WENDY[0], record.report()
    assert closed
    assert url == SAME_SITE + "/"


@pytest.mark.e2e
def test_redirect_mode_hands_over_to_the_hosted_page_with_the_connection(
    chromium, site, live_server
):
    def scenario(page: Page):
        record = open_page(page, OTHER_SITE, "widget", site.login_site, {"mode": "redirect"})
        wait_screen(page, "login")
        screenshot(page, "03-login-redirect-mode")
        page.get_by_role("button", name="Log in with email and password").click()
        page.wait_for_url("**/login?**")
        page.locator("#username").fill(WENDY[0])
        page.locator("#password").fill(WENDY[1])
        page.get_by_role("button", name="Continue").click()
        result = wait_event(page, "authenticated")["payload"]
        return result, record

    result, record = chromium.run(scenario)
    authorize = record.to("/authorize")[0].split(" ", 1)[1]
    assert parse_qs(urlsplit(authorize).query)["connection"] == ["widget-db"]
    assert result["idTokenPayload"]["email"] == WENDY[0], record.report()


@pytest.mark.e2e
def test_wrong_password_shows_a_readable_error_and_focuses_the_password(
    chromium, site, live_server
):
    def scenario(page: Page):
        record = open_page(page, SAME_SITE, "widget", site.login_site)
        wait_screen(page, "login")
        field(page, "Email address").fill(WENDY[0])
        field(page, "Password").fill("not-the-password")
        submit(page).click()
        alert = page.get_by_role("alert")
        expect(alert).to_have_text("Wrong email or password.")
        password = field(page, "Password")
        expect(password).to_be_focused()
        expect(password).to_have_value("")
        expect(password).to_have_attribute("aria-invalid", "true")
        screenshot(page, "04-login-wrong-password")
        return record, events(page, "authorization_error")

    record, errors = chromium.run(scenario)
    assert errors[0]["payload"]["error"] == "access_denied"
    assert not record.to("/authorize"), record.report()


@pytest.mark.e2e
def test_sign_up_checks_the_policy_live_then_creates_the_account_and_logs_in(
    chromium, site, live_server, mailbox
):
    email = "newcomer@example.test"

    def scenario(page: Page):
        record = open_page(page, SAME_SITE, "widget", site.login_site, {"initialScreen": "signUp"})
        wait_screen(page, "signUp")
        field(page, "Email address").fill(email)
        password = field(page, "Password")
        length = page.locator('.lsl-policy > li[data-code="lengthAtLeast"]')
        password.fill("short")
        expect(length).not_to_have_class("lsl-met")
        submit(page).click()
        expect(page.get_by_role("alert")).to_contain_text("does not meet the requirements")
        expect(page.get_by_role("alert")).to_contain_text("At least 10 characters")
        password.fill("Brand-new-pass-1")
        expect(length).to_have_class("lsl-met")
        screenshot(page, "05-sign-up-policy-met")
        with page.expect_response("**/dbconnections/signup") as answer:
            submit(page).click()
        signed_up = answer.value.status
        result = wait_event(page, "authenticated")["payload"]
        return result, signed_up, record

    result, signed_up, record = chromium.run(scenario)
    assert signed_up == 200, record.report()
    assert result["idTokenPayload"]["email"] == email
    assert mailbox.wait_for(to=email)


@pytest.mark.e2e
def test_forgot_password_sends_the_reset_mail(chromium, site, live_server, mailbox):
    def scenario(page: Page):
        open_page(page, OTHER_SITE, "widget", site.login_site)
        wait_screen(page, "login")
        page.get_by_role("button", name="Forgot password?").click()
        wait_screen(page, "forgotPassword")
        screenshot(page, "06-forgot-password")
        field(page, "Email address").fill(WENDY[0])
        submit(page).click()
        expect(page.locator(".lsl-status")).to_have_text(
            "We've just sent you an email to reset your password."
        )
        screenshot(page, "07-forgot-password-sent")
        return events(page, "forgot_password success")

    assert chromium.run(scenario)
    message = mailbox.wait_for(to=WENDY[0])
    assert any("/reset_password?" in link for link in mailbox.links(message))


@pytest.mark.e2e
def test_a_page_on_an_origin_not_allowed_gets_a_clear_error_and_no_login(
    chromium, site, live_server
):
    def scenario(page: Page):
        record = open_page(page, NOT_ALLOWED, "widget", site.login_site)
        wait_screen(page, "login")
        field(page, "Email address").fill(WENDY[0])
        field(page, "Password").fill(WENDY[1])
        submit(page).click()
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text(f"This page ({NOT_ALLOWED}) is not allowed to log in")
        screenshot(page, "08-origin-not-allowed")
        return record

    record = chromium.run(scenario)
    assert not record.to("/authorize"), record.report()


@pytest.mark.e2e
def test_the_widget_works_under_a_strict_csp_with_trusted_types(chromium, site, live_server):
    site.csp = True

    def scenario(page: Page):
        record = open_page(page, SAME_SITE, "widget", site.login_site)
        wait_screen(page, "login")
        tab(page, "Sign up").click()
        wait_screen(page, "signUp")
        field(page, "Password").fill("abc")
        screenshot(page, "12-sign-up-under-strict-csp")
        tab(page, "Log in").click()
        wait_screen(page, "login")
        field(page, "Email address").fill(WENDY[0])
        field(page, "Password").fill(WENDY[1])
        submit(page).click()
        result = wait_event(page, "authenticated")["payload"]
        violations = page.evaluate("window.cspViolations")
        styled = page.evaluate("getComputedStyle(document.querySelector('#result')).fontFamily")
        return result, violations, record, styled

    result, violations, record, styled = chromium.run(scenario)
    assert violations == [], record.report()
    assert not [line for line in record.console if "Content Security Policy" in line]
    assert result["idTokenPayload"]["email"] == WENDY[0]
    assert "Georgia" in styled  # the page's own stylesheet loaded: the CSP was in force


@pytest.mark.e2e
def test_modal_keeps_focus_inside_and_escape_gives_it_back(chromium, site, live_server):
    def scenario(page: Page):
        open_page(page, OTHER_SITE, "widget", site.login_site, auto_show=False)
        opener = page.locator("#open")
        opener.focus()
        page.keyboard.press("Enter")
        wait_screen(page, "login")
        dialog = page.get_by_role("dialog")
        expect(dialog).to_have_attribute("aria-modal", "true")
        expect(field(page, "Email address")).to_be_focused()
        inside = []
        for _ in range(12):
            page.keyboard.press("Tab")
            inside.append(
                page.evaluate(
                    "document.querySelector('.lsl-card').contains(document.activeElement)"
                )
            )
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Escape")
        expect(dialog).to_have_count(0)
        return inside, page.evaluate("document.activeElement.id")

    inside, focused = chromium.run(scenario)
    assert all(inside)
    assert focused == "open"


@pytest.mark.e2e
def test_inline_box_in_french_with_theme_and_labels(chromium, site, live_server):
    options = {
        "container": "box",
        "language": "fr",
        "languageDictionary": {"title": "Acme"},
        "theme": {"primaryColor": "#b91c1c"},
        "prefill": {"email": WENDY[0]},
    }

    def scenario(page: Page):
        open_page(page, OTHER_SITE, "widget", site.login_site, options)
        wait_screen(page, "login")
        expect(page.get_by_role("region", name="Acme")).to_be_visible()
        expect(page.get_by_role("dialog")).to_have_count(0)
        expect(field(page, "Adresse e-mail")).to_have_value(WENDY[0])
        expect(field(page, "Mot de passe")).to_be_focused()
        colour = page.evaluate(
            "getComputedStyle(document.querySelector('.lsl-primary')).backgroundColor"
        )
        submit(page).click()
        expect(page.get_by_role("alert")).to_have_text("Veuillez remplir : Mot de passe.")
        screenshot(page, "09-inline-french-theme")
        return colour

    assert chromium.run(scenario) == "rgb(185, 28, 28)"


@pytest.mark.e2e
def test_embedded_login_from_another_site_without_third_party_cookies_fails_clearly(
    chromium, site, live_server
):
    """From another site over http the ticket's cookie cannot be set (SameSite=Lax on a
    cross-site response) and the verification page's frame, third-party, cannot read the
    verifier (Chromium blocks third-party storage): the login must end in a readable
    ``authorization_error``, never a hang or a login."""

    def scenario(page: Page):
        record = open_page(page, OTHER_SITE, "widget", site.login_site)
        wait_screen(page, "login")
        field(page, "Email address").fill(WENDY[0])
        field(page, "Password").fill(WENDY[1])
        submit(page).click()
        error = wait_event(page, "authorization_error")["payload"]
        return error, record, page.url

    error, record, url = chromium.run(scenario)
    assert record.to("/co-verify.html"), record.report()  # the fallback was tried
    assert record.to("/co/verify"), record.report()
    assert error["error"] == "access_denied"
    assert "verification" in error["errorDescription"]
    assert url == OTHER_SITE + "/"


@pytest.mark.e2e
def test_passwordless_email_code_screens_send_a_code_and_log_in(
    chromium, site, live_server, mailbox
):
    assert "email" in expected_connections(live_server.app, "widget-b").values()

    def scenario(page: Page):
        record = open_page(page, SAME_SITE, "widget-b", site.login_site)
        wait_screen(page, "login")
        page.get_by_role("button", name="Email me a code").click()
        wait_screen(page, "passwordless")
        screenshot(page, "10-passwordless-email")
        field(page, "Email address").fill("not-an-email")
        submit(page).click()
        expect(page.get_by_role("alert")).to_have_text("Enter a valid email address.")
        field(page, "Email address").fill(WENDY[0])
        submit(page).click()
        wait_screen(page, "code")
        expect(page.locator(".lsl-body > .lsl-lead")).to_contain_text(WENDY[0])
        screenshot(page, "11-passwordless-code")
        message = mailbox.wait_for(to=WENDY[0])
        code = re.search(r"\b(\d{6})\b", mailbox.text(message)).group(1)
        field(page, "Code").fill(code)
        submit(page).click()
        return wait_event(page, "authenticated")["payload"], record

    result, record = chromium.run(scenario)
    assert result["idTokenPayload"]["email"] == WENDY[0], record.report()
