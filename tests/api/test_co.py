"""Cross-origin authentication: /co/authenticate and login_ticket (compat §8, checklist §1.O)."""

import pytest

from tests.conftest import ALICE
from tests.conftest import T1
from tests.conftest import pkce_pair
from tests.conftest import query_of

ORIGIN = "http://localhost:38123"
REALM = "http://auth0.com/oauth/grant-type/password-realm"


def co(client, origin=ORIGIN, **fields):
    body = {
        "client_id": "sdk-spa",
        "credential_type": REALM,
        "username": ALICE[0],
        "password": ALICE[1],
        "realm": "db",
        **fields,
    }
    return client.post(
        "/co/authenticate",
        base_url=f"http://{T1}",
        headers={"Origin": origin},
        json={k: v for k, v in body.items() if v is not ...},
    )


def authorize_with(client, ticket, **extra):
    verifier, challenge = pkce_pair()
    return client.get(
        "/authorize",
        base_url=f"http://{T1}",
        query_string={
            "client_id": "sdk-spa",
            "redirect_uri": f"{ORIGIN}/callback",
            "response_type": "code",
            "scope": "openid",
            "state": "s",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "login_ticket": ticket,
            "realm": "db",
            **extra,
        },
    )


def test_ticket_then_authorize_logs_in_once(client):
    response = co(client)
    assert response.status_code == 200, response.json
    body = response.json
    assert set(body) == {"login_ticket", "co_verifier", "co_id"}
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    cookie = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("login_site_co=")]
    assert cookie and "HttpOnly" in cookie[0]
    done = authorize_with(client, body["login_ticket"])
    assert "code" in query_of(done.headers["Location"])
    replay = authorize_with(client.application.test_client(), body["login_ticket"])
    assert query_of(replay.headers["Location"])["error"] == "access_denied"


def set_verification_page(app, location):
    import sqlalchemy as sa

    from login_site.models import Client

    with app.extensions["login_site.sessionmaker"]() as db:
        spa = db.scalars(sa.select(Client).where(Client.client_id == "sdk-spa")).one()
        spa.extra = {**spa.extra, "cross_origin_loc": location}
        db.commit()


def test_without_cookie_or_verification_page_the_ticket_is_refused(app, client):
    ticket = co(client).json["login_ticket"]
    other = app.test_client()  # third-party cookies blocked: the binding cookie is absent
    response = authorize_with(other, ticket)
    assert query_of(response.headers["Location"])["error"] == "access_denied"


def test_a_wrong_verifier_is_access_denied(app, client):
    from tests.conftest import csrf_token

    set_verification_page(app, f"{ORIGIN}/cross-origin-verification.html")
    ticket = co(client).json
    other = app.test_client()
    page = authorize_with(other, ticket["login_ticket"])
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and f"{ORIGIN}/cross-origin-verification.html#origin=" in html
    assert f"frame-src {ORIGIN}" in page.headers["Content-Security-Policy"]
    state = html.split('name="state" value="', 1)[1].split('"', 1)[0]
    wrong = other.post(
        "/co/verify",
        base_url=f"http://{T1}",
        data={"csrf_token": csrf_token(html), "state": state, "verifier": "forged"},
    )
    assert query_of(wrong.headers["Location"])["error"] == "access_denied"


def test_verifier_relay_issues_a_code(app, client):
    from tests.conftest import csrf_token

    set_verification_page(app, f"{ORIGIN}/cross-origin-verification.html")
    ticket = co(client).json
    other = app.test_client()
    html = authorize_with(other, ticket["login_ticket"]).get_data(as_text=True)
    state = html.split('name="state" value="', 1)[1].split('"', 1)[0]
    done = other.post(
        "/co/verify",
        base_url=f"http://{T1}",
        data={"csrf_token": csrf_token(html), "state": state, "verifier": ticket["co_verifier"]},
    )
    assert "code" in query_of(done.headers["Location"])


def test_preflight_allows_credentials_for_an_allowed_origin(client):
    response = client.options(
        "/co/authenticate",
        base_url=f"http://{T1}",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, auth0-client",
        },
    )
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers["Access-Control-Allow-Credentials"] == "true"


@pytest.mark.parametrize(
    "username,password",
    [
        ("alice@example.test", "wrong"),
        ("nobody@example.test", "wrong"),
        ("blocked@example.test", "wrong"),
    ],
)
def test_wrong_credentials_are_identical(client, username, password):
    response = co(client, username=username, password=password)
    assert response.status_code == 403
    assert response.json == {
        "error": "access_denied",
        "error_description": "Wrong email or password.",
    }


def test_blocked_user(client):
    response = co(client, username="blocked@example.test", password="Blocked-password-1")
    assert response.status_code == 403 and response.json["error"] == "blocked_user"


def test_origin_not_allowed_is_a_plain_403(client):
    response = co(client, origin="https://evil.test")
    assert response.status_code == 403
    assert response.get_data(as_text=True) == "Origin https://evil.test is not allowed."
    assert "Access-Control-Allow-Origin" not in response.headers


def test_client_without_cross_origin_authentication(client):
    response = co(client, client_id="spa", origin="http://127.0.0.1:8765")
    assert response.status_code == 401 and response.json["error"] == "unauthorized_client"


@pytest.mark.parametrize(
    "fields,error",
    [
        ({"extra": "x"}, "invalid_request"),
        ({"credential_type": "urn:other"}, "unsupported_credential_type"),
        ({"realm": "nope"}, "invalid_request"),
        ({"realm": "closed-db"}, "invalid_request"),
        ({"username": ...}, "invalid_request"),
    ],
)
def test_bad_requests(client, fields, error):
    response = co(client, **fields)
    assert response.status_code == 400 and response.json["error"] == error


def test_ticket_is_bound_to_its_client(app, client):
    ticket = co(client).json["login_ticket"]
    response = client.get(
        "/authorize",
        base_url=f"http://{T1}",
        query_string={
            "client_id": "web",
            "redirect_uri": "https://app.test/cb",
            "response_type": "code",
            "scope": "openid",
            "login_ticket": ticket,
        },
    )
    assert query_of(response.headers["Location"])["error"] == "access_denied"


def test_passwordless_code_through_co_authenticate(app, client, mailbox):
    import re

    widget = "http://widget.t1.localhost:30124"
    otp = "http://auth0.com/oauth/grant-type/passwordless/otp"
    start = client.post(
        "/passwordless/start",
        base_url=f"http://{T1}",
        headers={"Origin": widget},
        json={
            "client_id": "widget-b",
            "connection": "widget-email",
            "email": "pl-co@example.test",
            "send": "code",
        },
    )
    assert start.status_code == 200, start.get_data(as_text=True)
    message = mailbox.wait_for(to="pl-co@example.test", subject_contains="")
    code = re.search(r"\b(\d{6})\b", message.get_body(("plain",)).get_content()).group(1)

    def co_otp(value):
        return client.post(
            "/co/authenticate",
            base_url=f"http://{T1}",
            headers={"Origin": widget},
            json={
                "client_id": "widget-b",
                "credential_type": otp,
                "username": "pl-co@example.test",
                "otp": value,
                "realm": "widget-email",
            },
        )

    wrong = co_otp("000000" if code != "000000" else "111111")
    assert wrong.status_code == 403 and wrong.json["error"] == "access_denied"
    right = co_otp(code)
    assert right.status_code == 200 and set(right.json) == {"login_ticket", "co_verifier", "co_id"}
    assert co_otp(code).status_code == 403  # the code is spent
