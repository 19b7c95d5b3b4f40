"""The rows of the table, the targets, and how one side is measured on one row."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from bench import wrk
from bench.fixture import Side
from bench.roundtrip import basic
from bench.servers import REPO
from bench.servers import pinned

# Targets (issue: ratios measured in the same run).
PEER_RATIO_TARGET = 1.0  # rows a-e and g: login_site / peer
RSA_FRACTION_TARGET = 0.6  # rows c, e, g: of the RSA-2048 ceiling x cores
ARGON2_FRACTION_TARGET = 0.85  # row f: of the argon2id ceiling x cores
SCALING_TARGET = 1.7  # rows c, e: 2 workers / 1 worker
LOAD_BOUND_CPU = 0.85  # a load generator above this share of its core limits the figure
HTTP_CEILING_ROWS = ("a", "b", "d")  # rows with neither a signature nor a hash
DISCOVERY_PATH = "/.well-known/openid-configuration"


@dataclass(frozen=True)
class Row:
    key: str
    title: str
    ceiling: str | None = None  # "rsa" | "argon2": the physical limit of the row

    @property
    def peer_target(self) -> float | None:
        return None if self.key == "f" else PEER_RATIO_TARGET


ROWS = {
    r.key: r
    for r in (
        Row("a", "GET /.well-known/openid-configuration"),
        Row("b", "GET /.well-known/jwks.json"),
        Row("c", "client_credentials → RS256 JWT access token", "rsa"),
        Row("d", "GET /userinfo with a user access token"),
        Row("e", "code + PKCE round trip, existing session (authorize → code → token)", "rsa"),
        Row("f", "round trip with password login (form → code → token)", "argon2"),
        Row("g", "refresh_token rotation", "rsa"),
    )
}


@dataclass(frozen=True)
class Load:
    """Same warm-up, duration and concurrency for both sides."""

    warmup: float
    duration: float
    connections: int  # wrk rows
    concurrency: int  # round-trip rows
    cpus: list[int] | None  # the load generator's cores


def run_module(module: str, args: list[str], load: Load, timeout: float) -> dict:
    argv = pinned(load.cpus, [sys.executable, "-m", module, *args])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(  # noqa: S603 - our own command line
        argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{module} failed: {proc.stderr.strip()[-1500:]}")
    return json.loads(proc.stdout)


def user_tokens(side: Side, kind: str, count: int, load: Load) -> list[str]:
    args = ["tokens", "--side", side.to_json(), "--kind", kind, "--count", str(count)]
    return run_module("bench.roundtrip", args, load, timeout=120 + count)["tokens"]


def _wrk_twice(url: str, load: Load, **kwargs) -> dict:
    """Warm-up, then the measured run, with the same script and connections."""
    common = {"connections": load.connections, "cpus": load.cpus, **kwargs}
    wrk.run(url, seconds=load.warmup, **common)
    return wrk.run(url, seconds=load.duration, **common)


def measure_floor(side: Side, load: Load) -> dict:
    """``GET /healthz``: no tenant, no database; what gunicorn, Flask and the middleware
    cost alone, the most any row can reach on this worker."""
    return _wrk_twice(f"{side.base_url}/healthz", load, script=None)


def measure_http_ceiling(base_url: str, load: Load) -> dict:
    """Row a's request and load against ``bench/hello.py``: the most gunicorn's HTTP layer
    answers on these workers, with no application behind it."""
    return _wrk_twice(f"{base_url}{DISCOVERY_PATH}", load, script=None)


def measure(row: str, side: Side, load: Load) -> dict:
    """req/s (round trips/s for e and f), p50 and p99 in ms, errors, load CPU share."""
    base = side.base_url
    if row == "a":
        return _wrk_twice(f"{base}{DISCOVERY_PATH}", load, script=None)
    if row == "b":
        return _wrk_twice(f"{base}/.well-known/jwks.json", load, script=None)
    if row == "c":
        body = urlencode(
            {
                "grant_type": "client_credentials",
                side.audience_param: side.audience,
                "scope": side.m2m_scope,
            }
        )
        headers = {"Authorization": basic(side.m2m_id, side.m2m_secret)}
        return _wrk_twice(
            f"{base}/oauth/token", load, script="post_form.lua", args=[body], headers=headers
        )
    if row == "d":
        (access,) = user_tokens(side, "access", 1, load)
        headers = {"Authorization": f"Bearer {access}"}
        return _wrk_twice(f"{base}/userinfo", load, script=None, headers=headers)
    if row in ("e", "f"):
        args = [
            "run",
            "--side",
            side.to_json(),
            "--flow",
            "session" if row == "e" else "password",
            "--concurrency",
            str(load.concurrency),
            "--warmup",
            str(load.warmup),
            "--duration",
            str(load.duration),
        ]
        return run_module("bench.roundtrip", args, load, timeout=load.warmup + load.duration + 180)
    if row == "g":
        # Each wrk run needs one live token per connection (+ 1, see lua/refresh.lua),
        # fetched just before it: the peer's in-memory adapter is an LRU of 1,000 entries,
        # so tokens left unused through the warm-up would be evicted.
        headers = {"Authorization": basic(side.client_id, side.client_secret)}
        result = {}
        with tempfile.TemporaryDirectory() as tmp:
            for seconds in (load.warmup, load.duration):
                path = Path(tmp) / "tokens"
                tokens = user_tokens(side, "refresh", load.connections + 1, load)
                path.write_text("\n".join(tokens) + "\n")
                result = wrk.run(
                    f"{base}/oauth/token",
                    script="refresh.lua",
                    args=[str(path)],
                    headers=headers,
                    connections=load.connections,
                    seconds=seconds,
                    cpus=load.cpus,
                )
        return result
    raise ValueError(f"unknown row {row}")
