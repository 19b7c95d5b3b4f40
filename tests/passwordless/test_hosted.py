"""The hosted login page with the ``email`` and ``sms`` connections, and magic links
(checklist PL-06, PW-14, PW-15), through Flask's test client."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import sqlalchemy as sa

from login_site.models import AuthorizationCode
from login_site.models import LoginSession
from login_site.models import PasswordlessCode
from tests.conftest import T1
from tests.conftest import count
from tests.conftest import csrf_token
from tests.conftest import query_of
from tests.conftest import redeem
from tests.conftest import start_login
from tests.passwordless.conftest import NEW_EMAIL
from tests.passwordless.conftest import PHONE
from tests.passwordless.conftest import code_in
from tests.passwordless.conftest import last_code
from tests.passwordless.conftest import start

BASE = f"http://{T1}"


def send_from_page(client, page, state, send="code", connection="email-otp", **fields):
    data = {
        "csrf_token": csrf_token(page.get_data(as_text=True)),
        "state": state,
        "connection": connection,
        "send": send,
        **fields,
    }
    if connection == "email-otp":
        data.setdefault("email", NEW_EMAIL)
    return client.post("/login/passwordless", base_url=BASE, data=data)


def enter_code(client, state, code, token):
    return client.post(
        "/login/passwordless/verify",
        base_url=BASE,
        data={"csrf_token": token, "state": state, "code": code},
    )


def link_in(mailbox, to=NEW_EMAIL) -> str:
    message = mailbox.wait_for(to=to)
    link = [u for u in mailbox.links(message) if "/passwordless/verify_redirect?" in u][0]
    parts = urlsplit(link)
    assert parts.netloc == T1
    return f"{parts.path}?{parts.query}"


def text(response) -> str:
    return response.get_data(as_text=True)


def test_login_page_offers_the_email_connection_as_a_code_form(client):
    page, _state = start_login(client)
    html = text(page)
    assert 'data-connection="email-otp"' in html and 'action="/login/passwordless"' in html
    assert "Email me a code" in html and "Email me a link" in html
    assert 'name="phone_number"' in html  # sms is enabled for web too


def test_email_code_on_the_hosted_page_returns_to_the_application(app, client, mailbox):
    page, state = start_login(client)
    sent = send_from_page(client, page, state)
    assert sent.status_code == 303
    screen = client.get(sent.headers["Location"], base_url=BASE)
    assert screen.status_code == 200 and f"We sent a code to {NEW_EMAIL}" in text(screen)
    done = enter_code(client, state, code_in(mailbox, NEW_EMAIL), csrf_token(text(screen)))
    assert done.status_code == 302, text(done)[:500]
    assert done.headers["Location"].startswith("https://app.test/cb?")
    answer = redeem(client, query_of(done.headers["Location"])["code"])
    assert answer.status_code == 200
    assert count(app, LoginSession) == 1


def test_wrong_codes_get_a_readable_message_and_the_third_asks_for_a_new_one(app, client, mailbox):
    page, state = start_login(client)
    screen = client.get(send_from_page(client, page, state).headers["Location"], base_url=BASE)
    token = csrf_token(text(screen))
    code = code_in(mailbox, NEW_EMAIL)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(2):
        answer = enter_code(client, state, wrong, token)
        assert answer.status_code == 400
        assert "That code is not right." in text(answer)
        assert 'name="code"' in text(answer)
    third = enter_code(client, state, wrong, token)
    assert third.status_code == 400
    assert "Request a new code." in text(third) and 'name="code"' not in text(third)
    assert "Request a new code</" in re.sub(r"\s+", " ", text(third)).replace(" </", "</")
    # Even the right code is refused now; a new one works.
    assert enter_code(client, state, code, token).status_code == 400
    resent = send_from_page(client, page, state)
    assert resent.status_code == 303
    fresh = last_code(mailbox, NEW_EMAIL, previous=1)
    done = enter_code(client, state, fresh, token)
    assert done.status_code == 302 and "code=" in done.headers["Location"]
    assert count(app, AuthorizationCode) == 1


def test_an_invalid_address_is_explained_and_nothing_is_sent(app, client, mailbox):
    page, state = start_login(client)
    answer = send_from_page(client, page, state, email="not an address")
    assert answer.status_code == 400 and "The email is invalid" in text(answer)
    assert count(app, PasswordlessCode) == 0 and len(mailbox) == 0


def test_sending_needs_the_csrf_token(app, client, mailbox):
    _page, state = start_login(client)
    answer = client.post(
        "/login/passwordless",
        base_url=BASE,
        data={"state": state, "connection": "email-otp", "email": NEW_EMAIL, "send": "code"},
    )
    assert answer.status_code == 400
    assert count(app, PasswordlessCode) == 0 and len(mailbox) == 0


def test_a_connection_the_client_does_not_offer_is_refused(app, client, twilio):
    page, state = start_login(
        client,
        client_id="spa",
        redirect_uri="http://127.0.0.1:8765/cb",
        code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        code_challenge_method="S256",
    )
    answer = send_from_page(client, page, state, connection="sms", phone_number=PHONE)
    assert answer.status_code == 400 and twilio.requests == []
    assert count(app, PasswordlessCode) == 0


def test_sms_code_on_the_hosted_page_accepts_a_number_typed_with_spaces(sms_app, client, twilio):
    page, state = start_login(client)
    sent = send_from_page(client, page, state, connection="sms", phone_number="+1 202-555-0123")
    assert sent.status_code == 303, text(sent)[:500]
    screen = client.get(sent.headers["Location"], base_url=BASE)
    assert f"We sent a code to {PHONE}" in text(screen)
    code = twilio.wait_for(PHONE).code
    done = enter_code(client, state, code, csrf_token(text(screen)))
    assert done.status_code == 302 and done.headers["Location"].startswith("https://app.test/cb?")


def test_a_twilio_failure_on_the_hosted_page_is_a_readable_message(sms_app, client, twilio):
    page, state = start_login(client)
    twilio.fail_next("21211")
    answer = send_from_page(client, page, state, connection="sms", phone_number=PHONE)
    assert answer.status_code == 400
    assert "We could not send a text message to this number." in text(answer)


# --- magic links ----------------------------------------------------------------------------


def test_magic_link_survives_scanners_and_logs_in_once_in_the_same_browser(app, client, mailbox):
    page, state = start_login(client)
    sent = send_from_page(client, page, state, send="link")
    screen = client.get(sent.headers["Location"], base_url=BASE)
    assert "We sent a link to" in text(screen) and 'name="code"' not in text(screen)
    link = link_in(mailbox)
    # A mail scanner: no cookies, HEAD then GET. Nothing is spent, nobody is logged in.
    scanner = app.test_client()
    assert scanner.head(link, base_url=BASE).status_code == 400
    looked = scanner.get(link, base_url=BASE)
    assert looked.status_code == 400 and "same browser" in text(looked)
    assert count(app, LoginSession) == 0
    # The browser that asked: a confirm page (GET spends nothing), then the POST.
    confirm = client.get(link, base_url=BASE)
    assert confirm.status_code == 200 and "Log in to web" in text(confirm)
    assert confirm.headers["Referrer-Policy"] == "no-referrer"
    assert client.get(link, base_url=BASE).status_code == 200  # still unspent
    form = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', text(confirm)))
    done = client.post("/passwordless/verify_redirect", base_url=BASE, data=form)
    assert done.status_code == 302, text(done)[:500]
    assert done.headers["Location"].startswith("https://app.test/cb?")
    assert query_of(done.headers["Location"])["state"] == "st-123"
    again = client.post("/passwordless/verify_redirect", base_url=BASE, data=form)
    assert again.status_code == 400 and "Location" not in again.headers
    reopened = client.get(link, base_url=BASE)
    assert reopened.status_code == 400 and "expired or was already used" in text(reopened)
    assert count(app, AuthorizationCode) == 1


def test_magic_link_in_another_browser_spends_nothing_and_still_works_in_the_first(
    app, client, mailbox
):
    page, state = start_login(client)
    send_from_page(client, page, state, send="link")
    link = link_in(mailbox)
    other = app.test_client()
    other_page, _other_state = start_login(other)
    params = dict(re.findall(r"([^?&=]+)=([^&]*)", link.split("?", 1)[1]))
    from urllib.parse import unquote

    form = {k: unquote(v) for k, v in params.items()}
    form["csrf_token"] = csrf_token(text(other_page))
    refused = other.post("/passwordless/verify_redirect", base_url=BASE, data=form)
    assert refused.status_code == 400 and "same browser" in text(refused)
    assert count(app, LoginSession) == 0
    confirm = client.get(link, base_url=BASE)
    form = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', text(confirm)))
    done = client.post("/passwordless/verify_redirect", base_url=BASE, data=form)
    assert done.status_code == 302 and "code=" in done.headers["Location"]


def test_api_magic_link_finishes_in_whichever_browser_confirms_it(app, client, mailbox):
    response = start(
        client,
        email=NEW_EMAIL,
        send="link",
        authParams={
            "redirect_uri": "https://app.test/cb2",
            "scope": "openid email",
            "state": "app-state",
            "nonce": "n-1",
            "response_type": "code",
        },
    )
    assert response.status_code == 200, response.json
    link = link_in(mailbox)
    browser = app.test_client()
    assert browser.head(link, base_url=BASE).status_code == 200
    confirm = browser.get(link, base_url=BASE)
    assert confirm.status_code == 200
    form = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', text(confirm)))
    done = browser.post("/passwordless/verify_redirect", base_url=BASE, data=form)
    assert done.status_code == 302
    params = query_of(done.headers["Location"])
    assert done.headers["Location"].startswith("https://app.test/cb2?")
    assert params["state"] == "app-state" and "code" in params
    answer = redeem(client, params["code"], redirect_uri="https://app.test/cb2")
    assert answer.status_code == 200, answer.json


def test_auth0js_verify_redirect_with_the_pages_csrf_finishes_at_once(app, client, mailbox):
    page, state = start_login(client)
    token = csrf_token(text(page))
    send_from_page(client, page, state)
    code = code_in(mailbox, NEW_EMAIL)
    done = client.get(
        "/passwordless/verify_redirect",
        base_url=BASE,
        query_string={
            "client_id": "web",
            "connection": "email-otp",
            "email": NEW_EMAIL,
            "verification_code": code,
            "state": state,
            "_csrf": token,
        },
    )
    assert done.status_code == 302, text(done)[:300]
    assert done.headers["Location"].startswith("https://app.test/cb?")


def test_a_forged_csrf_on_verify_redirect_only_shows_the_confirm_page(app, client, mailbox):
    start(client, email=NEW_EMAIL, send="code")
    code = code_in(mailbox, NEW_EMAIL)
    shown = client.get(
        "/passwordless/verify_redirect",
        base_url=BASE,
        query_string={
            "client_id": "web",
            "connection": "email-otp",
            "email": NEW_EMAIL,
            "verification_code": code,
            "redirect_uri": "https://app.test/cb",
            "response_type": "code",
            "_csrf": "forged",
        },
    )
    assert shown.status_code == 200 and "Continue to web as" in text(shown)
    with app.extensions["login_site.sessionmaker"]() as db:
        assert db.scalar(sa.select(PasswordlessCode.used_at)) is None


def test_a_replayed_confirm_from_another_session_is_refused(app, client, mailbox):
    start(client, email=NEW_EMAIL, send="link", authParams={"redirect_uri": "https://app.test/cb"})
    link = link_in(mailbox)
    confirm = client.get(link, base_url=BASE)
    form = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', text(confirm)))
    assert client.post("/passwordless/verify_redirect", base_url=BASE, data=form).status_code == 302
    attacker = app.test_client()
    fresh = attacker.get(link, base_url=BASE)
    assert fresh.status_code == 400 and "expired or was already used" in text(fresh)
    page, _state = start_login(attacker)
    replay = attacker.post(
        "/passwordless/verify_redirect",
        base_url=BASE,
        data={**form, "csrf_token": csrf_token(text(page))},
    )
    assert replay.status_code == 400 and "Location" not in replay.headers
    assert count(app, AuthorizationCode) == 1


def test_the_fourth_send_from_the_hosted_page_is_a_429_page_with_headers(app, client, mailbox):
    page, state = start_login(client)
    for _ in range(3):
        assert send_from_page(client, page, state).status_code == 303
    limited = send_from_page(client, page, state)
    assert limited.status_code == 429
    assert "Too many codes were requested." in text(limited)
    assert limited.headers["X-RateLimit-Limit"] == "3"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert int(limited.headers["X-RateLimit-Reset"]) > 0 and int(limited.headers["Retry-After"]) > 0
    assert len(mailbox.find(to=NEW_EMAIL)) <= 3


def test_the_connection_button_route_shows_the_passwordless_form(client):
    page, state = start_login(client)
    shown = client.post(
        "/login/start",
        base_url=BASE,
        data={
            "csrf_token": csrf_token(text(page)),
            "state": state,
            "connection": "email-otp",
        },
    )
    assert shown.status_code == 200
    assert 'action="/login/passwordless"' in text(shown) and "Email me a code" in text(shown)
    assert f'href="/login?state={state}"' in text(shown)
