"""Races on both engines through the real server: one winner, no 500 (TK-02, sign-up race)."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from login_site.models import AccessToken
from login_site.models import RefreshToken
from login_site.models import User
from tests.conftest import ALICE
from tests.conftest import WEB_SECRET
from tests.conftest import GunicornServer
from tests.conftest import count
from tests.conftest import csrf_token
from tests.conftest import query_of

PARALLEL = 20
REFRESH_PARALLEL = 10
SDK_WEB = ("sdk-web", "sdk-web-secret-0123456789abcdefghijklm")


def browser_at_login_page(server, **extra):
    session = requests.Session()
    base = server.api_url("t1")
    first = session.get(
        base + "authorize",
        allow_redirects=False,
        timeout=30,
        params={
            "client_id": "web",
            "redirect_uri": "https://app.test/cb",
            "response_type": "code",
            "scope": "openid email",
            "state": "s",
            **extra,
        },
    )
    location = first.headers["Location"]
    page = session.get(base + location.lstrip("/"), timeout=30)
    return session, csrf_token(page.text), query_of(location)["state"]


def run_together(jobs):
    barrier = threading.Barrier(len(jobs))

    def run(job):
        barrier.wait()
        return job()

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(run, jobs))


@pytest.fixture
def second_server(live_server):
    """gunicorn with two worker processes on the same database: other workers, other
    processes, sharing nothing but the database."""
    server = GunicornServer(live_server.app.config["DATABASE_URL"])
    server.wait_ready()
    yield server
    server.stop()


def worker_urls(live_server, second_server):
    # Both servers know t1 as 127.0.0.1:<first port>; send that Host to the second one.
    return [
        (live_server.api_url("t1"), {}),
        (f"http://127.0.0.1:{second_server.port}/", {"Host": f"127.0.0.1:{live_server.port}"}),
    ]


def test_code_is_redeemed_exactly_once_under_concurrency(backend, live_server, second_server):
    session, token, state = browser_at_login_page(live_server)
    base = live_server.api_url("t1")
    done = session.post(
        base + "login",
        allow_redirects=False,
        timeout=30,
        data={
            "csrf_token": token,
            "state": state,
            "connection": "db",
            "action": "login",
            "username": ALICE[0],
            "password": ALICE[1],
        },
    )
    code = query_of(done.headers["Location"])["code"]

    def redeem():
        return requests.post(
            base + "oauth/token",
            auth=("web", WEB_SECRET),
            timeout=60,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": "https://app.test/cb",
            },
        )

    answers = run_together([redeem] * PARALLEL)
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] + [400] * (PARALLEL - 1), statuses
    assert all(r.json()["error"] == "invalid_grant" for r in answers if r.status_code == 400)
    assert count(live_server.app, AccessToken) == 1


def test_parallel_signups_of_one_email_make_one_user(backend, live_server):
    base = live_server.api_url("t1")
    users_before = count(live_server.app, User)
    browsers = [browser_at_login_page(live_server, screen_hint="signup") for _ in range(PARALLEL)]

    def signup_with(browser):
        session, token, state = browser
        return lambda: session.post(
            base + "login",
            allow_redirects=False,
            timeout=120,
            data={
                "csrf_token": token,
                "state": state,
                "connection": "db",
                "action": "signup",
                "email": "race@example.test",
                "password": "Sturdy-Passw0rd",
            },
        )

    answers = run_together([signup_with(b) for b in browsers])
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [302] + [400] * (PARALLEL - 1), statuses
    assert count(live_server.app, User) == users_before + 1


def test_refresh_token_rotates_exactly_once_under_concurrency(backend, live_server, second_server):
    session, token, state = browser_at_login_page(live_server)
    base = live_server.api_url("t1")
    first = session.get(
        base + "authorize",
        allow_redirects=False,
        timeout=30,
        params={
            "client_id": "sdk-web",
            "redirect_uri": "http://127.0.0.1:8765/callback",
            "response_type": "code",
            "scope": "openid offline_access",
            "state": "s",
        },
    )
    location = first.headers["Location"]
    page = session.get(base + location.lstrip("/"), timeout=30)
    done = session.post(
        base + "login",
        allow_redirects=False,
        timeout=30,
        data={
            "csrf_token": csrf_token(page.text),
            "state": query_of(location)["state"],
            "connection": "db",
            "action": "login",
            "username": ALICE[0],
            "password": ALICE[1],
        },
    )
    code = query_of(done.headers["Location"])["code"]
    tokens = requests.post(
        base + "oauth/token",
        timeout=30,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": SDK_WEB[0],
            "client_secret": SDK_WEB[1],
            "redirect_uri": "http://127.0.0.1:8765/callback",
        },
    ).json()
    families_before = count(live_server.app, RefreshToken)

    def refresh_at(url, headers):
        return lambda: requests.post(
            url + "oauth/token",
            timeout=60,
            headers=headers,
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": SDK_WEB[0],
                "client_secret": SDK_WEB[1],
            },
        )

    workers = worker_urls(live_server, second_server)
    answers = run_together([refresh_at(*workers[i % 2]) for i in range(REFRESH_PARALLEL)])
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] + [400] * (REFRESH_PARALLEL - 1), statuses
    assert count(live_server.app, RefreshToken) == families_before + 1
