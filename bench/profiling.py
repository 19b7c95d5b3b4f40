"""``--profile ROWS``: py-spy samples a login_site worker while a row's load runs (the
thread holding the GIL, so CPU time only), and the hottest functions (own time, and time
under each of login_site's functions) go into the results; the raw stacks are kept beside
them in ``bench/results/``."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.fixture import BENCH_DIR
from bench.rows import Load
from bench.rows import measure
from bench.servers import pinned

TOP = 15
SAMPLE_RATE = 250


def summarise(raw: Path) -> dict:
    own: Counter[str] = Counter()
    under: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f.strip() for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            if "login_site/" in frame:
                under[frame] += n
    return {
        "samples": total,
        "own": [(f, n / total) for f, n in own.most_common(TOP)] if total else [],
        "login_site": [(f, n / total) for f, n in under.most_common(TOP)] if total else [],
    }


def run(site, ours, rows: list[str], load: Load, tmp: Path) -> dict:
    results_dir = BENCH_DIR / "results"
    results_dir.mkdir(exist_ok=True)
    out = {}
    for row in rows:
        pid = site.worker_pids()[0]
        raw = tmp / f"profile-{row}.txt"
        argv = [
            "py-spy",
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(SAMPLE_RATE),
            # Only the thread holding the GIL: a gthread worker's idle threads would
            # otherwise fill the samples with waiting.
            "--gil",
            "--format",
            "raw",
            "--output",
            str(raw),
        ]
        print(f"[bench] profiling row {row} (worker {pid})", file=sys.stderr, flush=True)
        spy = subprocess.Popen(  # noqa: S603 - our own command line
            pinned(load.cpus, argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            figures = measure(row, ours, load)
        finally:
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
        if not raw.exists():
            err = spy.stderr.read().decode(errors="replace") if spy.stderr else ""
            out[row] = {"error": err.strip()[-500:] or "py-spy wrote nothing"}
            continue
        kept = results_dir / f"profile-{row}.txt"
        kept.write_text(raw.read_text())
        out[row] = {"rate_under_profiler": figures["rate"], **summarise(raw)}
    return out
