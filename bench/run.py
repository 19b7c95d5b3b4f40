"""``python -m bench``: login_site against oidc-provider on loopback, in one run.

First the ceilings: RSA-2048 signatures/s and argon2id verifications/s on one server core,
and the HTTP server ceiling (gunicorn as login_site runs it, serving a fixed JSON body from a
bare WSGI app). Then every server at once, each idle but the one under load: login_site on
PostgreSQL (+ Redis) with gunicorn (workers = server cores), the peer, login_site on SQLite
(the default), and login_site with 1 and 2 workers for the scaling rows. Row by row, each
server is measured in turn, so drift on a shared machine hits all of them alike. Servers are
pinned to the server cores and load generators to the others. The ceilings are measured again
at the end. The table goes to stdout and to ``bench/results/<timestamp>.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import replace
from datetime import UTC
from datetime import datetime

from bench import profiling
from bench import report
from bench import tools
from bench.fixture import BENCH_DIR
from bench.fixture import Side
from bench.fixture import side
from bench.hello import BODY
from bench.rows import ROWS
from bench.rows import Load
from bench.rows import measure
from bench.rows import measure_floor
from bench.rows import measure_http_ceiling
from bench.rows import run_module
from bench.servers import LoginSite
from bench.servers import Peer
from bench.servers import free_port
from bench.servers import hello
from bench.servers import postgresql_database
from bench.servers import sqlite_url
from bench.servers import workdir

RESULTS_DIR = BENCH_DIR / "results"
SCALING_ROWS = ("c", "e")


def split_cpus() -> tuple[list[int], list[int] | None]:
    """Server cores and load-generator cores: the upper half for the server."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return cpus, None
    half = len(cpus) // 2
    return cpus[half:], cpus[:half]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per row")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per row")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent round trips")
    parser.add_argument("--ceiling-seconds", type=float, default=3.0)
    parser.add_argument("--rows", default="abcdefg", help="rows to run, e.g. 'ce'")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument(
        "--profile",
        default="",
        metavar="ROWS",
        help="after the run, sample a login_site worker with py-spy under these rows' load",
    )
    parser.add_argument("--no-install", action="store_true", help="do not install wrk/npm/pip")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a few seconds per phase; checks only that every row produced numbers",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.duration, args.warmup = 1.0, 1.0
        args.connections, args.concurrency, args.ceiling_seconds = 4, 2, 0.5
    unknown = set(args.rows) - set(ROWS)
    if unknown:
        parser.error(f"unknown rows: {''.join(sorted(unknown))}")
    args.rows = tuple(r for r in ROWS if r in args.rows)
    args.profile = [r for r in ROWS if r in args.profile]
    return args


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.no_install:
        tools.ensure_all()
    server_cpus, load_cpus = split_cpus()
    load = Load(args.warmup, args.duration, args.connections, args.concurrency, load_cpus)
    workers = len(server_cpus)
    results: dict = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": report.machine(),
        "settings": {
            "server_cpus": server_cpus,
            "load_cpus": load_cpus,
            "workers": workers,
            "warmup": args.warmup,
            "duration": args.duration,
            "connections": args.connections,
            "concurrency": args.concurrency,
            "smoke": args.smoke,
        },
        "rows": args.rows,
        "main": {},
        "scaling": {},
        "sqlite": {},
        "memory": {},
    }
    started = time.monotonic()
    results["load_average"] = {"start": os.getloadavg()[0]}

    # The ceilings at the start and at the end; the table uses their mean.
    results["ceilings_measured"] = ceilings(server_cpus, args.ceiling_seconds)
    results["http_ceiling"] = {"body_bytes": len(BODY), "runs": []}
    http_ceiling(server_cpus, workers, load, results)

    scaling_plan = [] if args.skip_scaling else plan_scaling(workers, server_cpus, load)
    results["scaling"]["shared_cores"] = any(shared for _, _, _, shared in scaling_plan)
    with workdir() as tmp, postgresql_database() as pg_url:
        main_port = free_port()
        extra_ports = {count: free_port() for count, _, _, _ in scaling_plan if count != workers}
        pg = LoginSite(pg_url, [main_port, *extra_ports.values()], tmp, redis=True)
        lite = (
            None
            if args.skip_sqlite
            else LoginSite(sqlite_url(tmp), [free_port()], tmp, redis=False)
        )
        peer = Peer(free_port(), tmp)
        try:
            log("login_site: db upgrade and import bench/tenant.yaml (PostgreSQL, SQLite)")
            for site in filter(None, (pg, lite)):
                site.prepare()
            # Every server is up for the whole run and idle but the one under load, so the
            # measurements of one row are next to each other in time.
            main = pg.start(main_port, workers, server_cpus)
            peer.start(server_cpus)
            ours = side("login_site", main.port)
            targets = [
                Target("login_site", ours, load, args.rows, store(results["main"], "login_site")),
                Target(
                    "peer", side("peer", peer.port), load, args.rows, store(results["main"], "peer")
                ),
            ]
            if lite is not None:
                lite_server = lite.start(lite.ports[0], workers, server_cpus)
                lite_side = side("login_site", lite_server.port)
                targets.append(
                    Target("sqlite", lite_side, load, args.rows, store(results["sqlite"]))
                )
            scaling_rows = results["scaling"].setdefault("rows", {})
            scaling_servers = {}
            for count, cpus, row_load, _ in scaling_plan:
                at = store(scaling_rows, str(count))
                if count == workers:  # the main server: its figures count for both
                    scaling_servers[count] = main
                    targets[0] = replace(targets[0], also=at)
                    continue
                server = pg.start(extra_ports[count], count, cpus)
                scaling_servers[count] = server
                rows = tuple(r for r in args.rows if r in SCALING_ROWS)
                label = f"{count} workers"
                targets.append(Target(label, side("login_site", server.port), row_load, rows, at))
            for row in args.rows:
                for target in targets:
                    if row in target.rows:
                        log(f"row {row}: {target.label}")
                        target.record(row, measure(row, target.side, target.load))
            log("stack floor: login_site GET /healthz")
            results["floor"] = measure_floor(ours, load)
            results["memory"]["postgresql"] = {"workers": workers, "rss_mib": main.worker_rss_mib()}
            results["memory"]["peer"] = {"workers": 1, "rss_mib": [peer.rss_mib()]}
            if lite is not None:
                results["memory"]["sqlite"] = {
                    "workers": workers,
                    "rss_mib": lite_server.worker_rss_mib(),
                }
            results["scaling"]["memory"] = {
                str(count): server.worker_rss_mib()
                for count, server in scaling_servers.items()
                if server is not main
            }
            if args.profile:
                results["profile"] = profiling.run(main, ours, args.profile, load, tmp)
        finally:
            peer.stop()
            pg.stop()
            if lite is not None:
                lite.stop()

    for kind, rate in ceilings(server_cpus, args.ceiling_seconds).items():
        results["ceilings_measured"][kind].append(rate[0])
    http_ceiling(server_cpus, workers, load, results)
    results["ceilings"] = {
        kind: sum(rates) / len(rates) for kind, rates in results["ceilings_measured"].items()
    }
    results["elapsed_seconds"] = time.monotonic() - started
    results["load_average"]["end"] = os.getloadavg()[0]
    text = report.render(results)
    print(text)
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{stamp}{'-smoke' if args.smoke else ''}.md"
    path.write_text(text + "\n<!--\n" + json.dumps(results, indent=1) + "\n-->\n")
    log(f"written {path.relative_to(BENCH_DIR.parent)}")
    if args.smoke:
        passed, failed = report.smoke_checks(results)
        if failed:
            print("smoke: no numbers for " + ", ".join(failed), file=sys.stderr)
        # The plain closing line CI reads: one check per row and server, and per ceiling.
        print(f"smoke: {len(passed)} passed, {len(failed)} failed")
        return 1 if failed else 0
    return 0


