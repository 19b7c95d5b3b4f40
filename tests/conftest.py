"""Fixtures in flaskr's style: ``app`` over a fresh database, ``client`` per tenant host,
and action helpers. Data-layer tests take ``backend`` and run on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import shutil
import threading
import uuid
from pathlib import Path
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from login_site import migrate
from login_site import tenant_config
from login_site.app import create_app
from login_site.db import Base
from tests.fixtures.smtp import mailbox  # noqa: F401 - fixture
from tests.fixtures.smtp import smtp_server  # noqa: F401 - fixture

# One Chromium for the whole run: a second sync Playwright cannot start on this thread.
pytest_plugins = ["tests.e2e.browser"]

FIXTURES = Path(__file__).parent / "fixtures"
T1 = "t1.test"
T2 = "t2.test"
PG_ADMIN_URL = os.environ.get("LOGIN_SITE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
WEB_SECRET = "web-secret-0123456789abcdefghijklmnop"
ALICE = ("alice@example.test", "correct horse battery Staple1")

# Cheaper argon2 would hide slow paths; tests use the production floor.
BASE_CONFIG = {
    "TESTING": True,
    "SECRET_KEY": "test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
    "ENCRYPTION_KEYS": ["a2rcsr243xcpSqKAXjfcNwkIXY62jgVZameeneDYzVw="],
    # Every test client is 127.0.0.1: races post 20 logins at once. Rate-limit tests set
    # their own limits (tests/security/test_ratelimit.py).
    "RATE_LIMIT_LOGIN": "100/second",
    "RATE_LIMIT_MANAGEMENT": "1000/second",  # API tests and the schemathesis run use one token
}


def seed(app, live_hosts: tuple[str, ...] = (), port: int | None = None) -> None:
    """Import the test tenants. With a live server ``port``, T1 also answers on
    ``127.0.0.1:port`` and T2 on ``localhost:port`` (for clients that cannot resolve
    ``*.localhost``, which Chromium can)."""
    keywords = {
        "T1_HOSTS": [T1, *[f"t1.{h}" for h in live_hosts]]
        + ([f"127.0.0.1:{port}"] if port else []),
        "T2_HOSTS": [T2, *[f"t2.{h}" for h in live_hosts]]
        + ([f"localhost:{port}"] if port else []),
        # Nothing listens there; tests/passwordless points the sms connection at the
        # loopback Twilio server (tests/fixtures/twilio.py) per test.
        "TWILIO_API_BASE": "http://127.0.0.1:9",
    }
    for name in ("t1.yaml", "t2.yaml"):
        tenant_config.import_text(app, (FIXTURES / name).read_text(), keywords=keywords)


def make_app(database_url: str, instance: Path, **extra):
    return create_app(
        {**BASE_CONFIG, "DATABASE_URL": database_url, "INSTANCE_PATH": str(instance), **extra}
    )


# --- databases ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """A migrated and seeded SQLite file, copied for each test (migrations run once)."""
    directory = tmp_path_factory.mktemp("template")
    path = directory / "template.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    app = make_app(url, directory)
    seed(app, ("localhost",))
    app.extensions["login_site.engine"].dispose()
    return path


@pytest.fixture(scope="session")
def pg_database():
    """A private PostgreSQL database for this run, migrated once, dropped at the end."""
    name = f"login_site_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(
        PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:  # pragma: no cover - environment problem
        pytest.fail(f"PostgreSQL is required for these tests: {exc}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    migrate.upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate(app) -> None:
    engine = app.extensions["login_site.engine"]
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {tables} CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request):
    return request.param


def _app_for(backend_name, request, tmp_path):
    # Every test app sends its mail to the session's loopback SMTP server.
    smtp = request.getfixturevalue("smtp_server")
    smtp.start()  # a test that failed inside smtp_server.down() may have left it stopped
    if backend_name == "postgresql":
        url = request.getfixturevalue("pg_database")
        app = make_app(url, tmp_path, **smtp.app_config())
        _truncate(app)
        seed(app, ("localhost",))
    else:
        template = request.getfixturevalue("sqlite_template")
        shutil.copy(template, tmp_path / "test.db")
        app = make_app(f"sqlite:///{tmp_path / 'test.db'}", tmp_path, **smtp.app_config())
    return app


@pytest.fixture
def app(request, tmp_path):
    """The app on SQLite, or on the ``backend`` of the test when it takes one."""
    backend_name = (
        request.getfixturevalue("backend") if "backend" in request.fixturenames else "sqlite"
    )
    app = _app_for(backend_name, request, tmp_path)
    yield app
    app.extensions["login_site.engine"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def t1(app):
    """A browser-like client on tenant T1."""
    return app.test_client()


@pytest.fixture
def db(app):
    session = app.extensions["login_site.sessionmaker"]()
    yield session
    session.close()


def count(app, model) -> int:
    with app.extensions["login_site.sessionmaker"]() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(model))


# --- live server ----------------------------------------------------------------------------


class LiveServer:
    def __init__(self, app):
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, tenant: str = "t1", path: str = "/") -> str:
        """For the browser: ``http://t1.localhost:PORT/path``."""
        return f"http://{tenant}.localhost:{self.port}{path}"

    def api_url(self, tenant: str = "t1", path: str = "/") -> str:
        """For Python HTTP clients, which do not resolve ``*.localhost``."""
        host = {"t1": "127.0.0.1", "t2": "localhost"}[tenant]
        return f"http://{host}:{self.port}{path}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def live_server(request, tmp_path):
    """The real app served on a loopback port (threaded), tenants on ``t1.localhost:PORT``."""
    backend_name = (
        request.getfixturevalue("backend") if "backend" in request.fixturenames else "sqlite"
    )
    app = _app_for(backend_name, request, tmp_path)
    server = LiveServer(app)
    # Add the port-specific hosts for this server to both tenants.
    seed(app, ("localhost", f"localhost:{server.port}"), port=server.port)
    with server:
        yield server
    app.extensions["login_site.engine"].dispose()


