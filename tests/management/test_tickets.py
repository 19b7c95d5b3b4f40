"""POST /api/v2/tickets/password-change (management-api.md §7): a single-use link to the hosted
reset page, returned to the caller (never mailed), for a user with a password."""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from login_site.models import MailOutbox
from login_site.models import Tenant
from login_site.models import User
from login_site.models import UserTicket
from login_site.security.secrets import sha256_hex
from tests.conftest import ALICE
from tests.conftest import count
from tests.conftest import csrf_token
from tests.conftest import login_code
from tests.management.conftest import T1
from tests.management.conftest import call
from tests.management.conftest import connection_id
from tests.management.conftest import user_id

NEW_PASSWORD = "Brand-New-Pass9"


def ticket(api, token=None, **data):
    token = token or api.token("create:user_tickets")
    return call(api, "POST", "/api/v2/tickets/password-change", token, json=data)


def raw_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["ticket"][0]


def reset(client, url: str, password: str = NEW_PASSWORD):
    path = url.split(T1, 1)[1]
    page = client.get(path, base_url=f"http://{T1}")
    if page.status_code != 200:
        return page
    return client.post(
        "/reset_password",
        base_url=f"http://{T1}",
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "ticket": raw_of(url),
            "password": password,
            "confirm": password,
        },
    )


def test_a_ticket_for_user_id_resets_the_password_once(app, api, backend, caplog):
    caplog.set_level(logging.DEBUG)
    mails = count(app, MailOutbox)
    response = ticket(api, user_id=user_id(app, ALICE[0]))
    assert response.status_code == 201, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    url = response.get_json()["ticket"]
    assert url.startswith(f"http://{T1}/reset_password?ticket=")
    assert count(app, MailOutbox) == mails  # handed to the caller, not mailed
    raw = raw_of(url)
    assert len(raw) >= 32
    with app.extensions["login_site.sessionmaker"]() as db:
        stored = db.get(UserTicket, sha256_hex(raw))
        assert stored.kind == "reset_password"
        assert db.scalar(select(UserTicket).where(UserTicket.token_hash == raw)) is None
    assert raw not in caplog.text
    browser = app.test_client()
    assert reset(browser, url).status_code == 200
    assert login_code(app.test_client(), user=(ALICE[0], NEW_PASSWORD))
    assert reset(app.test_client(), url, "Other-New-Pass9").status_code == 400


def test_a_ticket_for_email_and_connection(app, api):
    response = ticket(api, email="CAROL@example.test", connection_id=connection_id(app, "db"))
    assert response.status_code == 201, response.get_json()
    assert reset(app.test_client(), response.get_json()["ticket"]).status_code == 200
    assert login_code(app.test_client(), user=("carol@example.test", NEW_PASSWORD))


def test_ttl_sec_sets_the_lifetime_and_zero_means_the_default(app, api):
    def lifetime(url):
        with app.extensions["login_site.sessionmaker"]() as db:
            row = db.get(UserTicket, sha256_hex(raw_of(url)))
            return row.expires_at - row.created_at

    alice = user_id(app, ALICE[0])
    short = ticket(api, user_id=alice, ttl_sec=120).get_json()["ticket"]
    assert lifetime(short) == timedelta(seconds=120)
    default = ticket(api, user_id=alice, ttl_sec=0).get_json()["ticket"]
    assert lifetime(default) == timedelta(seconds=app.config["RESET_TICKET_TTL_SECONDS"])
    # A newer ticket replaces the older one.
    assert reset(app.test_client(), short).status_code == 400


def test_client_id_is_kept_on_the_ticket(app, api):
    url = ticket(api, user_id=user_id(app, ALICE[0]), client_id="web").get_json()["ticket"]
    with app.extensions["login_site.sessionmaker"]() as db:
        assert db.get(UserTicket, sha256_hex(raw_of(url))).client_pk is not None