@dataclass(frozen=True)
class Target:
    """A server the rows are measured on, and where its figures go."""

    label: str
    side: Side
    load: Load
    rows: tuple[str, ...]
    store: Callable[[str, dict], None]
    also: Callable[[str, dict], None] | None = None

    def record(self, row: str, figures: dict) -> None:
        self.store(row, figures)
        if self.also is not None and row in SCALING_ROWS:
            self.also(row, figures)


def store(table: dict, name: str | None = None) -> Callable[[str, dict], None]:
    """Figures of row ``r`` go to ``table[r][name]``, or ``table[r]`` without a name."""

    def put(row: str, figures: dict) -> None:
        if name is None:
            table[row] = figures
        else:
            table.setdefault(row, {})[name] = figures

    return put


def ceilings(server_cpus: list[int], seconds: float) -> dict[str, list[float]]:
    log(f"ceilings on core {server_cpus[0]}")
    one_core = Load(0, 0, 0, 0, server_cpus[:1])
    return {
        kind: [
            run_module("bench.ceilings", [kind, "--seconds", str(seconds)], one_core, 120)["rate"]
        ]
        for kind in ("rsa", "argon2")
    }


def http_ceiling(server_cpus: list[int], workers: int, load: Load, results: dict) -> None:
    """``bench/hello.py`` under gunicorn with login_site's settings, workers and cores, loaded
    as row a: what gunicorn's HTTP layer answers with no application behind it."""
    log(f"HTTP server ceiling: gunicorn -w {workers} bench.hello:app")
    with workdir() as tmp:
        server = hello(free_port(), workers, server_cpus, tmp)
        try:
            figures = measure_http_ceiling(f"http://{server.host}", load)
        finally:
            server.stop()
    results["http_ceiling"]["runs"].append(figures)
    results["ceilings_measured"].setdefault("http", []).append(figures["rate"])


def plan_scaling(workers: int, server_cpus: list[int], load: Load):
    """(workers, cores, load, shared) for the 1- and 2-worker runs of rows c and e. With
    fewer than two server cores, 2 workers get every core and share them with the load
    generator, which then runs unpinned."""
    plan = [(1, server_cpus[:1], load, False)]
    if len(server_cpus) >= 2:
        plan.append((2, server_cpus[:2], load, False))
    else:
        every = sorted(os.sched_getaffinity(0))
        if len(every) >= 2:
            unpinned = Load(load.warmup, load.duration, load.connections, load.concurrency, None)
            plan.append((2, every, unpinned, True))
    return plan
