"""Whole login round trips (rows e and f) and the tokens rows d and g start from.

Run as a subprocess pinned to the load generator's cores::

    python -m bench.roundtrip run --side JSON --flow session|password ...
    python -m bench.roundtrip tokens --side JSON --kind access|refresh --count N

Each prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import secrets
import sys
import time
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urljoin
from urllib.parse import urlsplit

from bench.client import Browser
from bench.client import Connection
from bench.client import HTTPError
from bench.client import password_form
from bench.fixture import ROUND_TRIP_SCOPE
from bench.fixture import Side

MAX_STEPS = 10
ROUND_TRIP_TIMEOUT_SECONDS = 30.0


class FlowError(Exception):
    pass


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(32)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def authorize(browser: Browser, side: Side, scope: str, prompt: str | None = None):
    """From ``/authorize`` to the callback, submitting the hosted page's forms on the way.
    Returns (code, verifier)."""
    verifier, challenge = pkce()
    state = secrets.token_urlsafe(12)
    params = {
        "response_type": "code",
        "client_id": side.client_id,
        "redirect_uri": side.redirect_uri,
        "scope": scope,
        "state": state,
        "nonce": secrets.token_urlsafe(12),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if prompt:
        params["prompt"] = prompt
    url = "/authorize?" + urlencode(params)
    response = await browser.request("GET", url)
    for _ in range(MAX_STEPS):
        if response.status in (302, 303):
            location = urljoin(urljoin(side.base_url, url), response.header("location") or "")
            if location.startswith(side.redirect_uri):
                query = parse_qs(urlsplit(location).query)
                if query.get("state") != [state] or "code" not in query:
                    raise FlowError(f"callback without code: {location[:200]}")
                return query["code"][0], verifier
            url = location
            response = await browser.request("GET", url)
        elif response.status == 200:
            form = password_form(response.body.decode("utf-8", "replace"))
            if form is None:
                raise FlowError(f"no form on {urlsplit(url).path}")
            fields = dict(form["fields"])
            if "password" in fields:
                fields["username"] = side.username
                fields["password"] = side.password
            url = urljoin(urljoin(side.base_url, url), form["action"])
            response = await browser.request("POST", url, form=fields)
        else:
            raise FlowError(f"{response.status} at {urlsplit(url).path}: {response.body[:200]!r}")
    raise FlowError("too many steps")


async def token(conn: Connection, side: Side, form: dict[str, str]) -> dict:
    headers = {
        "Authorization": basic(side.client_id, side.client_secret),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    response = await conn.request("POST", "/oauth/token", headers, urlencode(form).encode())
    if response.status != 200:
        raise FlowError(f"token {response.status}: {response.body[:200]!r}")
    body = json.loads(response.body)
    if "access_token" not in body:
        raise FlowError("token response without access_token")
    return body


async def redeem(conn: Connection, side: Side, code: str, verifier: str) -> dict:
    body = await token(
        conn,
        side,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": side.redirect_uri,
            "code_verifier": verifier,
        },
    )
    if "id_token" not in body:
        raise FlowError("token response without id_token")
    return body


def backchannel(side: Side) -> Connection:
    """The application's own connection to the token endpoint (no browser cookies)."""
    parts = urlsplit(side.base_url)
    return Connection(parts.hostname, parts.port)


# --- load -----------------------------------------------------------------------------------


class Window:
    """Warm-up, then the measured window; completions are counted inside it."""

    def __init__(self, warmup: float, duration: float):
        self.start = time.monotonic() + warmup
        self.end = self.start + duration
        self.latencies: list[float] = []
        self.errors = 0
        self.messages: list[str] = []
        self.cpu_start: float | None = None
        self.cpu_end: float | None = None

    async def clock(self) -> None:
        """CPU time of this process over the window: is the load generator the limit?"""
        await asyncio.sleep(max(self.start - time.monotonic(), 0))
        self.cpu_start = time.process_time()
        await asyncio.sleep(max(self.end - time.monotonic(), 0))
        self.cpu_end = time.process_time()

    def record(self, began: float, finished: float, error: str | None) -> None:
        if not self.start <= finished <= self.end:
            return
        if error is None:
            self.latencies.append(finished - began)
        else:
            self.errors += 1
            if len(self.messages) < 5:
                self.messages.append(error)