class GunicornServer:
    """The app as production runs it: gunicorn with several worker processes."""

    def __init__(self, database_url: str, workers: int = 2, extra_env: dict | None = None):
        import json as _json
        import socket
        import subprocess
        import sys

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        env = {
            **os.environ,
            "LOGIN_SITE_DATABASE_URL": database_url,
            "LOGIN_SITE_SECRET_KEY": BASE_CONFIG["SECRET_KEY"],
            "LOGIN_SITE_ENCRYPTION_KEYS": _json.dumps(BASE_CONFIG["ENCRYPTION_KEYS"]),
            **(extra_env or {}),  # e.g. smtp_server.env()
        }
        self.process = subprocess.Popen(  # noqa: S603 - fixed command
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-w",
                str(workers),
                "-b",
                f"127.0.0.1:{self.port}",
                "--log-level",
                "warning",
                "wsgi:app",
            ],
            cwd=Path(__file__).resolve().parents[1],
            env=env,
        )

    def wait_ready(self, timeout: float = 30) -> None:
        import time

        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


# --- protocol helpers -----------------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)[:64]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    return verifier, challenge.decode()


def authorize_params(**overrides) -> dict:
    params = {
        "client_id": "web",
        "redirect_uri": "https://app.test/cb",
        "response_type": "code",
        "scope": "openid profile email",
        "state": "st-123",
        "nonce": "n-456",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def start_login(client, host: str = T1, **params):
    """GET /authorize and follow to the login page; returns (login page response, tx state)."""
    response = client.get(
        "/authorize?" + urlencode(authorize_params(**params)), base_url=f"http://{host}"
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    page = client.get(response.headers["Location"], base_url=f"http://{host}")
    return page, query_of(response.headers["Location"])["state"]


def submit_login(client, page, state, username, password, host: str = T1, connection="db"):
    return client.post(
        "/login",
        base_url=f"http://{host}",
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "state": state,
            "connection": connection,
            "action": "login",
            "username": username,
            "password": password,
        },
    )


def login_code(client, host: str = T1, user=ALICE, **params) -> str:
    """Full hosted login; returns the authorization code from the callback."""
    page, state = start_login(client, host, **params)
    response = submit_login(client, page, state, *user, host=host)
    assert response.status_code == 302, response.get_data(as_text=True)[:800]
    return query_of(response.headers["Location"])["code"]


def basic(client_id: str = "web", secret: str = WEB_SECRET) -> dict:
    token = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def redeem(client, code: str, host: str = T1, headers=None, **data):
    body = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": "https://app.test/cb",
        **data,
    }
    return client.post(
        "/oauth/token",
        base_url=f"http://{host}",
        data=body,
        headers=headers if headers is not None else basic(),
    )
