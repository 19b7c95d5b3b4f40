"""Brute-force protection and suspicious-IP throttling (checklist LG-03, LG-04, LG-05, SE-10)."""

import json
import logging
import shutil
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import requests
import sqlalchemy as sa

from login_site.db import utcnow
from login_site.models import AccessToken
from login_site.models import Connection
from login_site.models import LoginAttempt
from login_site.models import LoginSession
from login_site.models import MailOutbox
from login_site.models import RefreshToken
from login_site.models import Tenant
from login_site.models import User
from login_site.security import bruteforce
from tests.conftest import ALICE
from tests.conftest import T1
from tests.conftest import T2
from tests.conftest import GunicornServer
from tests.conftest import count
from tests.conftest import csrf_token
from tests.conftest import make_app
from tests.conftest import start_login
from tests.conftest import submit_login

SDK_WEB = ("sdk-web", "sdk-web-secret-0123456789abcdefghijklm")
REALM = "http://auth0.com/oauth/grant-type/password-realm"
WRONG = "Wrong-password-1"
BLOCKED_TEXT = "Your account has been blocked after multiple consecutive login attempts."
SIDE_EFFECT_MODELS = (User, AccessToken, RefreshToken, LoginSession)


def token_form(username, password):
    return {
        "grant_type": REALM,
        "realm": "db",
        "username": username,
        "password": password,
        "scope": "openid",
        "client_id": SDK_WEB[0],
        "client_secret": SDK_WEB[1],
    }


def password_grant(client, username, password, *, ip="127.0.0.1", headers=None):
    return client.post(
        "/oauth/token",
        base_url=f"http://{T1}",
        data=token_form(username, password),
        headers=headers or {},
        environ_base={"REMOTE_ADDR": ip},
    )


def set_options(app, **options):
    with app.extensions["login_site.sessionmaker"]() as db:
        for conn in db.scalars(sa.select(Connection).where(Connection.name == "db")):
            conn.options = {**conn.options, **options}
        db.commit()


def counts(app):
    return {model.__name__: count(app, model) for model in SIDE_EFFECT_MODELS}


