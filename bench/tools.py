"""What the benchmark needs on the machine, installed from bench's own files:
wrk (Debian), the peer's npm packages (``package-lock.json``), ``requirements.txt``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata

from bench.fixture import BENCH_DIR

REQUIREMENTS = BENCH_DIR / "requirements.txt"


def _run(argv: list[str], **kwargs) -> None:
    print("+ " + " ".join(argv), file=sys.stderr)
    subprocess.run(argv, check=True, timeout=600, **kwargs)  # noqa: S603 - fixed commands


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        _run(["apt-get", "install", "-y", "-qq", "wrk"], env=env)
    except subprocess.CalledProcessError:
        _run(["apt-get", "update", "-qq"], env=env)
        _run(["apt-get", "install", "-y", "-qq", "wrk"], env=env)


def _node_modules_current() -> bool:
    wanted = json.loads((BENCH_DIR / "package.json").read_text())["dependencies"]
    for name, version in wanted.items():
        manifest = BENCH_DIR / "node_modules" / name / "package.json"
        if not manifest.exists() or json.loads(manifest.read_text())["version"] != version:
            return False
    return True


def ensure_node_modules() -> None:
    if not _node_modules_current():
        _run(["npm", "ci", "--prefix", str(BENCH_DIR), "--no-audit", "--no-fund"])


def _requirements() -> list[tuple[str, str]]:
    pins = []
    for line in REQUIREMENTS.read_text().splitlines():
        match = re.match(r"^\s*([A-Za-z0-9_.-]+)==([^\s;#]+)", line)
        if match:
            pins.append((match.group(1), match.group(2)))
    return pins


def ensure_python_requirements() -> None:
    for name, version in _requirements():
        try:
            if metadata.version(name) == version:
                continue
        except metadata.PackageNotFoundError:
            pass
        _run([sys.executable, "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)])
        return


def ensure_all() -> None:
    ensure_wrk()
    ensure_node_modules()
    ensure_python_requirements()