@pytest.mark.parametrize(
    ("data", "status", "named"),
    [
        ({}, 400, "user_id"),
        ({"user_id": 5}, 400, "user_id"),
        ({"user_id": "auth0|nobody"}, 404, None),
        ({"email": "alice@example.test"}, 400, "user_id"),
        ({"email": "nobody@example.test", "connection_id": "db"}, 404, None),
        ({"user_id": "x", "email": "alice@example.test", "connection_id": "x"}, 400, None),
        ({"user_id": "alice", "ttl_sec": -1}, 400, "ttl_sec"),
        ({"user_id": "alice", "ttl_sec": 432001}, 400, "ttl_sec"),
        ({"user_id": "alice", "ttl_sec": "60"}, 400, "ttl_sec"),
        ({"user_id": "alice", "result_url": "javascript:alert(1)"}, 400, "result_url"),
        ({"user_id": "alice", "result_url": "https://app.test/#x"}, 400, "result_url"),
        ({"user_id": "alice", "mark_email_as_verified": "yes"}, 400, "mark_email_as_verified"),
        ({"user_id": "alice", "client_id": "nope"}, 404, None),
        ({"user_id": "alice", "client_id": "t2web"}, 404, None),
        ({"user_id": "alice", "organization_id": "org_1"}, 400, "organization_id"),
    ],
)
def test_bad_requests_issue_no_ticket(app, api, data, status, named):
    data = {
        k: (
            user_id(app, ALICE[0]) if v == "alice" else connection_id(app, "db") if v == "db" else v
        )
        for k, v in data.items()
    }
    before = count(app, UserTicket)
    response = ticket(api, **data)
    assert response.status_code == status, response.get_json()
    if named:
        assert f"'{named}'" in response.get_json()["message"]
    assert count(app, UserTicket) == before


def test_only_users_with_a_password_get_tickets(app, api):
    created = call(
        api,
        "POST",
        "/api/v2/users",
        api.token("create:users"),
        json={"connection": "email-otp", "email": "otp@example.test"},
    )
    assert created.status_code == 201, created.get_json()
    before = count(app, UserTicket)
    response = ticket(api, user_id=created.get_json()["user_id"])
    assert response.status_code == 400
    not_database = ticket(
        api, email="otp@example.test", connection_id=connection_id(app, "email-otp")
    )
    assert not_database.status_code == 400
    assert "'connection_id'" in not_database.get_json()["message"]
    assert count(app, UserTicket) == before


def test_another_tenants_user_or_connection_is_404(app, api):
    before = count(app, UserTicket)
    bob = user_id(app, "bob@example.test", tenant="t2")
    assert ticket(api, user_id=bob).status_code == 404
    t2_db = connection_id(app, "db", tenant="t2")
    assert ticket(api, email="bob@example.test", connection_id=t2_db).status_code == 404
    assert count(app, UserTicket) == before


def test_tickets_need_create_user_tickets(app, api):
    before = count(app, UserTicket)
    response = ticket(api, api.token("update:users"), user_id=user_id(app, ALICE[0]))
    assert response.status_code == 403
    assert response.get_json()["message"].endswith("create:user_tickets")
    assert count(app, UserTicket) == before


def _set_verified(app, email: str, verified: bool) -> None:
    with app.extensions["login_site.sessionmaker"]() as db:
        t1 = db.execute(select(Tenant).where(Tenant.name == "t1")).scalar_one()
        user = db.execute(
            select(User).where(User.email == email, User.tenant_id == t1.id)
        ).scalar_one()
        user.email_verified = verified
        db.commit()


def _verified(app, email: str) -> bool:
    with app.extensions["login_site.sessionmaker"]() as db:
        return db.execute(
            select(User.email_verified)
            .join(Tenant, Tenant.id == User.tenant_id)
            .where(User.email == email, Tenant.name == "t1")
        ).scalar_one()


def test_a_handed_out_ticket_does_not_verify_the_email_unless_asked(app, api):
    """Whoever completes a handed-out link has not proved the mailbox (the verified address
    decides account linking)."""
    _set_verified(app, ALICE[0], False)
    url = ticket(api, user_id=user_id(app, ALICE[0])).get_json()["ticket"]
    assert reset(app.test_client(), url).status_code == 200
    assert _verified(app, ALICE[0]) is False
    url = ticket(api, user_id=user_id(app, ALICE[0]), mark_email_as_verified=True).get_json()
    assert reset(app.test_client(), url["ticket"], "Second-New-Pass9").status_code == 200
    assert _verified(app, ALICE[0]) is True


def test_result_url_receives_the_browser_after_the_reset(app, api):
    url = ticket(
        api,
        user_id=user_id(app, ALICE[0]),
        result_url="https://app.test/after-reset?from=ticket",
        includeEmailInRedirect=True,
    ).get_json()["ticket"]
    response = reset(app.test_client(), url)
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith("https://app.test/after-reset?from=ticket&")
    query = parse_qs(urlsplit(location).query)
    assert query["success"] == ["true"] and query["email"] == [ALICE[0]]
    plain = ticket(
        api, user_id=user_id(app, ALICE[0]), result_url="https://app.test/done"
    ).get_json()["ticket"]
    done = reset(app.test_client(), plain, "Third-New-Pass9")
    assert "email" not in parse_qs(urlsplit(done.headers["Location"]).query)
