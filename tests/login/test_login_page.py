"""The hosted login page over the test client: checklist §1.F, §1.G (page), §1.J."""

import time

import pytest
import sqlalchemy as sa

from login_site.models import AuthorizationCode
from login_site.models import DatabaseCredential
from login_site.models import LoginSession
from login_site.models import User
from tests.conftest import T1
from tests.conftest import count
from tests.conftest import csrf_token
from tests.conftest import query_of
from tests.conftest import start_login
from tests.conftest import submit_login

GENERIC = "Wrong email or password."


def body_without_csrf(response) -> str:
    import re

    return re.sub(r'name="csrf_token" value="[^"]+"', "", response.get_data(as_text=True))


def test_unknown_user_wrong_password_and_blocked_user_look_the_same(app, client):
    page, state = start_login(client)
    answers = [
        submit_login(client, page, state, "nobody@example.test", "whatever-1A"),
        submit_login(client, page, state, "alice@example.test", "wrong-password-1A"),
        submit_login(client, page, state, "blocked@example.test", "wrong-password-1A"),
    ]
    assert {r.status_code for r in answers} == {400}
    bodies = {
        body_without_csrf(r)
        .replace("nobody@example.test", "X")
        .replace("alice@example.test", "X")
        .replace("blocked@example.test", "X")
        for r in answers
    }
    assert len(bodies) == 1
    assert GENERIC in bodies.pop()
    assert count(app, LoginSession) == 0


def test_blocked_user_with_the_right_password_is_not_logged_in(app, client):
    page, state = start_login(client)
    response = submit_login(client, page, state, "blocked@example.test", "Blocked-password-1")
    assert response.status_code == 400 and "Location" not in response.headers
    assert count(app, LoginSession) == 0


def test_login_without_csrf_token_is_refused_and_creates_nothing(app, client):
    page, state = start_login(client)
    response = client.post(
        "/login",
        base_url=f"http://{T1}",
        data={
            "state": state,
            "connection": "db",
            "action": "login",
            "username": "alice@example.test",
            "password": "correct horse battery Staple1",
        },
    )
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert count(app, LoginSession) == 0 and count(app, AuthorizationCode) == 0


def test_login_transaction_is_bound_to_the_browser(app, client):
    page, state = start_login(client)
    other = app.test_client()
    response = other.get(f"/login?state={state}", base_url=f"http://{T1}")
    assert response.status_code == 400
    assert "expired" in response.get_data(as_text=True)


def test_successful_login_redirects_with_302_not_307(client):
    page, state = start_login(client)
    response = submit_login(
        client, page, state, "ALICE@example.test", "correct horse battery Staple1"
    )
    assert response.status_code == 302
    assert set(query_of(response.headers["Location"])) == {"code", "state", "iss"}


def test_password_is_checked_exactly_as_typed(client):
    page, state = start_login(client)
    for wrong in (
        "correct horse battery staple1",
        "correct horse battery Staple1 ",
        "correct horse battery Staple",
    ):
        assert submit_login(client, page, state, "alice@example.test", wrong).status_code == 400


def test_very_long_password_is_refused_quickly(client):
    page, state = start_login(client)
    started = time.monotonic()
    response = submit_login(client, page, state, "alice@example.test", "x" * 10_000)
    assert response.status_code == 400 and GENERIC in response.get_data(as_text=True)
    assert time.monotonic() - started < 2  # no argon2 run on the oversized input


def test_hash_is_argon2id_at_owasp_parameters(app):
    with app.extensions["login_site.sessionmaker"]() as db:
        stored = db.scalars(sa.select(DatabaseCredential.password_hash)).first()
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_hash_is_upgraded_at_login_when_parameters_rise(app, client):
    app.config["ARGON2_TIME_COST"] = 3
    app.extensions.pop("login_site.hasher", None)
    page, state = start_login(client)
    assert (
        submit_login(
            client, page, state, "alice@example.test", "correct horse battery Staple1"
        ).status_code
        == 302
    )
    with app.extensions["login_site.sessionmaker"]() as db:
        hashes = db.scalars(sa.select(DatabaseCredential.password_hash)).all()
    assert any(",t=3," in h for h in hashes)


def test_login_hint_prefills_and_screen_hint_opens_signup(client):
    page, _ = start_login(client, login_hint="hint@example.test")
    assert 'value="hint@example.test"' in page.get_data(as_text=True)
    page, _ = start_login(client, screen_hint="signup")
    assert 'value="signup"' in page.get_data(as_text=True)


def test_pages_carry_security_headers(client):
    page, _ = start_login(client)
    headers = page.headers
    assert headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "object-src 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"


def test_page_has_no_third_party_assets(client):
    page, _ = start_login(client)
    html = page.get_data(as_text=True)
    for marker in ("https://", "http://", "//cdn"):
        assert f'src="{marker}' not in html and f'href="{marker}' not in html


