"""The markdown table, with ratios and whether each target is met."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

from bench.fixture import BENCH_DIR
from bench.rows import ARGON2_FRACTION_TARGET
from bench.rows import HTTP_CEILING_ROWS
from bench.rows import LOAD_BOUND_CPU
from bench.rows import ROWS
from bench.rows import RSA_FRACTION_TARGET
from bench.rows import SCALING_TARGET

LOAD_BOUND = "†"


def _cmd(argv: list[str], *, strict: bool = False) -> str | None:
    """First line of a command's output; ``None`` if it is absent (or fails, if strict)."""
    if not shutil.which(argv[0]):
        return None
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired):
        return None
    if strict and proc.returncode != 0:
        return None
    text = (proc.stdout or proc.stderr).strip()
    return text.splitlines()[0] if text else ""


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return match.group(1).strip() if match else "unknown"


def _pg_version() -> str:
    try:
        import psycopg

        from bench.servers import PG_ADMIN_URL

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as conn:
            return conn.execute("SHOW server_version").fetchone()[0]
    except Exception as exc:  # a description of the machine, not a check
        return f"unavailable ({type(exc).__name__})"


def machine() -> dict:
    repo = str(BENCH_DIR.parent)
    commit = _cmd(["git", "-C", repo, "rev-parse", "--short", "HEAD"], strict=True)
    dirty = commit and _cmd(
        ["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"], strict=True
    )
    peer_manifest = BENCH_DIR / "node_modules" / "oidc-provider" / "package.json"
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": _cmd(["node", "--version"]) or "absent",
        "oidc_provider": json.loads(peer_manifest.read_text())["version"]
        if peer_manifest.exists()
        else "absent",
        "wrk": (_cmd(["wrk", "--version"]) or "wrk absent").split(" [")[0],
        "postgresql": _pg_version(),
        "login_site_commit": (commit or "(no git checkout)")
        + (" + uncommitted changes" if dirty else ""),
    }


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    if digits == 0 and abs(value) >= 10:
        return f"{value:,.0f}"
    return f"{value:.{max(digits, 1)}f}"


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def _rate(result: dict | None) -> str:
    if not result:
        return "–"
    mark = LOAD_BOUND if (result.get("load_cpu") or 0) > LOAD_BOUND_CPU else ""
    return _num(result["rate"]) + mark


def _load(results: dict, when: str) -> str:
    value = (results.get("load_average") or {}).get(when)
    return "–" if value is None else f"{value:.2f}"


def _get(result: dict | None, key: str) -> float | None:
    return result.get(key) if result else None


def _ratio(a: float | None, b: float | None) -> float | None:
    if not a or not b:
        return None
    return a / b


def _met(value: float | None, target: float | None) -> str:
    if value is None or target is None:
        return ""
    return "met" if value >= target else "**missed**"


