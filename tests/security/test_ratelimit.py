"""Rate limits per endpoint class (compat §0.7; checklist TK-17, PR-07, SU-09, PL-03)."""

import json
import logging
import shutil
import socket
import threading
import time
import uuid

import pytest
import redis
import requests
import sqlalchemy as sa

from login_site.models import RateCounter
from login_site.models import User
from login_site.security import ratelimit
from login_site.security.ratelimit import DatabaseStorage
from tests.conftest import T1
from tests.conftest import GunicornServer
from tests.conftest import basic
from tests.conftest import count
from tests.conftest import make_app
from tests.conftest import start_login
from tests.conftest import submit_login
from tests.security.test_bruteforce import ALICE
from tests.security.test_bruteforce import WRONG
from tests.security.test_bruteforce import password_grant
from tests.security.test_bruteforce import wait_ready

AUTH0_BODY = {
    "error": "too_many_requests",
    "error_description": "Too many requests. Check the X-RateLimit-Limit, "
    "X-RateLimit-Remaining and X-RateLimit-Reset headers.",
}
JWKS = "/.well-known/jwks.json"
M2M = ("m2m", "m2m-secret-0123456789abcdefghijklmnop")
REDIS_URL = "redis://127.0.0.1:6379/0"


def get(client, path, **kwargs):
    return client.get(path, base_url=f"http://{T1}", **kwargs)


def post(client, path, **kwargs):
    return client.post(path, base_url=f"http://{T1}", **kwargs)


def assert_limit_headers(response, limit: int, remaining: int):
    headers = response.headers
    assert headers["X-RateLimit-Limit"] == str(limit)
    assert headers["X-RateLimit-Remaining"] == str(remaining)
    reset = int(headers["X-RateLimit-Reset"])  # integer UNIX seconds (auth0-python int()s it)
    assert time.time() - 5 < reset <= time.time() + 3700


def assert_auth0_429(response, limit: int):
    """Checklist §0.3 for a limited JSON endpoint: Auth0's body, the headers, no redirect."""
    assert response.status_code == 429, response.get_data(as_text=True)
    assert response.json == AUTH0_BODY
    assert_limit_headers(response, limit, 0)
    assert 0 < int(response.headers["Retry-After"]) <= 3600
    assert "Location" not in response.headers
    assert "Traceback" not in response.get_data(as_text=True)


def events(caplog, name):
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "login_site.events"]
    return [r for r in records if r["event"] == name]


# --- the 429 and its headers ----------------------------------------------------------------


def test_limited_endpoint_answers_429_with_auth0_body_and_headers(app, client, caplog):
    caplog.set_level(logging.INFO)
    app.config["RATE_LIMIT_JWKS"] = "2/hour"
    first = get(client, JWKS)
    assert first.status_code == 200
    assert_limit_headers(first, 2, 1)
    assert "Retry-After" not in first.headers
    assert_limit_headers(get(client, JWKS), 2, 0)
    assert_auth0_429(get(client, JWKS), 2)
    (breach,) = events(caplog, "rate_limit")
    assert breach["outcome"] == "exceeded" and breach["endpoint_class"] == "jwks"


def test_endpoints_without_a_class_carry_no_limit_headers(client):
    response = get(client, "/.well-known/openid-configuration")
    assert response.status_code == 200
    assert "X-RateLimit-Limit" not in response.headers


def test_error_answers_of_limited_endpoints_carry_the_headers_too(app, client):
    response = post(client, "/oauth/token", data={"grant_type": "client_credentials"})
    assert response.status_code == 401
    assert_limit_headers(response, 30, 29)


def test_preflight_requests_are_not_counted(app, client):
    app.config["RATE_LIMIT_TOKEN"] = "1/hour"
    for _ in range(3):
        response = client.options(
            "/oauth/token",
            base_url=f"http://{T1}",
            headers={
                "Origin": "http://127.0.0.1:8765",
                "Access-Control-Request-Method": "POST",
            },
        )
        assert response.status_code in (200, 204)
    assert count(app, RateCounter) == 0


