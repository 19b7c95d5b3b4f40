"""The servers under load, each started on loopback and stopped by its own process group:
login_site under gunicorn (SQLite or PostgreSQL) and the peer under Node."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.fernet import Fernet

from bench.fixture import BENCH_DIR
from bench.fixture import TENANT_FILE
from bench.fixture import peer_config
from login_site.config import DEFAULTS

REPO = BENCH_DIR.parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cpus: list[int] | None, argv: list[str]) -> list[str]:
    if not cpus:
        return argv
    return ["taskset", "-c", ",".join(map(str, cpus)), *argv]


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        out += [int(p) for p in task.read_text().split()]
    return out


def wait_http(url: str, host: str, deadline: float, server: Process) -> None:
    request = urllib.request.Request(url, headers={"Host": host})  # noqa: S310 - http://127.0.0.1
    last = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"server exited with {server.proc.returncode}: {' '.join(server.proc.args)}\n"
                + server.log_tail()
            )
        try:
            with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last = str(exc)
        time.sleep(0.1)
    raise RuntimeError(f"no answer from {url} ({last})\n" + server.log_tail())


class Process:
    """A server in its own session, so that stopping it reaches all its processes."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path):
        self.log_path = log
        self.log = log.open("ab")
        self.proc = subprocess.Popen(  # noqa: S603 - our own command line
            argv,
            env=env,
            cwd=cwd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


# --- databases --------------------------------------------------------------------------------


@contextmanager
def postgresql_database() -> Iterator[str]:
    """A database of our own on the local server, dropped afterwards."""
    import psycopg

    name = f"login_site_bench_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlite_url(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'login_site.db'}"


# --- login_site -------------------------------------------------------------------------------


UNREACHABLE_LIMIT = "1000000/second"


def unreachable_rate_limits() -> dict[str, str]:
    """login_site's rate limits count per client IP, and all the load comes from 127.0.0.1:
    every limit goes far above what the bench can send, so the limiter's cost is measured
    but it never refuses. The classes are read from login_site's defaults."""
    return {
        f"LOGIN_SITE_{key}": UNREACHABLE_LIMIT
        for key, value in DEFAULTS.items()
        if key.startswith("RATE_LIMIT_") and isinstance(value, str) and "/" in value
    }


class LoginSite:
    """One database: ``login-site db upgrade`` and ``login-site import bench/tenant.yaml``
    with a host per port, then any number of ``gunicorn -w N wsgi:app`` from the
    repository root, as production runs it."""

    def __init__(self, database_url: str, ports: list[int], workdir: Path, *, redis: bool):
        self.database_url, self.ports, self.workdir = database_url, ports, workdir
        self.env = {
            **os.environ,
            "LOGIN_SITE_DATABASE_URL": database_url,
            "LOGIN_SITE_SECRET_KEY": secrets.token_urlsafe(48),
            "LOGIN_SITE_ENCRYPTION_KEYS": json.dumps([Fernet.generate_key().decode()]),
        }
        if redis:
            self.env["LOGIN_SITE_REDIS_URL"] = REDIS_URL
        self.env.update(unreachable_rate_limits())
        self.servers: list[Gunicorn] = []

    def prepare(self) -> None:
        keywords = self.workdir / f"keywords-{self.ports[0]}.json"
        keywords.write_text(json.dumps({"BENCH_HOSTS": [f"127.0.0.1:{p}" for p in self.ports]}))
        # The ``login-site`` console script, run by this interpreter from the repository root.
        cli = [sys.executable, "-c", "from login_site.cli import main; main()"]
        for argv in (
            [*cli, "db", "upgrade"],
            [*cli, "import", str(TENANT_FILE), "--keywords", str(keywords)],
        ):
            subprocess.run(  # noqa: S603 - our own command line
                argv, env=self.env, cwd=REPO, check=True, capture_output=True, timeout=120
            )

    def start(self, port: int, workers: int, cpus: list[int] | None) -> Gunicorn:
        server = Gunicorn(self.env, self.workdir, port, workers, cpus)
        self.servers.append(server)
        return server

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


class Gunicorn:
    """``gunicorn -w N APP`` from the repository root, so that it reads ``gunicorn.conf.py``
    there: login_site's ``wsgi:app``, or ``bench.hello:app`` for the HTTP server ceiling."""

    def __init__(
        self,
        env: dict[str, str],
        workdir: Path,
        port: int,
        workers: int,
        cpus: list[int] | None,
        *,
        app: str = "wsgi:app",
    ):
        self.port, self.workers, self.cpus = port, workers, cpus
        self.host = f"127.0.0.1:{port}"
        argv = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", self.host, app]
        log = workdir / f"gunicorn-{port}.log"
        self.server: Process | None = Process(pinned(cpus, argv), env, REPO, log)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        # bench.hello:app answers every path with its document, so one readiness URL serves both.
        url = f"http://{self.host}/.well-known/openid-configuration"
        wait_http(url, self.host, deadline, self.server)
        while len(self.worker_pids()) < workers and time.monotonic() < deadline:
            time.sleep(0.1)

    def worker_pids(self) -> list[int]:
        return children(self.server.pid) if self.server else []

    def worker_rss_mib(self) -> list[float]:
        return [r for r in (rss_mib(p) for p in self.worker_pids()) if r is not None]

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def hello(port: int, workers: int, cpus: list[int] | None, workdir: Path) -> Gunicorn:
    """The HTTP server ceiling (``bench/hello.py``) under the same gunicorn as login_site."""
    return Gunicorn(dict(os.environ), workdir, port, workers, cpus, app="bench.hello:app")


# --- the peer ---------------------------------------------------------------------------------


class Peer:
    """``node bench/peer.mjs``: one process."""

    def __init__(self, port: int, workdir: Path):
        self.port, self.workdir = port, workdir
        self.host = f"127.0.0.1:{port}"
        self.server: Process | None = None

    def start(self, cpus: list[int] | None) -> None:
        config = peer_config(self.port, secrets.token_urlsafe(32))
        env = {**os.environ, "PEER_CONFIG": json.dumps(config), "NODE_ENV": "production"}
        argv = pinned(cpus, ["node", str(BENCH_DIR / "peer.mjs")])
        self.server = Process(argv, env, BENCH_DIR, self.workdir / "peer.log")
        wait_http(
            f"http://{self.host}/.well-known/openid-configuration",
            self.host,
            time.monotonic() + START_TIMEOUT_SECONDS,
            self.server,
        )

    def rss_mib(self) -> float | None:
        if self.server is None:
            return None
        # taskset execs node, so the process we started is node itself.
        return rss_mib(self.server.pid)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


@contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="login_site_bench_") as path:
        yield Path(path)
