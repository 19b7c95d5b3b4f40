"""``/passwordless/start``, ``/passwordless/verify`` and the passwordless/otp grant
(compat §2.1, §10.3, §10.4; checklist §1.I PL-01..PL-07, §2.6 PW-01..PW-18)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
import sqlalchemy as sa
from joserfc import jwt
from joserfc.jwk import KeySet

from login_site.db import utcnow
from login_site.models import AccessToken
from login_site.models import Identity
from login_site.models import MailOutbox
from login_site.models import PasswordlessCode
from login_site.models import User
from tests.conftest import T1
from tests.conftest import count
from tests.passwordless.conftest import NEW_EMAIL
from tests.passwordless.conftest import code_in
from tests.passwordless.conftest import last_code
from tests.passwordless.conftest import set_options
from tests.passwordless.conftest import start
from tests.passwordless.conftest import token

SIDE_EFFECTS = (User, Identity, PasswordlessCode, MailOutbox, AccessToken)


def snapshot(app) -> dict:
    return {model.__name__: count(app, model) for model in SIDE_EFFECTS}


def assert_oauth_error(response, status: int, error: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.json
    assert body["error"] == error, body
    description = body["error_description"]
    assert description and all(32 <= ord(c) < 127 for c in description), description
    assert "Traceback" not in response.get_data(as_text=True)
    return body


def expire_codes(app) -> None:
    with app.extensions["login_site.sessionmaker"]() as db:
        db.execute(sa.update(PasswordlessCode).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.commit()


# --- the happy path ---------------------------------------------------------------------------


def test_email_code_logs_a_new_user_in_with_the_otp_grant(app, client, mailbox):
    response = start(client, email="Newcomer@Example.test", send="code")
    assert response.status_code == 200, response.json
    assert response.json == {
        "_id": response.json["_id"],
        "email": NEW_EMAIL,
        "email_verified": False,
    }
    code = code_in(mailbox, NEW_EMAIL)
    answer = token(client, NEW_EMAIL, code)
    assert answer.status_code == 200, answer.json
    keys = KeySet.import_key_set(client.get("/.well-known/jwks.json", base_url=f"http://{T1}").json)
    claims = jwt.decode(answer.json["id_token"], keys).claims
    assert claims["sub"].startswith("email|") and len(claims["sub"]) == len("email|") + 24
    assert claims["email"] == NEW_EMAIL and claims["email_verified"] is True
    with app.extensions["login_site.sessionmaker"]() as db:
        user = db.scalar(sa.select(User).where(User.user_id == claims["sub"]))
        assert user.email_verified and user.logins_count == 1
        assert [(i.provider, i.connection_id is not None) for i in user.identities] == [
            ("email", True)
        ]


def test_the_second_login_finds_the_same_user(app, client, mailbox):
    users, identities = count(app, User), count(app, Identity)
    start(client, email=NEW_EMAIL, send="code")
    first = token(client, NEW_EMAIL, code_in(mailbox, NEW_EMAIL))
    mailbox.clear()
    start(client, email=NEW_EMAIL, send="code")
    second = token(client, NEW_EMAIL, code_in(mailbox, NEW_EMAIL))
    assert first.status_code == second.status_code == 200
    assert count(app, User) == users + 1 and count(app, Identity) == identities + 1


def test_codes_are_six_digits_stored_only_as_an_hmac(app, client, mailbox):
    start(client, email=NEW_EMAIL, send="code")
    code = code_in(mailbox, NEW_EMAIL)
    assert len(code) == 6 and code.isdigit()
    with app.extensions["login_site.sessionmaker"]() as db:
        row = db.scalar(sa.select(PasswordlessCode))
        assert code not in row.secret_hash and len(row.secret_hash) == 64
        assert row.send == "code" and row.attempts == 0
        lifetime = (row.expires_at - row.created_at).total_seconds()
    assert lifetime == 180  # Auth0's email default (compat §10.3)


def test_the_code_never_reaches_the_logs(client, mailbox, caplog):
    caplog.set_level(logging.DEBUG)
    start(client, email=NEW_EMAIL, send="code")
    code = code_in(mailbox, NEW_EMAIL)
    token(client, NEW_EMAIL, code)
    assert code not in caplog.text and NEW_EMAIL not in caplog.text


# --- no enumeration (PL-07, PW-18) ----------------------------------------------------------


def test_start_answers_alike_for_known_and_unknown_addresses(client, mailbox):
    start(client, email="known@example.test", send="code")
    token(client, "known@example.test", code_in(mailbox, "known@example.test"))
    known = start(client, email="known@example.test", send="code")
    unknown = start(client, email="stranger@example.test", send="code")
    assert known.status_code == unknown.status_code == 200
    assert set(known.json) == set(unknown.json) == {"_id", "email", "email_verified"}
    assert known.json["_id"] != unknown.json["_id"]


def test_with_signup_disabled_an_unknown_address_gets_the_same_answer_and_no_mail(
    app, client, mailbox
):
    set_options(app, "email-otp", disable_signup=True)
    before = snapshot(app)
    response = start(client, email="closed-door@example.test", send="code")
    assert response.status_code == 200
    assert set(response.json) == {"_id", "email", "email_verified"}
    assert snapshot(app) == before
    assert mailbox.find(to="closed-door@example.test") == []


# --- codes: single use, lifetime, attempts, binding -----------------------------------------


def test_a_code_is_redeemed_once(client, mailbox):
    start(client, email=NEW_EMAIL, send="code")
    code = code_in(mailbox, NEW_EMAIL)
    assert token(client, NEW_EMAIL, code).status_code == 200
    assert_oauth_error(token(client, NEW_EMAIL, code), 403, "invalid_grant")


def test_an_expired_code_is_refused(app, client, mailbox):
    start(client, email=NEW_EMAIL, send="code")
    code = code_in(mailbox, NEW_EMAIL)
    expire_codes(app)
    body = assert_oauth_error(token(client, NEW_EMAIL, code), 403, "invalid_grant")
    assert body["error_description"] == "Wrong email or verification code."
    assert count(app, AccessToken) == 0


def test_a_new_code_kills_the_previous_one(client, mailbox):
    start(client, email=NEW_EMAIL, send="code")
    first = code_in(mailbox, NEW_EMAIL)
    start(client, email=NEW_EMAIL, send="code")
    second = last_code(mailbox, NEW_EMAIL, previous=1)
    if first != second:
        assert_oauth_error(token(client, NEW_EMAIL, first), 403, "invalid_grant")
    assert token(client, NEW_EMAIL, second).status_code == 200


def test_three_wrong_codes_from_three_addresses_kill_the_right_one(app, client, mailbox):
    users = count(app, User)
    start(client, email=NEW_EMAIL, send="code")
    code = code_in(mailbox, NEW_EMAIL)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for ip in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        response = client.post(
            "/oauth/token",
            base_url=f"http://{T1}",
            environ_overrides={"REMOTE_ADDR": ip},
            json={
                "grant_type": "http://auth0.com/oauth/grant-type/passwordless/otp",
                "client_id": "web",
                "client_secret": "web-secret-0123456789abcdefghijklmnop",
                "username": NEW_EMAIL,
                "otp": wrong,
                "realm": "email-otp",
            },
        )
        assert_oauth_error(response, 403, "invalid_grant")
    assert_oauth_error(token(client, NEW_EMAIL, code), 403, "invalid_grant")
    assert count(app, AccessToken) == 0 and count(app, User) == users


def test_a_code_sent_to_one_address_does_not_work_for_another(client, mailbox):
    start(client, email=NEW_EMAIL, send="code")
    start(client, email="other@example.test", send="code")
    code = code_in(mailbox, NEW_EMAIL)
    assert_oauth_error(token(client, "other@example.test", code), 403, "invalid_grant")


def test_a_code_sent_for_one_client_is_refused_to_another(app, client, mailbox):
    users = count(app, User)
    # Asked for by the public spa client, presented by web (ASVS 6.6.2, PW-05).
    response = client.post(
        "/passwordless/start",
        base_url=f"http://{T1}",
        json={"client_id": "spa", "connection": "email-otp", "email": NEW_EMAIL, "send": "code"},
    )
    assert response.status_code == 200, response.json
    code = code_in(mailbox, NEW_EMAIL)
    assert_oauth_error(token(client, NEW_EMAIL, code), 403, "invalid_grant")
    assert count(app, User) == users


def test_a_code_asked_for_on_the_hosted_page_cannot_be_redeemed_by_the_grant(client, mailbox):
    from tests.conftest import csrf_token
    from tests.conftest import start_login

    page, state = start_login(client)
    client.post(
        "/login/passwordless",
        base_url=f"http://{T1}",
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "state": state,
            "connection": "email-otp",
            "email": NEW_EMAIL,
            "send": "code",
        },
    )
    code = code_in(mailbox, NEW_EMAIL)
    assert_oauth_error(token(client, NEW_EMAIL, code), 403, "invalid_grant")


def test_the_grant_must_be_enabled_for_the_client(client, mailbox):
    response = client.post(
        "/passwordless/start",
        base_url=f"http://{T1}",
        json={"client_id": "spa", "connection": "email-otp", "email": NEW_EMAIL, "send": "code"},
    )
    assert response.status_code == 200
    answer = client.post(
        "/oauth/token",
        base_url=f"http://{T1}",
        json={
            "grant_type": "http://auth0.com/oauth/grant-type/passwordless/otp",
            "client_id": "spa",
            "username": NEW_EMAIL,
            "otp": code_in(mailbox, NEW_EMAIL),
            "realm": "email-otp",
        },
    )
    assert_oauth_error(answer, 400, "unauthorized_client")


@pytest.mark.parametrize(
    ("realm", "description"),
    [
        ("nope", "the connection was not found"),
        ("partners-db", "specified strategy does not support requested operation"),
        ("closed-db", "the connection was disabled"),
    ],
)
def test_the_grant_checks_the_realm(client, realm, description):
    body = assert_oauth_error(
        token(client, NEW_EMAIL, "123456", realm=realm), 400, "invalid_request"
    )
    assert body["error_description"] == description


def test_a_blocked_passwordless_user_is_told_so(app, client, mailbox):
    start(client, email=NEW_EMAIL, send="code")
    token(client, NEW_EMAIL, code_in(mailbox, NEW_EMAIL))
    with app.extensions["login_site.sessionmaker"]() as db:
        db.execute(sa.update(User).where(User.email == NEW_EMAIL).values(blocked=True))
        db.commit()
    mailbox.clear()
    start(client, email=NEW_EMAIL, send="code")
    body = assert_oauth_error(
        token(client, NEW_EMAIL, code_in(mailbox, NEW_EMAIL)), 401, "unauthorized"
    )
    assert body["error_description"] == "user is blocked"


# --- /passwordless/verify (legacy, compat §10.4) --------------------------------------------


def test_verify_checks_a_code_without_spending_it(client, mailbox):
    start(client, email=NEW_EMAIL, send="code")
    code = code_in(mailbox, NEW_EMAIL)
    body = {"client_id": "web", "connection": "email-otp", "email": NEW_EMAIL}
    for _ in range(4):  # a right code gives its attempt back
        ok = client.post(
            "/passwordless/verify",
            base_url=f"http://{T1}",
            json={**body, "verification_code": code},
        )
        assert ok.status_code == 200 and ok.json == {}
    wrong = client.post(
        "/passwordless/verify",
        base_url=f"http://{T1}",
        json={**body, "verification_code": "000000" if code != "000000" else "111111"},
    )
    assert_oauth_error(wrong, 403, "invalid_user_password")
    assert token(client, NEW_EMAIL, code).status_code == 200


# --- refused requests write and send nothing ------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "status", "error"),
    [
        ({"client_id": ...}, 400, "bad.client_id"),
        ({"client_id": "nobody"}, 400, "bad.client_id"),
        ({"connection": ...}, 400, "bad.connection"),
        ({"connection": "nope"}, 400, "bad.connection"),
        ({"connection": "db"}, 400, "bad.connection"),
        ({"connection": "closed-db"}, 400, "bad.connection"),
        ({"email": ...}, 400, "bad.email"),
        ({"email": "not-an-address"}, 400, "bad.email"),
        ({"email": "a@b.test\nBcc: x@y.test"}, 400, "bad.email"),
        ({"email": "a@b.test\r\nSubject: hi"}, 400, "bad.email"),
        ({"send": "carrier-pigeon"}, 400, "bad.send"),
        ({"authParams": "scope=openid"}, 400, "bad.authParams"),
        ({"unexpected": "x"}, 400, "bad.request"),
        ({"client_secret": "wrong-secret"}, 401, "invalid_client"),
        ({"client_secret": ...}, 401, "invalid_client"),
    ],
)
def test_bad_start_requests_are_refused_with_nothing_sent(
    app, client, mailbox, fields, status, error
):
    before = snapshot(app)
    body = {"email": NEW_EMAIL, "send": "code", **fields}
    assert_oauth_error(start(client, **body), status, error)
    assert snapshot(app) == before
    assert len(mailbox) == 0


def test_a_connection_not_enabled_for_the_client_is_refused(app, client, twilio):
    # sms is enabled for web only (PW-17).
    before = snapshot(app)
    response = client.post(
        "/passwordless/start",
        base_url=f"http://{T1}",
        json={"client_id": "spa", "connection": "sms", "phone_number": "+12025550123"},
    )
    body = assert_oauth_error(response, 400, "bad.connection")
    assert body["error_description"] == "Connection is disabled"
    assert snapshot(app) == before and twilio.requests == []


def test_magic_link_to_an_unregistered_redirect_uri_is_refused_before_sending(app, client, mailbox):
    before = snapshot(app)
    response = start(
        client,
        email=NEW_EMAIL,
        send="link",
        authParams={"redirect_uri": "https://evil.test/cb", "scope": "openid", "state": "s"},
    )
    assert_oauth_error(response, 400, "bad.authParams")
    assert snapshot(app) == before and len(mailbox) == 0


def test_a_public_clients_magic_link_needs_pkce(client, mailbox):
    response = client.post(
        "/passwordless/start",
        base_url=f"http://{T1}",
        json={
            "client_id": "spa",
            "connection": "email-otp",
            "email": NEW_EMAIL,
            "send": "link",
            "authParams": {"redirect_uri": "http://127.0.0.1:8765/cb", "scope": "openid"},
        },
    )
    body = assert_oauth_error(response, 400, "bad.authParams")
    assert "PKCE" in body["error_description"]


# --- send limits (PW-11) --------------------------------------------------------------------


def test_the_fourth_send_to_one_address_in_ten_minutes_gets_429(app, client, mailbox):
    for _ in range(3):
        assert start(client, email=NEW_EMAIL, send="code").status_code == 200
    before = snapshot(app)
    limited = start(client, email=NEW_EMAIL, send="code")
    assert_oauth_error(limited, 429, "too_many_requests")
    # One of each header (the rate limiter's X-RateLimit-*, per IP), and a Retry-After of
    # at least this limit's window.
    for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
        assert len(limited.headers.getlist(name)) == 1 and int(limited.headers[name]) >= 0
    assert len(limited.headers.getlist("Retry-After")) == 1
    assert int(limited.headers["Retry-After"]) >= 590
    assert snapshot(app) == before
    assert start(client, email="someone-else@example.test", send="code").status_code == 200


# --- CORS (compat §0.5) ---------------------------------------------------------------------


def test_start_answers_cors_for_the_clients_origin_only(client):
    origin = "http://127.0.0.1:8765"
    preflight = client.options(
        "/passwordless/start",
        base_url=f"http://{T1}",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == origin
    body = {"client_id": "spa", "connection": "email-otp", "email": NEW_EMAIL, "send": "code"}
    real = client.post(
        "/passwordless/start", base_url=f"http://{T1}", json=body, headers={"Origin": origin}
    )
    assert real.status_code == 200 and real.headers["Access-Control-Allow-Origin"] == origin
    other = client.post(
        "/passwordless/start",
        base_url=f"http://{T1}",
        json={**body, "email": "x@example.test"},
        headers={"Origin": "http://127.0.0.1:8766"},
    )
    assert "Access-Control-Allow-Origin" not in other.headers


def test_discovery_lists_the_otp_grant(client):
    document = client.get("/.well-known/openid-configuration", base_url=f"http://{T1}").json
    assert "http://auth0.com/oauth/grant-type/passwordless/otp" in document["grant_types_supported"]