def test_an_empty_limit_turns_a_class_off(app, client):
    app.config["RATE_LIMIT_JWKS"] = ""
    for _ in range(3):
        response = get(client, JWKS)
        assert response.status_code == 200 and "X-RateLimit-Limit" not in response.headers


def test_rate_limits_can_be_disabled(tmp_path, sqlite_template):
    shutil.copy(sqlite_template, tmp_path / "test.db")
    app = make_app(
        f"sqlite:///{tmp_path / 'test.db'}",
        tmp_path,
        RATE_LIMIT_ENABLED=False,
        RATE_LIMIT_JWKS="1/hour",
    )
    client = app.test_client()
    assert [get(client, JWKS).status_code for _ in range(3)] == [200, 200, 200]
    app.extensions["login_site.engine"].dispose()


# --- endpoint classes -----------------------------------------------------------------------


def test_token_endpoint_limits_a_bad_client_while_a_good_one_is_served(app, client):
    """TK-17: per IP and client_id."""
    app.config["RATE_LIMIT_TOKEN"] = "5/hour"
    bad = basic("intruder", "not-a-secret")
    statuses = [
        post(client, "/oauth/token", headers=bad, data={"grant_type": "client_credentials"})
        for _ in range(8)
    ]
    assert [r.status_code for r in statuses] == [401] * 5 + [429] * 3
    assert_auth0_429(statuses[-1], 5)
    good = post(
        client,
        "/oauth/token",
        headers=basic(*M2M),
        data={"grant_type": "client_credentials", "audience": "https://api.example.test/"},
    )
    assert good.status_code == 200
    assert_limit_headers(good, 5, 4)


def test_token_endpoint_limits_are_per_ip(app, client):
    app.config["RATE_LIMIT_TOKEN"] = "2/hour"
    form = {"grant_type": "client_credentials", "client_id": "m2m", "client_secret": "no"}
    for _ in range(2):
        post(client, "/oauth/token", data=form)
    assert post(client, "/oauth/token", data=form).status_code == 429
    other = post(client, "/oauth/token", data=form, environ_base={"REMOTE_ADDR": "192.0.2.9"})
    assert other.status_code == 401


def test_change_password_allows_one_request_per_ip_and_email(app, client, mailbox):
    """PR-07: the second request for the same address within the minute is refused."""
    body = {"client_id": "web", "connection": "db", "email": ALICE[0]}
    first = post(client, "/dbconnections/change_password", json=body)
    assert first.status_code == 200
    second = post(client, "/dbconnections/change_password", json=body)
    assert_auth0_429(second, 1)
    assert 0 < int(second.headers["Retry-After"]) <= 60
    other = post(client, "/dbconnections/change_password", json={**body, "email": "x@example.test"})
    assert other.status_code == 200
    mailbox.wait_for(to=ALICE[0])
    time.sleep(0.5)
    assert len(mailbox.find(to=ALICE[0])) == 1


def test_the_hosted_forgot_password_form_shares_the_reset_limit(app, client):
    page, state = start_login(client)
    for expected in (200, 429):
        response = post(
            client,
            "/forgot_password",
            data={"state": state, "email": ALICE[0], "csrf_token": _csrf(page)},
        )
        assert response.status_code == expected
    assert "too many requests from your network" in response.get_data(as_text=True)


def _csrf(page):
    from tests.conftest import csrf_token

    return csrf_token(page.get_data(as_text=True))


