"""``login-site demo``: the demo tenant and a demo application, both on localhost.

Runs on the embedded default configuration (SQLite and secrets in the instance folder).
The demo's own secrets (client secrets, alice's password, placeholders for the upstream
providers) are generated once into ``instance/demo-secrets.json`` (mode 0600) and reused, so
the file can be edited to try real Google or Twilio keys. Importing ``demo.yaml`` again at
each start changes nothing unless the ports or that file changed.
"""

from __future__ import annotations

import json
import os
import secrets
import string
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer
from werkzeug.serving import WSGIRequestHandler
from werkzeug.serving import make_server

from login_site import migrate
from login_site import tenant_config
from login_site.app import create_app
from login_site.demo.rp import create_rp

DEMO_YAML = Path(__file__).resolve().parent / "demo.yaml"
SECRETS_FILE = "demo-secrets.json"
DEMO_EMAIL = "alice@example.test"
# The ports written in demo.yaml; other ports are substituted into the text before import.
DEFAULT_PORT = 5000
DEFAULT_RP_PORT = 8765
# Upstream providers of the demo's other connections: stored, not usable until configured.
PLACEHOLDERS = {
    "TWILIO_ACCOUNT_SID": "ACnot-configured",
    "TWILIO_AUTH_TOKEN": "not-configured",
    "TWILIO_API_BASE": "http://127.0.0.1:4200",
    "GOOGLE_CLIENT_ID": "not-configured.apps.googleusercontent.com",
    "GOOGLE_CLIENT_SECRET": "not-configured",
    "ACME_OIDC_CLIENT_SECRET": "not-configured",
}


class PathOnlyLogHandler(WSGIRequestHandler):
    """Request log without query strings: they carry codes and state (STYLE §3)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = self.path.split("?", 1)[0]
        self.log("info", '"%s %s" %s', self.command, path, code)


def new_password() -> str:
    """Readable, and meets the ``good`` policy (lower, upper, digit and special)."""
    alphabet = string.ascii_letters + string.digits
    body = "".join(secrets.choice(alphabet) for _ in range(10))
    return f"Demo-{body}-7a"


def generate_secrets() -> dict[str, str]:
    return {
        "DEMO_WEB_CLIENT_SECRET": secrets.token_urlsafe(36),
        "DEMO_M2M_CLIENT_SECRET": secrets.token_urlsafe(36),
        "DEMO_ALICE_PASSWORD": new_password(),
        **PLACEHOLDERS,
    }


def load_secrets(instance_path: Path) -> dict[str, str]:
    """The demo's keyword values: created once (mode 0600), then read back."""
    path = Path(instance_path) / SECRETS_FILE
    if path.exists():
        stored = json.loads(path.read_text())
        missing = {k: v for k, v in generate_secrets().items() if k not in stored}
        if not missing:
            return stored
        # A keyword added to demo.yaml later: keep every existing value, add the new ones.
        path.unlink()
        return _write_secrets(path, {**missing, **stored})
    path.parent.mkdir(parents=True, exist_ok=True)
    return _write_secrets(path, generate_secrets())


def _write_secrets(path: Path, data: dict[str, str]) -> dict[str, str]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
    return data


def demo_yaml(port: int = DEFAULT_PORT, rp_port: int = DEFAULT_RP_PORT) -> str:
    """demo.yaml with its tenant hosts and demo-app URLs moved to the given ports."""
    text = DEMO_YAML.read_text()
    for host in ("localhost", "127.0.0.1"):
        text = text.replace(f"{host}:{DEFAULT_PORT}", f"{host}:{port}")
    return text.replace(f"localhost:{DEFAULT_RP_PORT}", f"localhost:{rp_port}")


def seed_demo(app: Flask, keywords: dict[str, Any], port: int, rp_port: int) -> list[str]:
    """Migrate and import the demo tenant; returns the import report's lines."""
    migrate.upgrade(app.config["DATABASE_URL"])
    report = tenant_config.import_text(app, demo_yaml(port, rp_port), keywords=keywords)
    return report.lines()


def run_demo(
    host: str = "localhost",
    port: int = DEFAULT_PORT,
    rp_port: int = DEFAULT_RP_PORT,
    echo: Callable[[str], Any] = print,
) -> None:
    """Serve login_site and the demo application until interrupted.

    ``host`` is the interface to listen on; the URLs, like demo.yaml, use ``localhost``.
    """
    app = create_app()
    keywords = load_secrets(Path(app.instance_path))
    rp = create_rp(
        issuer=f"http://localhost:{port}/",
        client_secret=keywords["DEMO_WEB_CLIENT_SECRET"],
        rp_base=f"http://localhost:{rp_port}",
    )
    # Listen first, so a busy port fails before any work is done (werkzeug prints which
    # port and exits).
    servers = [
        make_server(host, port, app, threaded=True, request_handler=PathOnlyLogHandler),
        make_server(host, rp_port, rp, threaded=True, request_handler=PathOnlyLogHandler),
    ]
    try:
        lines = seed_demo(app, keywords, port, rp_port)
    except BaseException:
        for server in servers:
            server.server_close()
        raise
    for line in lines:
        echo(line)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    echo("")
    echo(f"login_site (tenant 'demo')  http://localhost:{port}/")
    echo(f"Demo Web App                http://localhost:{rp_port}/")
    echo("")
    echo(f"Open http://localhost:{rp_port}/ and log in as")
    echo(f"  email:    {DEMO_EMAIL}")
    echo(f"  password: {keywords['DEMO_ALICE_PASSWORD']}")
    echo(f"(demo secrets in {Path(app.instance_path) / SECRETS_FILE}; Ctrl+C to stop)")
    try:
        while all(t.is_alive() for t in threads):
            threads[0].join(0.5)
    except KeyboardInterrupt:
        echo("stopping")
    finally:
        _stop(servers, threads)


def _stop(servers: list[BaseWSGIServer], threads: list[threading.Thread]) -> None:
    for server in servers:
        server.shutdown()
        server.server_close()
    for thread in threads:
        thread.join(5)
