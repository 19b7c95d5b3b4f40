"""Single-request rows with ``wrk`` (Debian's package) and the Lua scripts in ``bench/lua``."""

from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
from pathlib import Path

from bench.fixture import BENCH_DIR
from bench.servers import pinned

LUA_DIR = BENCH_DIR / "lua"
WRK_TIMEOUT = "10s"


def run(
    url: str,
    *,
    script: str | None,
    args: tuple[str, ...] | list[str] = (),
    headers: dict[str, str] | None = None,
    connections: int,
    seconds: float,
    cpus: list[int] | None,
) -> dict:
    """One wrk run on one thread; returns the figures of ``lua/report.lua`` plus the load
    generator's CPU use (fraction of one core) and successful requests per second."""
    text = (LUA_DIR / script).read_text() if script else ""
    text += "\n" + (LUA_DIR / "report.lua").read_text()
    duration = max(1, math.ceil(seconds))  # wrk takes whole seconds
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(text)
        lua = Path(fh.name)
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", f"--timeout={WRK_TIMEOUT}"]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    argv += ["-s", str(lua), url]
    if args:
        argv += ["--", *args]
    cpu_before = cpu_of_children()
    try:
        proc = subprocess.Popen(  # noqa: S603 - our own command line
            pinned(cpus, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            out, err = proc.communicate(timeout=duration + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        # communicate() reaped the child; its CPU time is in our children's totals.
    finally:
        lua.unlink()
    line = next((x for x in out.splitlines() if x.startswith("BENCH-JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.strip()[:500]} {out[-500:]}")
    data = json.loads(line.removeprefix("BENCH-JSON "))
    seconds_run = data["duration_us"] / 1e6
    failed = data["status"]
    ok = data["requests"] - failed
    return {
        "requests": ok,
        "errors": failed + data["timeout"],
        "socket_errors": data["connect"] + data["read"] + data["write"],
        "rate": ok / seconds_run,
        "p50_ms": data["p50_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000,
        "load_cpu": (cpu_of_children() - cpu_before) / seconds_run,
    }


def cpu_of_children() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system