def test_signups_from_one_ip_are_limited(app, client, mailbox):
    """SU-09 (lowered): the fourth sign-up from the IP within the window is refused."""
    app.config["RATE_LIMIT_SIGNUP"] = "3/hour"
    users = count(app, User)
    for i in range(3):
        response = post(
            client,
            "/dbconnections/signup",
            json={
                "client_id": "web",
                "connection": "db",
                "email": f"new{i}@example.test",
                "password": "Sturdy-Passw0rd",
            },
        )
        assert response.status_code == 200, response.json
    refused = post(
        client,
        "/dbconnections/signup",
        json={
            "client_id": "web",
            "connection": "db",
            "email": "new9@example.test",
            "password": "Sturdy-Passw0rd",
        },
    )
    assert_auth0_429(refused, 3)
    assert count(app, User) == users + 3


def test_hosted_login_posts_are_limited_with_a_readable_page(app, client):
    app.config["RATE_LIMIT_LOGIN"] = "2/hour"
    page, state = start_login(client)
    for _ in range(2):
        assert submit_login(client, page, state, ALICE[0], WRONG).status_code == 400
    response = submit_login(client, page, state, *ALICE)
    assert response.status_code == 429
    assert "Location" not in response.headers
    assert response.headers["Content-Type"].startswith("text/html")
    assert "too many requests from your network" in response.get_data(as_text=True)
    assert_limit_headers(response, 2, 0)
    assert "Retry-After" in response.headers
    assert get(client, "/login?state=" + state).status_code == 200  # the page itself is not


def test_cross_origin_authentication_is_limited(app, client):
    app.config["RATE_LIMIT_CO_AUTHENTICATE"] = "2/hour"
    for _ in range(2):
        assert post(client, "/co/authenticate", json={}).status_code == 400
    assert_auth0_429(post(client, "/co/authenticate", json={}), 2)


def test_userinfo_is_limited_per_access_token(app, client):
    app.config["RATE_LIMIT_USERINFO"] = "2/hour"
    first = {"Authorization": "Bearer token-one"}
    for _ in range(2):
        assert get(client, "/userinfo", headers=first).status_code == 401
    assert_auth0_429(get(client, "/userinfo", headers=first), 2)
    assert (
        get(client, "/userinfo", headers={"Authorization": "Bearer token-two"}).status_code == 401
    )