def test_page_uses_tenant_branding(client):
    page, _ = start_login(client)
    assert "/branding.css" in page.get_data(as_text=True)
    css = client.get("/branding.css", base_url=f"http://{T1}")
    assert "--primary: #0f766e" in css.get_data(as_text=True)


# --- sign-up on the page ------------------------------------------------------------------


def signup(client, page, state, email, password, username=None, connection="db"):
    data = {
        "csrf_token": csrf_token(page.get_data(as_text=True)),
        "state": state,
        "connection": connection,
        "action": "signup",
        "email": email,
        "password": password,
    }
    if username:
        data["username"] = username
    return client.post("/login", base_url=f"http://{T1}", data=data)


def test_signup_creates_an_unverified_user_and_logs_in(app, client):
    page, state = start_login(client, screen_hint="signup")
    response = signup(client, page, state, "New.User@Example.test", "Sturdy-Passw0rd")
    assert response.status_code == 302 and "code=" in response.headers["Location"]
    with app.extensions["login_site.sessionmaker"]() as db:
        user = db.scalars(sa.select(User).where(User.email == "new.user@example.test")).one()
        assert user.email_verified is False and user.user_id.startswith("auth0|")
        assert user.name == "new.user@example.test" and user.nickname == "new.user"


@pytest.mark.parametrize(
    "password,rule",
    [
        ("short1A", "At least 8 characters in length"),
        ("alllowercase", "Contain at least 3 of the following 4 types of characters:"),
    ],
)
def test_signup_explains_policy_failures_and_writes_nothing(app, client, password, rule):
    users = count(app, User)
    page, state = start_login(client, screen_hint="signup")
    response = signup(client, page, state, "weak@example.test", password)
    assert response.status_code == 400
    assert rule in response.get_data(as_text=True)
    assert count(app, User) == users


def test_signup_with_an_existing_email_in_any_case_creates_nothing(app, client):
    users = count(app, User)
    page, state = start_login(client, screen_hint="signup")
    response = signup(client, page, state, "ALICE@example.test", "Sturdy-Passw0rd")
    assert response.status_code == 400 and "Location" not in response.headers
    assert count(app, User) == users


def test_lookalike_email_is_a_different_account(app, client):
    page, state = start_login(client, screen_hint="signup")
    response = signup(client, page, state, "al\u0131ce@example.test", "Sturdy-Passw0rd")
    assert response.status_code == 302
    page, state = start_login(client, prompt="login")
    response = submit_login(client, page, state, "alice@example.test", "Sturdy-Passw0rd")
    assert response.status_code == 400


def test_signup_requires_a_username_when_the_connection_does(client):
    page, state = start_login(client, client_id="partners", redirect_uri="https://partners.test/cb")
    html = page.get_data(as_text=True)
    assert 'data-connection="partners-db"' in html
    response = signup(
        client, page, state, "p2@example.test", "Partner2pass", connection="partners-db"
    )
    assert response.status_code == 400
    page, state = start_login(
        client, client_id="partners", redirect_uri="https://partners.test/cb", screen_hint="signup"
    )
    response = signup(
        client,
        page,
        state,
        "p2@example.test",
        "Partner2pass",
        username="p2user",
        connection="partners-db",
    )
    assert response.status_code == 302


def test_username_login_works_for_username_connections(client):
    page, state = start_login(client, client_id="partners", redirect_uri="https://partners.test/cb")
    response = submit_login(client, page, state, "pat", "Partner1pass", connection="partners-db")
    assert response.status_code == 302


def test_posting_to_a_connection_not_offered_is_refused(app, client):
    page, state = start_login(client)
    response = submit_login(client, page, state, "pat", "Partner1pass", connection="partners-db")
    assert response.status_code == 400 and count(app, LoginSession) == 0


def test_disabled_signup_is_refused(app, client):
    with app.extensions["login_site.sessionmaker"]() as db:
        from login_site.models import Connection

        conn = db.scalars(sa.select(Connection).where(Connection.name == "db")).first()
        conn.options = {**conn.options, "disable_signup": True}
        db.commit()
    page, state = start_login(client)
    assert "Sign up" not in page.get_data(as_text=True)
    users = count(app, User)
    response = signup(client, page, state, "x@example.test", "Sturdy-Passw0rd")
    assert response.status_code == 400 and count(app, User) == users


def test_forms_work_over_https_without_a_referer(client):
    """Our pages send Referrer-Policy: no-referrer, so browsers post forms without Referer."""
    from urllib.parse import urlencode

    from tests.conftest import ALICE
    from tests.conftest import authorize_params

    response = client.get("/authorize?" + urlencode(authorize_params()), base_url="https://t1.test")
    page = client.get(response.headers["Location"], base_url="https://t1.test")
    state = query_of(response.headers["Location"])["state"]
    answer = client.post(
        "/login",
        base_url="https://t1.test",
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "state": state,
            "connection": "db",
            "action": "login",
            "username": ALICE[0],
            "password": ALICE[1],
        },
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)[:300]
    assert "code=" in answer.headers["Location"]
