"""``python -m bench.inprocess``: where a row's time goes, without HTTP or a second process.

Runs each row's requests through Flask's test client against a throwaway database
(PostgreSQL with Redis, or SQLite) holding bench/tenant.yaml, and prints per request the
CPU time of this process and the SQL statements it sent, by kind. Statement counts are
exact; CPU times include the test client and are noisy on a shared machine, so compare
runs made back to back. ``--profile ROW`` adds cProfile's view of that row: the
login_site functions by inclusive time. Not a benchmark: ``python -m bench`` is.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import hashlib
import json
import os
import pstats
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urljoin
from urllib.parse import urlsplit

import psycopg
from cryptography.fernet import Fernet
from sqlalchemy import event

from bench.client import password_form
from bench.fixture import TENANT_FILE
from bench.servers import PG_ADMIN_URL
from bench.servers import REDIS_URL
from bench.servers import unreachable_rate_limits

HOST = "bench.inprocess"
BASE = f"http://{HOST}"
CALLBACK = "https://app.bench.test/callback"
API = "https://api.bench.test/"
USER = ("bench.user@example.test", "Bench-user-password-1")
WEB = ("bench-web", "bench-web-secret-0123456789abcdefghijklmn")
M2M = ("bench-m2m", "bench-m2m-secret-0123456789abcdefghijklmn")
ROWS = "habcdefg"  # h: GET /healthz, the floor; a-g as in python -m bench
ROUND_TRIP_ROWS = "f"  # argon2 per request: fewer of them


def basic(client_id: str, secret: str) -> dict[str, str]:
    value = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {value}"}


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(32)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Rows:
    """The requests of each row, on one app; ``browser`` keeps a login session."""

    def __init__(self, app):
        self.app = app
        self.client = app.test_client()
        self.browser = app.test_client()
        self.tokens = self.code_round_trip(self.browser, "openid profile email offline_access")
        self.refresh_token = self.tokens["refresh_token"]

    def authorize(self, browser, scope: str) -> tuple[str, str]:
        """/authorize to the callback, through the login form when there is no session."""
        verifier, challenge = pkce()
        params = {
            "client_id": WEB[0],
            "response_type": "code",
            "redirect_uri": CALLBACK,
            "scope": scope,
            "state": "s",
            "nonce": "n",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        if "offline_access" in scope:
            params["audience"] = API
        url = f"{BASE}/authorize?{urlencode(params)}"
        response = browser.get(url)
        for _ in range(10):
            if response.status_code in (302, 303):
                url = urljoin(url, response.headers["Location"])
                if url.startswith(CALLBACK):
                    return parse_qs(urlsplit(url).query)["code"][0], verifier
                response = browser.get(url)
            else:
                form = password_form(response.get_data(as_text=True))
                if form is None:
                    raise RuntimeError(f"{response.status_code} without a form at {url}")
                fields = dict(form["fields"])
                if "password" in fields:
                    fields["username"], fields["password"] = USER
                url = urljoin(url, form["action"])
                response = browser.post(url, data=fields)
        raise RuntimeError("too many steps")

    def code_round_trip(self, browser, scope: str = "openid profile email") -> dict:
        code, verifier = self.authorize(browser, scope)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "code_verifier": verifier,
        }
        return self.ok(browser.post(f"{BASE}/oauth/token", data=form, headers=basic(*WEB)))

    @staticmethod
    def ok(response) -> dict:
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {response.get_data(as_text=True)[:300]}")
        return response.get_json(silent=True) or {}

    def h(self):
        self.ok(self.client.get(f"{BASE}/healthz"))

    def a(self):
        self.ok(self.client.get(f"{BASE}/.well-known/openid-configuration"))

    def b(self):
        self.ok(self.client.get(f"{BASE}/.well-known/jwks.json"))

    def c(self):
        form = {"grant_type": "client_credentials", "audience": API}
        self.ok(self.client.post(f"{BASE}/oauth/token", data=form, headers=basic(*M2M)))

    def d(self):
        bearer = {"Authorization": f"Bearer {self.tokens['access_token']}"}
        self.ok(self.client.get(f"{BASE}/userinfo", headers=bearer))

    def e(self):
        self.code_round_trip(self.browser)

    def f(self):
        self.code_round_trip(self.app.test_client())

    def g(self):
        form = {"grant_type": "refresh_token", "refresh_token": self.refresh_token}
        body = self.ok(self.client.post(f"{BASE}/oauth/token", data=form, headers=basic(*WEB)))
        self.refresh_token = body["refresh_token"]


def app_on(database_url: str, workdir: Path, redis: bool):
    """login_site on a new database holding the bench tenant, as ``login-site`` sets it up."""
    env = {
        "LOGIN_SITE_DATABASE_URL": database_url,
        "LOGIN_SITE_SECRET_KEY": secrets.token_urlsafe(48),
        "LOGIN_SITE_ENCRYPTION_KEYS": json.dumps([Fernet.generate_key().decode()]),
        "LOGIN_SITE_EVENT_LOG": "off",
        **unreachable_rate_limits(),
    }
    if redis:
        env["LOGIN_SITE_REDIS_URL"] = REDIS_URL
    os.environ.update(env)
    tenant = workdir / "tenant.yaml"
    tenant.write_text(TENANT_FILE.read_text().replace("@@BENCH_HOSTS@@", f'["{HOST}"]'))
    cli = [sys.executable, "-c", "from login_site.cli import main; main()"]  # login-site
    for args in (["db", "upgrade"], ["import", str(tenant)]):
        subprocess.run(  # noqa: S603 - our own command line
            [*cli, *args], check=True, capture_output=True, timeout=120
        )
    from login_site.app import create_app

    return create_app({"INSTANCE_PATH": str(workdir)})


def measure(rows: Rows, name: str, n: int, statements: Counter, profile: bool) -> None:
    run: Callable[[], None] = getattr(rows, name)
    count = max(n // 20, 5) if name in ROUND_TRIP_ROWS else n
    for _ in range(min(count, 20)):
        run()  # warm-up: caches, prepared statements, pools
    statements.clear()
    profiler = cProfile.Profile() if profile else None
    started = time.process_time()
    if profiler:
        profiler.enable()
    for _ in range(count):
        run()
    if profiler:
        profiler.disable()
    cpu_us = (time.process_time() - started) / count * 1e6
    kinds = {k: round(v / count, 2) for k, v in sorted(statements.items()) if k != "all"}
    print(f"| {name} | {cpu_us:,.0f} | {statements['all'] / count:.1f} | {kinds} |")
    if profiler:
        print_ours(pstats.Stats(profiler), count)


def print_ours(stats: pstats.Stats, count: int, most: int = 30) -> None:
    """login_site's functions by inclusive time per request (cProfile's, so inflated)."""
    root = str(Path(__file__).resolve().parent.parent / "login_site")
    ours = [
        (cumulative, calls, f"{Path(file).relative_to(root.rsplit('/', 1)[0])}:{line}({fn})")
        for (file, line, fn), (_, calls, _, cumulative, _) in stats.stats.items()
        if file.startswith(root)
    ]
    print("\n| ms per request (profiled) | calls per request | function |\n|--:|--:|---|")
    for cumulative, calls, where in sorted(ours, reverse=True)[:most]:
        print(f"| {cumulative / count * 1e3:.3f} | {calls / count:g} | `{where}` |")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__)
    parser.add_argument("--engine", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--rows", default=ROWS, help=f"rows to run, among {ROWS!r}")
    parser.add_argument("-n", type=int, default=300, help="requests per row (f: n/20)")
    parser.add_argument("--profile", default="", help="rows to profile with cProfile")
    args = parser.parse_args(argv)
    name = f"bench_inprocess_{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory(prefix="bench-inprocess-") as tmp:
        if args.engine == "postgresql":
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            admin = urlsplit(PG_ADMIN_URL)
            url = f"postgresql+psycopg://{admin.netloc}/{name}"
        else:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        try:
            app = app_on(url, Path(tmp), redis=args.engine == "postgresql")
            statements: Counter = Counter()

            def count(_conn, _cursor, statement, *_args) -> None:
                statements["all"] += 1
                statements[statement.split(None, 1)[0].upper()] += 1

            engine = app.extensions["login_site.engine"]
            event.listen(engine, "before_cursor_execute", count)
            rows = Rows(app)
            print(f"{args.engine}, {args.n} requests per row (f: {max(args.n // 20, 5)})\n")
            print("| row | CPU µs per request | statements | by kind |\n|---|--:|--:|---|")
            for row in args.rows:
                measure(rows, row, args.n, statements, row in args.profile)
            engine.dispose()
        finally:
            if args.engine == "postgresql":
                with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