async def _worker(side: Side, flow: str, window: Window) -> None:
    app = backchannel(side)
    browser = Browser(side.base_url)
    try:
        if flow == "session":  # one login first; the round trips then reuse the session
            code, verifier = await authorize(browser, side, ROUND_TRIP_SCOPE)
            await redeem(app, side, code, verifier)
        while time.monotonic() < window.end:
            began = time.monotonic()
            error = None
            try:
                if flow == "password":
                    browser.close()
                    browser = Browser(side.base_url)
                code, verifier = await asyncio.wait_for(
                    authorize(browser, side, ROUND_TRIP_SCOPE), ROUND_TRIP_TIMEOUT_SECONDS
                )
                await asyncio.wait_for(
                    redeem(app, side, code, verifier), ROUND_TRIP_TIMEOUT_SECONDS
                )
            except (FlowError, HTTPError, TimeoutError, OSError, ValueError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                browser.close()
                app.close()
                if flow == "session":  # start over with a fresh session
                    browser = Browser(side.base_url)
                    try:
                        code, verifier = await authorize(browser, side, ROUND_TRIP_SCOPE)
                        await redeem(app, side, code, verifier)
                    except (FlowError, HTTPError, OSError, ValueError):
                        await asyncio.sleep(0.05)
            window.record(began, time.monotonic(), error)
    finally:
        browser.close()
        app.close()


async def run_load(side: Side, flow: str, concurrency: int, warmup: float, duration: float):
    window = Window(warmup, duration)
    await asyncio.gather(window.clock(), *(_worker(side, flow, window) for _ in range(concurrency)))
    latencies = sorted(window.latencies)

    def pct(p: float) -> float | None:
        if not latencies:
            return None
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000

    cpu = (window.cpu_end - window.cpu_start) / duration
    return {
        "requests": len(latencies),
        "errors": window.errors,
        "error_messages": window.messages,
        "rate": len(latencies) / duration,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "load_cpu": cpu,
    }


# --- tokens for rows d and g ------------------------------------------------------------------


async def user_tokens(side: Side, kind: str, count: int) -> list[str]:
    """``access``: opaque user access tokens for /userinfo; ``refresh``: refresh tokens."""
    scope = ROUND_TRIP_SCOPE + (" offline_access" if kind == "refresh" else "")
    prompt = side.offline_prompt if kind == "refresh" else None
    browser, app = Browser(side.base_url), backchannel(side)
    out = []
    try:
        for _ in range(count):
            code, verifier = await authorize(browser, side, scope, prompt)
            body = await redeem(app, side, code, verifier)
            value = body.get("refresh_token" if kind == "refresh" else "access_token")
            if not value:
                raise FlowError(f"no {kind} token in the token response")
            out.append(value)
    finally:
        browser.close()
        app.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.roundtrip")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--side", required=True)
    run.add_argument("--flow", choices=("session", "password"), required=True)
    run.add_argument("--concurrency", type=int, default=8)
    run.add_argument("--warmup", type=float, default=2.0)
    run.add_argument("--duration", type=float, default=10.0)
    tokens = sub.add_parser("tokens")
    tokens.add_argument("--side", required=True)
    tokens.add_argument("--kind", choices=("access", "refresh"), required=True)
    tokens.add_argument("--count", type=int, default=1)
    args = parser.parse_args(argv)
    side = Side.from_json(args.side)
    if args.command == "run":
        result = asyncio.run(
            run_load(side, args.flow, args.concurrency, args.warmup, args.duration)
        )
    else:
        result = {"tokens": asyncio.run(user_tokens(side, args.kind, args.count))}
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