def assert_safe_json_reject(response, status, error):
    """Checklist §0.3: the status, the error shape, no redirect, no internals or secrets."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.json
    assert set(body) == {"error", "error_description"} and body["error"] == error
    assert all(0x20 <= ord(c) < 0x7F for c in body["error_description"])
    assert "Location" not in response.headers
    text = response.get_data(as_text=True)
    for leak in ("Traceback", "sqlalchemy", 'File "/', ALICE[1], SDK_WEB[1]):
        assert leak not in text


def block(client, username, *, ip="127.0.0.1", attempts=10, headers=None):
    for _ in range(attempts):
        response = password_grant(client, username, WRONG, ip=ip, headers=headers)
        assert response.status_code == 400, response.json
        assert response.json["error"] == "invalid_grant"


def events(caplog, name):
    return [
        json.loads(r.getMessage())
        for r in caplog.records
        if r.name == "login_site.events" and json.loads(r.getMessage())["event"] == name
    ]


# --- LG-03: block after max_attempts, even with the right password --------------------------


def test_right_password_is_refused_after_ten_failures(app, client, mailbox, caplog):
    caplog.set_level(logging.INFO)
    block(client, ALICE[0])
    before = counts(app)
    response = password_grant(client, *ALICE)
    assert_safe_json_reject(response, 429, "too_many_attempts")
    assert response.json["error_description"] == BLOCKED_TEXT
    assert "Retry-After" not in response.headers  # a block has no retry time
    assert counts(app) == before
    assert events(caplog, "brute_force")[-1]["outcome"] == "rejected"
    notice = mailbox.wait_for(to=ALICE[0], subject_contains="blocked")
    assert "127.0.0.1" in mailbox.text(notice)
    assert any("/unblock?ticket=" in link for link in mailbox.links(notice))
    assert ALICE[1] not in caplog.text and ALICE[0] not in caplog.text


def test_the_ninth_failure_does_not_block(client):
    block(client, ALICE[0], attempts=9)
    assert password_grant(client, *ALICE).status_code == 200


def test_the_hosted_page_shows_a_readable_blocked_message(app, client, mailbox):
    for _ in range(10):
        page, state = start_login(client)
        assert submit_login(client, page, state, ALICE[0], WRONG).status_code == 400
    page, state = start_login(client)
    response = submit_login(client, page, state, *ALICE)
    assert response.status_code == 429
    assert "Location" not in response.headers
    html = response.get_data(as_text=True)
    assert "blocked after multiple consecutive login attempts" in html
    assert ALICE[1] not in html
    mailbox.wait_for(to=ALICE[0], subject_contains="blocked")


def test_success_resets_the_counter(app, client):
    block(client, ALICE[0], attempts=9)
    assert password_grant(client, *ALICE).status_code == 200
    assert count(app, LoginAttempt) == 0
    block(client, ALICE[0], attempts=9)
    assert password_grant(client, *ALICE).status_code == 200


def test_unknown_users_are_blocked_the_same_way_but_get_no_mail(app, client, mailbox):
    block(client, "nobody@example.test")
    unknown = password_grant(client, "nobody@example.test", WRONG)
    block(client, ALICE[0])
    known = password_grant(client, ALICE[0], WRONG)
    assert unknown.status_code == known.status_code == 429
    assert unknown.json == known.json
    mailbox.wait_for(to=ALICE[0], subject_contains="blocked")
    assert mailbox.find(to="nobody@example.test") == []
    with app.extensions["login_site.sessionmaker"]() as db:
        assert db.scalar(sa.select(sa.func.count()).select_from(MailOutbox)) == 1


def test_the_block_notice_is_sent_once(app, client, mailbox):
    block(client, ALICE[0], attempts=10)
    for _ in range(3):
        assert password_grant(client, ALICE[0], WRONG).status_code == 429
    mailbox.wait_for(to=ALICE[0], subject_contains="blocked")
    assert count(app, MailOutbox) == 1


def test_identifiers_are_stored_hashed(app, client):
    block(client, "Someone.Secret@Example.test", attempts=2)
    with app.extensions["login_site.sessionmaker"]() as db:
        (row,) = db.scalars(sa.select(LoginAttempt)).all()
    assert "secret" not in row.identifier_key.lower()
    assert row.identifier_key == bruteforce.identifier_key(" someone.secret@example.TEST ")
    assert row.failures == 2 and row.blocked_at is None


def test_other_spellings_of_the_identifier_share_the_counter(client):
    for spelling in ("alice@example.test", "ALICE@example.test", " Alice@Example.Test "):
        block(client, spelling, attempts=3)
    block(client, "alice@EXAMPLE.test", attempts=1)
    assert password_grant(client, *ALICE).status_code == 429


def test_max_attempts_is_a_connection_option(app, client):
    set_options(app, max_attempts=3)
    block(client, ALICE[0], attempts=3)
    assert password_grant(client, *ALICE).status_code == 429


def test_brute_force_protection_can_be_turned_off(app, client):
    set_options(app, brute_force_protection=False)
    block(client, ALICE[0], attempts=12)
    assert password_grant(client, *ALICE).status_code == 200
    assert count(app, LoginAttempt) == 0


def test_a_block_lifts_after_the_block_period(app, client):
    block(client, ALICE[0])
    assert password_grant(client, *ALICE).status_code == 429
    with app.extensions["login_site.sessionmaker"]() as db:
        db.execute(sa.update(LoginAttempt).values(blocked_at=utcnow() - timedelta(days=31)))
        db.commit()
    assert password_grant(client, *ALICE).status_code == 200


# --- LG-03 across processes -----------------------------------------------------------------


def wait_ready(server, timeout: float = 60) -> None:
    """Like ``GunicornServer.wait_ready``, also while a worker is still booting (the port
    accepts before a worker answers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start")


def test_counter_is_shared_by_two_app_processes(backend, live_server, smtp_server, mailbox):
    """Failures alternate between the threaded server and gunicorn (two workers): the
    eleventh attempt, with the right password, is refused by either."""
    server = GunicornServer(live_server.app.config["DATABASE_URL"], extra_env=smtp_server.env())
    try:
        wait_ready(server)
        host = {"Host": f"127.0.0.1:{live_server.port}"}
        targets = [
            (live_server.api_url("t1", "/oauth/token"), {}),
            (f"http://127.0.0.1:{server.port}/oauth/token", host),
        ]
        for attempt in range(10):
            url, headers = targets[attempt % 2]
            response = requests.post(
                url, data=token_form(ALICE[0], WRONG), headers=headers, timeout=30
            )
            assert response.status_code == 400, response.text
        for url, headers in targets:
            response = requests.post(url, data=token_form(*ALICE), headers=headers, timeout=30)
            assert response.status_code == 429, response.text
            assert response.json() == {
                "error": "too_many_attempts",
                "error_description": BLOCKED_TEXT,
            }
        mailbox.wait_for(to=ALICE[0], subject_contains="blocked", timeout=15)
    finally:
        server.stop()


# --- LG-04, SE-10: client addresses ---------------------------------------------------------


@pytest.fixture
def proxied_app(tmp_path, sqlite_template, smtp_server):
    """The app behind one trusted proxy: ``X-Forwarded-For`` names the client."""
    shutil.copy(sqlite_template, tmp_path / "test.db")
    app = make_app(
        f"sqlite:///{tmp_path / 'test.db'}",
        tmp_path,
        PROXY_FIX_X_FOR=1,
        **smtp_server.app_config(),
    )
    yield app
    app.extensions["login_site.engine"].dispose()


def test_the_owner_from_another_ip_is_not_locked_out(proxied_app, mailbox):
    client = proxied_app.test_client()
    attacker = {"X-Forwarded-For": "203.0.113.7"}
    block(client, ALICE[0], headers=attacker)
    assert password_grant(client, *ALICE, headers=attacker).status_code == 429
    owner = {"X-Forwarded-For": "198.51.100.20"}
    assert password_grant(client, *ALICE, headers=owner).status_code == 200
    notice = mailbox.wait_for(to=ALICE[0], subject_contains="blocked")
    assert "203.0.113.7" in mailbox.text(notice)


def test_rotating_x_forwarded_for_does_not_escape_the_counter(client):
    """Without a trusted proxy configured, X-Forwarded-For is the client's own words."""
    for i in range(10):
        spoofed = {"X-Forwarded-For": f"198.51.100.{i + 1}"}
        assert password_grant(client, ALICE[0], WRONG, headers=spoofed).status_code == 400
    spoofed = {"X-Forwarded-For": "198.51.100.200"}
    assert password_grant(client, *ALICE, headers=spoofed).status_code == 429


def test_ipv6_clients_are_counted_per_64(client):
    for i in range(10):
        ip = f"2001:db8:1:2::{i + 1:x}"
        assert password_grant(client, ALICE[0], WRONG, ip=ip).status_code == 400
    assert password_grant(client, *ALICE, ip="2001:db8:1:2::ffff").status_code == 429
    assert password_grant(client, *ALICE, ip="2001:db8:1:3::1").status_code == 200


# --- unblock link and password reset --------------------------------------------------------


def unblock_link(mailbox) -> str:
    notice = mailbox.wait_for(to=ALICE[0], subject_contains="blocked")
    (link,) = [link for link in mailbox.links(notice) if "/unblock?" in link]
    parts = urlsplit(link)
    assert parts.netloc == T1
    return f"{parts.path}?{parts.query}"


def test_the_unblock_link_confirms_then_unblocks_once(app, client, mailbox):
    block(client, ALICE[0])
    link = unblock_link(mailbox)
    browser = app.test_client()
    page = browser.get(link, base_url=f"http://{T1}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Unblock my account" in html
    # Following the link (a mail scanner does) spends nothing.
    assert browser.get(link, base_url=f"http://{T1}").status_code == 200
    assert password_grant(client, *ALICE).status_code == 429
    ticket = link.split("ticket=", 1)[1]
    done = browser.post(
        "/unblock",
        base_url=f"http://{T1}",
        data={"ticket": ticket, "csrf_token": csrf_token(html)},
    )
    assert done.status_code == 200
    assert "Account unblocked" in done.get_data(as_text=True)
    assert count(app, LoginAttempt) == 0
    assert password_grant(client, *ALICE).status_code == 200
    again = browser.post(
        "/unblock",
        base_url=f"http://{T1}",
        data={"ticket": ticket, "csrf_token": csrf_token(html)},
    )
    assert again.status_code == 400
    assert "invalid or has expired" in again.get_data(as_text=True)


def test_unblocking_needs_the_csrf_token(app, client, mailbox):
    block(client, ALICE[0])
    ticket = unblock_link(mailbox).split("ticket=", 1)[1]
    response = app.test_client().post("/unblock", base_url=f"http://{T1}", data={"ticket": ticket})
    assert response.status_code == 400
    assert password_grant(client, *ALICE).status_code == 429


@pytest.mark.parametrize("ticket", ["", "nope", "x" * 300])
def test_a_bad_unblock_link_is_refused(app, client, ticket):
    page = client.get(f"/unblock?ticket={ticket}", base_url=f"http://{T1}")
    assert page.status_code == 400
    assert "invalid or has expired" in page.get_data(as_text=True)
    assert "Location" not in page.headers


def test_unblock_link_of_another_tenant_is_refused(app, client, mailbox):
    block(client, ALICE[0])
    link = unblock_link(mailbox)
    assert client.get(link, base_url="http://t2.test").status_code == 400


def test_a_password_reset_unblocks(app, client, mailbox):
    block(client, ALICE[0])
    response = client.post(
        "/dbconnections/change_password",
        base_url=f"http://{T1}",
        json={"client_id": "web", "connection": "db", "email": ALICE[0]},
    )
    assert response.status_code == 200
    reset = mailbox.wait_for(to=ALICE[0], subject_contains="password")
    (link,) = [link for link in mailbox.links(reset) if "reset_password" in link]
    parts = urlsplit(link)
    browser = app.test_client()
    page = browser.get(f"{parts.path}?{parts.query}", base_url=f"http://{T1}")
    assert page.status_code == 200
    new_password = "Another horse battery Staple2"
    done = browser.post(
        "/reset_password",
        base_url=f"http://{T1}",
        data={
            "ticket": parts.query.split("ticket=", 1)[1],
            "password": new_password,
            "confirm": new_password,
            "csrf_token": csrf_token(page.get_data(as_text=True)),
        },
    )
    assert done.status_code == 200, done.get_data(as_text=True)
    assert password_grant(client, ALICE[0], new_password).status_code == 200


def test_unblock_user_clears_every_ip(app, client):
    block(client, ALICE[0], ip="192.0.2.1")
    block(client, ALICE[0], ip="192.0.2.2")
    with app.app_context(), app.extensions["login_site.sessionmaker"]() as db:
        user = db.scalars(
            sa.select(User).join(Tenant).where(User.email == ALICE[0], Tenant.name == "t1")
        ).one()
        assert bruteforce.unblock_user(db, user) == 2
        db.commit()
    assert password_grant(client, *ALICE, ip="192.0.2.1").status_code == 200
    assert password_grant(client, *ALICE, ip="192.0.2.2").status_code == 200


# --- LG-05: suspicious-IP throttling --------------------------------------------------------


def test_many_accounts_from_one_ip_are_throttled(app, client, caplog):
    caplog.set_level(logging.INFO)
    app.config["SUSPICIOUS_IP_LIMIT"] = "20/hour"
    for i in range(20):
        response = password_grant(client, f"user{i}@example.test", WRONG)
        assert response.status_code == 400, (i, response.json)
    before = counts(app)
    response = password_grant(client, "user99@example.test", WRONG)
    assert_safe_json_reject(response, 429, "too_many_requests")
    assert 3500 < int(response.headers["Retry-After"]) <= 3600
    # Even the right password waits: the IP is throttled before any password is checked.
    assert password_grant(client, *ALICE).status_code == 429
    assert counts(app) == before
    assert events(caplog, "suspicious_ip")[-1]["outcome"] == "throttled"
    other = password_grant(client, "user99@example.test", WRONG, ip="192.0.2.50")
    assert other.status_code == 400 and other.json["error"] == "invalid_grant"
    assert password_grant(client, *ALICE, ip="192.0.2.50").status_code == 200


def test_a_throttled_ip_gets_a_readable_page_on_the_hosted_login(app, client):
    app.config["SUSPICIOUS_IP_LIMIT"] = "3/hour"
    for i in range(3):
        password_grant(client, f"user{i}@example.test", WRONG)
    page, state = start_login(client)
    response = submit_login(client, page, state, ALICE[0], WRONG)
    assert response.status_code == 429
    assert "Location" not in response.headers
    assert "too many requests from your network" in response.get_data(as_text=True)


def test_suspicious_ip_counts_are_per_tenant(app, client):
    app.config["SUSPICIOUS_IP_LIMIT"] = "2/hour"
    for i in range(2):
        password_grant(client, f"user{i}@example.test", WRONG)
    assert password_grant(client, "user9@example.test", WRONG).status_code == 429
    page, state = start_login(client, T2, client_id="t2web", redirect_uri="https://app.test/cb")
    response = submit_login(client, page, state, "alice@example.test", "alice-in-t2", host=T2)
    assert response.status_code == 302