def render(results: dict) -> str:
    m, s = results["machine"], results["settings"]
    cores = s["workers"]
    lines = [
        f"# login_site vs oidc-provider — {results['started']}",
        "",
        f"Machine: {m['nproc']} × {m['cpu_model']}, Linux {m['kernel']}; Python {m['python']}, "
        f"Node {m['node']}, oidc-provider {m['oidc_provider']}, {m['wrk']}, "
        f"PostgreSQL {m['postgresql']}; login_site {m['login_site_commit']}.",
        "",
        f"Servers pinned to cores {s['server_cpus']} (gunicorn -w {cores}; the peer is one "
        f"Node process), load generators to {s['load_cpus'] or 'the same cores'}. "
        f"Per row and side: {s['warmup']:g} s warm-up, {s['duration']:g} s measured; "
        f"wrk -t1 -c{s['connections']}, {s['concurrency']} concurrent round trips. "
        "Main rows on PostgreSQL (+ Redis URL set). "
        f"Load average (1 min) {_load(results, 'start')} at the start, "
        f"{_load(results, 'end')} at the end.",
        "",
        "| row | what | login_site req/s | p50 ms | p99 ms | peer req/s | p50 ms | p99 ms "
        "| login_site/peer | target | |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    notes = []
    for key in results["rows"]:
        row = ROWS[key]
        pair = results["main"].get(key, {})
        ours, theirs = pair.get("login_site"), pair.get("peer")
        ratio = _ratio(_get(ours, "rate"), _get(theirs, "rate"))
        target = row.peer_target
        shown_target = f"≥ {target:.1f}×" if target else "(ceiling)"
        lines.append(
            f"| {key} | {row.title} | {_rate(ours)} | {_ms(_get(ours, 'p50_ms'))} "
            f"| {_ms(_get(ours, 'p99_ms'))} | {_rate(theirs)} | {_ms(_get(theirs, 'p50_ms'))} "
            f"| {_ms(_get(theirs, 'p99_ms'))} | {_num(ratio, 2)}× "
            f"| {shown_target} | {_met(ratio, target)} |"
        )
        for name, result in (("login_site", ours), ("peer", theirs)):
            if result and (result.get("errors") or result.get("socket_errors")):
                notes.append(
                    f"row {key} {name}: {result.get('errors', 0)} failed, "
                    f"{result.get('socket_errors', 0)} socket errors"
                    + (f" ({result['error_messages'][0]})" if result.get("error_messages") else "")
                )
    floor = results.get("floor")
    if floor:
        lines += [
            "",
            f"Stack floor: login_site `GET /healthz` (no tenant, no database: gunicorn, Flask "
            f"and the middleware alone) {_rate(floor)} req/s, p50 {_ms(floor['p50_ms'])} ms, "
            f"p99 {_ms(floor['p99_ms'])} ms: the most a row can reach on this worker.",
        ]
    lines += [
        "",
        "Rows e and f count whole round trips per second: e is 2 HTTP requests on both sides; "
        "f is 4 on login_site (authorize, login page, login POST, token) and 5 on the peer "
        "(authorize, interaction page, interaction POST, resume, token).",
    ]

    ceilings = results.get("ceilings", {})
    measured = results.get("ceilings_measured", {})
    rsa, argon2, http = ceilings.get("rsa"), ceilings.get("argon2"), ceilings.get("http")
    http_runs = (results.get("http_ceiling") or {}).get("runs") or []

    def each(kind: str) -> str:
        return " and ".join(_num(v) for v in measured.get(kind, []))

    lines += [
        "",
        "## Physical limits (same run; mean of the start and the end)",
        "",
        f"- RSA-2048 signatures/s with `cryptography` on one server core: **{_num(rsa)}** "
        f"({each('rsa')}; × {cores} = {_num((rsa or 0) * cores)})",
        f"- argon2id verifications/s at login_site's parameters on one server core: "
        f"**{_num(argon2)}** ({each('argon2')}; × {cores} = {_num((argon2 or 0) * cores)})",
    ]
    if http_runs:
        body = results["http_ceiling"]["body_bytes"]
        lines.append(
            f"- HTTP server ceiling, req/s: **{_num(http)}** "
            f"({' and '.join(_rate(r) for r in http_runs)}; p99 "
            f"{' and '.join(_ms(r['p99_ms']) for r in http_runs)} ms). `bench/hello.py`, a bare "
            f"WSGI app answering a fixed {_num(body)}-byte JSON document, under the same gunicorn "
            f"(`gunicorn.conf.py`, -w {cores}, same cores) and the same load as row a: the most "
            "any row can reach on gunicorn's HTTP layer, with no Flask and no application."
        )
        for when, result in zip(("start", "end"), http_runs, strict=False):
            if result.get("errors") or result.get("socket_errors"):
                notes.append(
                    f"HTTP server ceiling ({when}): {result.get('errors', 0)} failed, "
                    f"{result.get('socket_errors', 0)} socket errors"
                )
    crypto_rows = [key for key in results["rows"] if ROWS[key].ceiling]
    if crypto_rows:
        lines += [
            "",
            "| row | login_site /s | ceiling × cores | fraction | target | | peer fraction |",
            "|---|--:|--:|--:|--:|---|--:|",
        ]
    for key in crypto_rows:
        row = ROWS[key]
        limit = (ceilings.get(row.ceiling) or 0) * cores
        pair = results["main"].get(key, {})
        ours, theirs = pair.get("login_site"), pair.get("peer")
        fraction = _ratio(_get(ours, "rate"), limit)
        peer_fraction = _ratio(_get(theirs, "rate"), limit)
        target = RSA_FRACTION_TARGET if row.ceiling == "rsa" else ARGON2_FRACTION_TARGET
        lines.append(
            f"| {key} ({row.ceiling}) | {_rate(ours)} | {_num(limit)} | {_num(fraction, 3)} "
            f"| ≥ {target} | {_met(fraction, target)} | {_num(peer_fraction, 3)} |"
        )

    http_rows = [key for key in results["rows"] if key in HTTP_CEILING_ROWS]
    if http and http_rows:
        lines += [
            "",
            "Rows without a signature or a hash against the HTTP server ceiling (no target; the "
            "peer runs on Node's HTTP server, so its fraction can exceed 1):",
            "",
            "| row | login_site req/s | HTTP ceiling req/s | fraction | peer req/s "
            "| peer fraction |",
            "|---|--:|--:|--:|--:|--:|",
        ]
        for key in http_rows:
            pair = results["main"].get(key, {})
            ours, theirs = pair.get("login_site"), pair.get("peer")
            lines.append(
                f"| {key} | {_rate(ours)} | {_num(http)} "
                f"| {_num(_ratio(_get(ours, 'rate'), http), 3)} | {_rate(theirs)} "
                f"| {_num(_ratio(_get(theirs, 'rate'), http), 3)} |"
            )

    if "f" in results["rows"]:
        lines += [
            "",
            "The peer verifies with @node-rs/argon2 (Rust) at the same parameters, which can be "
            "faster per hash than argon2-cffi: its fraction of login_site's ceiling may exceed 1.",
        ]

    scaling = results.get("scaling") or {}
    if scaling.get("rows"):
        shared = (
            " (2 workers share both cores with the load generator)"
            if scaling.get("shared_cores")
            else ""
        )
        lines += [
            "",
            f"## Scaling: 1 vs 2 workers, PostgreSQL{shared}",
            "",
            "| row | 1 worker req/s | 2 workers req/s | 2/1 | target | |",
            "|---|--:|--:|--:|--:|---|",
        ]
        for key, by_count in scaling["rows"].items():
            one = by_count.get("1") or results["main"].get(key, {}).get("login_site")
            two = by_count.get("2")
            ratio = _ratio(_get(two, "rate"), _get(one, "rate"))
            lines.append(
                f"| {key} | {_rate(one)} | {_rate(two)} | {_num(ratio, 2)}× | ≥ {SCALING_TARGET}× "
                f"| {_met(ratio, SCALING_TARGET)} |"
            )
    if results.get("sqlite"):
        lines += [
            "",
            f"## SQLite (default) vs PostgreSQL, {cores} worker{'s' if cores > 1 else ''}",
            "",
            "| row | PostgreSQL req/s | SQLite req/s | SQLite/PostgreSQL | SQLite p99 ms |",
            "|---|--:|--:|--:|--:|",
        ]
        for key in results["rows"]:
            pg = results["main"].get(key, {}).get("login_site")
            lite = results["sqlite"].get(key)
            lines.append(
                f"| {key} | {_rate(pg)} | {_rate(lite)} "
                f"| {_num(_ratio(_get(lite, 'rate'), _get(pg, 'rate')), 2)}× "
                f"| {_ms(_get(lite, 'p99_ms'))} |"
            )
            if lite and (lite.get("errors") or lite.get("socket_errors")):
                notes.append(
                    f"row {key} SQLite: {lite.get('errors', 0)} failed, "
                    f"{lite.get('socket_errors', 0)} socket errors"
                )
    memory = results.get("memory") or {}
    rss_rows = []
    for label, key in (("login_site, PostgreSQL", "postgresql"), ("login_site, SQLite", "sqlite")):
        if key in memory:
            rss_rows.append((label, memory[key]["workers"], memory[key]["rss_mib"]))
    for count, values in (scaling.get("memory") or {}).items():
        rss_rows.append(("login_site, PostgreSQL, scaling run", int(count), values))
    if "peer" in memory:
        rss_rows.append(("oidc-provider (one Node process)", 1, memory["peer"]["rss_mib"]))
    if rss_rows:
        lines += [
            "",
            "## Resident memory after the run",
            "",
            "| server | workers | RSS per worker MiB |",
            "|---|--:|---|",
        ]
        for label, count, values in rss_rows:
            shown = ", ".join(_num(v, 1) for v in values if v is not None) or "–"
            lines.append(f"| {label} | {count} | {shown} |")
    if results.get("profile"):
        lines += ["", "## Profile (py-spy, one login_site worker, PostgreSQL)"]
        for key, prof in results["profile"].items():
            lines += ["", f"### row {key}"]
            if "error" in prof:
                lines.append(f"py-spy failed: {prof['error']}")
                continue
            lines.append(
                f"{prof['samples']} samples, {_num(prof['rate_under_profiler'])} req/s under "
                "the profiler. Share of samples in each function (own time), then under each "
                "login_site function (inclusive):"
            )
            lines += ["", "```"]
            lines += [f"{share:6.1%}  {frame}" for frame, share in prof["own"]]
            lines.append("")
            lines += [f"{share:6.1%}  {frame}" for frame, share in prof["login_site"]]
            lines.append("```")
    if any((r.get("load_cpu") or 0) > LOAD_BOUND_CPU for r in _all_results(results)):
        notes.append(
            f"{LOAD_BOUND} the load generator used more than {LOAD_BOUND_CPU:.0%} of its core: "
            "the server may be faster than shown."
        )
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    lines += ["", f"Total time {results.get('elapsed_seconds', 0):.0f} s."]
    return "\n".join(lines)


def _all_results(results: dict):
    if results.get("floor"):
        yield results["floor"]
    yield from (results.get("http_ceiling") or {}).get("runs") or []
    for pair in results["main"].values():
        yield from (r for r in pair.values() if r)
    yield from (r for r in (results.get("sqlite") or {}).values() if r)
    for by_count in ((results.get("scaling") or {}).get("rows") or {}).values():
        yield from (r for r in by_count.values() if r)


def smoke_checks(results: dict) -> tuple[list[str], list[str]]:
    """(passed, failed): each row on each server, and the HTTP server ceiling at the start and
    the end, must have a positive rate, both latencies and no failed requests; the RSA and
    argon2 ceilings a positive rate. No timing is judged."""
    passed: list[str] = []
    failed: list[str] = []

    def check(label: str, result: dict | None) -> None:
        ok = bool(
            result
            and result.get("rate")
            and result.get("p50_ms") is not None
            and result.get("p99_ms") is not None
            and not result.get("errors")
        )
        (passed if ok else failed).append(label)

    for key in results["rows"]:
        for name in ("login_site", "peer"):
            check(f"{key} {name}", results["main"].get(key, {}).get(name))
        if results.get("sqlite"):
            check(f"{key} sqlite", results["sqlite"].get(key))
    for key, by_count in ((results.get("scaling") or {}).get("rows") or {}).items():
        for count, result in by_count.items():
            check(f"{key} {count} workers", result)
    check("stack floor", results.get("floor"))
    for kind in ("rsa", "argon2"):
        rate = (results.get("ceilings") or {}).get(kind)
        check(f"{kind} ceiling", {"rate": rate, "p50_ms": 0, "p99_ms": 0} if rate else None)
    runs = (results.get("http_ceiling") or {}).get("runs") or []
    for index, when in enumerate(("start", "end")):
        check(f"http ceiling ({when})", runs[index] if index < len(runs) else None)
    return passed, failed


if __name__ == "__main__":  # pragma: no cover - a manual look at the machine description
    json.dump(machine(), sys.stdout, indent=1)