def test_passwordless_start_is_limited_per_ip(app, client):
    """PL-03: Auth0 allows 50 per hour from one IP (lowered here)."""
    app.config["RATE_LIMIT_PASSWORDLESS_START"] = "2/hour"
    for _ in range(2):
        assert post(client, "/passwordless/start", json={}).status_code != 429
    assert_auth0_429(post(client, "/passwordless/start", json={}), 2)
    other = post(client, "/passwordless/start", json={}, environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert other.status_code != 429


def test_limits_are_per_tenant(app, client):
    app.config["RATE_LIMIT_JWKS"] = "1/hour"
    assert get(client, JWKS).status_code == 200
    assert get(client, JWKS).status_code == 429
    assert client.get(JWKS, base_url="http://t2.test").status_code == 200


# --- storage --------------------------------------------------------------------------------


def test_database_storage_counts_in_fixed_windows(backend, app):
    storage = DatabaseStorage(engine=app.extensions["login_site.engine"])
    key = f"test/{uuid.uuid4().hex}"
    assert storage.get(key) == 0
    assert [storage.incr(key, 60) for _ in range(3)] == [1, 2, 3]
    assert storage.get(key) == 3
    assert time.time() + 55 < storage.get_expiry(key) <= time.time() + 61
    with app.extensions["login_site.sessionmaker"]() as db:
        db.execute(
            sa.update(RateCounter)
            .where(RateCounter.key == key)
            .values(expires_at=sa.func.current_timestamp())
        )
        db.commit()
    assert storage.get(key) == 0
    assert storage.incr(key, 60) == 1  # an expired window starts again
    storage.clear(key)
    assert storage.get(key) == 0
    assert storage.incr("x" * 400, 60) == 1  # long keys are hashed to fit the column
    assert storage.check()


def test_database_counters_are_shared_by_two_app_processes(backend, live_server, smtp_server):
    """The embedded default: no Redis, the limit holds across gunicorn workers and the
    threaded server on the same database."""
    env = {**smtp_server.env(), "LOGIN_SITE_RATE_LIMIT_JWKS": "4/hour"}
    live_server.app.config["RATE_LIMIT_JWKS"] = "4/hour"
    server = GunicornServer(live_server.app.config["DATABASE_URL"], extra_env=env)
    try:
        wait_ready(server)
        host = {"Host": f"127.0.0.1:{live_server.port}"}
        targets = [
            (live_server.api_url("t1", JWKS), {}),
            (f"http://127.0.0.1:{server.port}{JWKS}", host),
        ]
        statuses = []
        for i in range(6):
            url, headers = targets[i % 2]
            statuses.append(requests.get(url, headers=headers, timeout=30).status_code)
        assert statuses == [200, 200, 200, 200, 429, 429]
    finally:
        server.stop()


@pytest.fixture
def redis_app(request, tmp_path, sqlite_template):
    """The app with Redis storage under a key prefix of its own (deleted afterwards)."""
    prefix = f"login_site_test_{uuid.uuid4().hex[:12]}"
    url = getattr(request, "param", REDIS_URL)
    shutil.copy(sqlite_template, tmp_path / "test.db")
    app = make_app(
        f"sqlite:///{tmp_path / 'test.db'}",
        tmp_path,
        REDIS_URL=url,
        RATE_LIMIT_KEY_PREFIX=prefix,
    )
    yield app, prefix
    app.extensions["login_site.engine"].dispose()
    if url == REDIS_URL:
        connection = redis.Redis.from_url(REDIS_URL)
        keys = list(connection.scan_iter(f"*{prefix}*"))
        if keys:
            connection.delete(*keys)


def test_redis_storage_is_used_when_configured(redis_app):
    app, prefix = redis_app
    app.config["RATE_LIMIT_JWKS"] = "2/hour"
    client = app.test_client()
    assert [get(client, JWKS).status_code for _ in range(3)] == [200, 200, 429]
    assert count(app, RateCounter) == 0
    keys = list(redis.Redis.from_url(REDIS_URL).scan_iter(f"*{prefix}*"))
    assert keys and all(b"jwks" in key for key in keys)


def test_suspicious_ip_counters_use_redis_when_configured(redis_app):
    app, prefix = redis_app
    app.config["SUSPICIOUS_IP_LIMIT"] = "2/hour"
    client = app.test_client()
    for i in range(2):
        assert password_grant(client, f"user{i}@example.test", WRONG).status_code == 400
    assert password_grant(client, "user9@example.test", WRONG).status_code == 429
    keys = list(redis.Redis.from_url(REDIS_URL).scan_iter(f"*{prefix}*suspicious_ip*"))
    assert len(keys) == 1


def redis_commands(prefix: str, action) -> list[str]:
    """The commands Redis received about keys under ``prefix`` while ``action`` ran
    (MONITOR on a connection of its own; an ECHO marks the end)."""
    seen: list[str] = []
    done = f"{prefix}:done"
    ready = threading.Event()

    def watch():
        with redis.Redis.from_url(REDIS_URL).monitor() as monitor:
            ready.set()
            for record in monitor.listen():
                command = record["command"]
                if done in command:
                    return
                if prefix in command and record.get("client_type") != "lua":  # not a script's
                    seen.append(command)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert ready.wait(10)
    time.sleep(0.2)  # MONITOR is active once the server has answered it
    action()
    redis.Redis.from_url(REDIS_URL).echo(done)
    watcher.join(10)
    return seen


def test_a_limited_request_costs_one_redis_round_trip(redis_app):
    """The count and the window's end come back from one script; the X-RateLimit-*
    headers are made from them, without reading the counter again."""
    app, prefix = redis_app
    app.config["RATE_LIMIT_JWKS"] = "5/hour"
    client = app.test_client()
    assert get(client, JWKS).status_code == 200
    responses = []
    commands = redis_commands(prefix, lambda: responses.append(get(client, JWKS)))
    assert len(commands) == 1 and commands[0].upper().startswith("EVALSHA"), commands
    assert_limit_headers(responses[0], 5, 3)
    assert get(client, "/.well-known/openid-configuration").status_code == 200
    assert redis_commands(prefix, lambda: get(client, "/authorize")) == []


def test_the_counter_survives_a_script_flush_and_a_dropped_connection(redis_app, caplog):
    """Each thread counts on a connection of its own (ratelimit.CountingRedisStorage): a
    flushed script is sent again and a connection Redis closed is replaced, without falling
    back to memory."""
    app, prefix = redis_app
    caplog.set_level(logging.WARNING)
    app.config["RATE_LIMIT_JWKS"] = "4/hour"
    client = app.test_client()
    assert get(client, JWKS).status_code == 200
    admin = redis.Redis.from_url(REDIS_URL)
    admin.script_flush()
    assert_limit_headers(get(client, JWKS), 4, 2)
    storage = app.extensions[ratelimit.COUNTERS].primary.storage
    host, port = storage._own.connection._sock.getsockname()[:2]
    assert admin.client_kill(f"{host}:{port}")
    assert_limit_headers(get(client, JWKS), 4, 1)
    assert storage._own.connection._sock.getsockname()[1] != port  # a new connection
    assert get(client, JWKS).status_code == 200
    assert get(client, JWKS).status_code == 429  # every hit was counted in Redis
    assert not [r for r in caplog.records if r.name == "login_site.ratelimit"]


def _closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


@pytest.mark.parametrize("redis_app", [_closed_port()], indirect=True)
def test_redis_down_falls_back_to_memory_with_a_warning(redis_app, caplog):
    app, _ = redis_app
    caplog.set_level(logging.WARNING)
    app.config["RATE_LIMIT_JWKS"] = "2/hour"
    app.config["SUSPICIOUS_IP_LIMIT"] = "2/hour"
    client = app.test_client()
    assert [get(client, JWKS).status_code for _ in range(3)] == [200, 200, 429]
    assert any(
        r.name == "login_site.ratelimit"
        and r.levelno == logging.WARNING
        and "unreachable" in r.message
        for r in caplog.records
    )
    # Suspicious-IP counting goes on in memory as well, and says so.
    for i in range(2):
        assert password_grant(client, f"user{i}@example.test", WRONG).status_code == 400
    assert password_grant(client, "user9@example.test", WRONG).status_code == 429
    assert any(
        r.name == "login_site.ratelimit" and r.levelno == logging.WARNING for r in caplog.records
    )
    assert password_grant(client, *ALICE, ip="192.0.2.60").status_code == 200


# --- keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address,key",
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("not-an-ip", "not-an-ip"),
    ],
)
def test_ip_key(address, key):
    assert ratelimit.ip_key(address) == key


def test_every_endpoint_class_has_a_default_limit(app):
    for cls in ratelimit.ENDPOINT_CLASSES:
        assert app.config[cls.setting], cls.name


def test_the_management_api_is_limited_per_token_in_its_own_error_shape(app, client):
    """MA-15: a flood gets 429 in the Management API's shape with the limit headers."""
    app.config["RATE_LIMIT_MANAGEMENT"] = "2/hour"
    headers = {"Authorization": "Bearer some-token"}
    for _ in range(2):
        assert get(client, "/api/v2/clients", headers=headers).status_code == 401
    limited = get(client, "/api/v2/clients", headers=headers)
    assert limited.status_code == 429
    assert limited.json == {
        "statusCode": 429,
        "error": "Too Many Requests",
        "message": "Too many requests. Check the X-RateLimit-* headers.",
        "errorCode": "too_many_requests",
    }
    assert_limit_headers(limited, 2, 0)
    other = get(client, "/api/v2/clients", headers={"Authorization": "Bearer other-token"})
    assert other.status_code == 401
    assert get(client, "/api/v2/openapi.json").status_code == 200  # the document is free
