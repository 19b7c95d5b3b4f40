"""One structured log line per security event (STYLE §3 Logging).

Fields are ids and outcomes only: never passwords, codes, tokens, cookies or emails.
The allow-listed ones are also kept in the database (:mod:`login_site.audit`).
"""

from __future__ import annotations

import json
import logging
import re
import secrets

from flask import Flask
from flask import g
from flask import has_request_context
from flask import request

from login_site import audit

log = logging.getLogger("login_site.events")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def event(name: str, outcome: str, **fields: object) -> None:
    record: dict[str, object] = {"event": name, "outcome": outcome}
    if has_request_context():
        tenant = g.get("tenant")
        record["tenant"] = tenant.name if tenant is not None else None
        record["request_id"] = g.get("request_id")
        record["ip"] = request.remote_addr
    record.update({k: v for k, v in fields.items() if v is not None})
    if log.isEnabledFor(logging.INFO):  # the JSON is built only for a line that is written
        log.info(json.dumps(record, sort_keys=True, default=str))
    audit.collect(name, outcome, fields)


def request_id(supplied: str) -> str:
    """The id a request is logged and answered with: the client's ``X-Request-Id`` when it
    is a plain token, else a new one."""
    return supplied if _REQUEST_ID.match(supplied) else secrets.token_hex(8)


def init_app(app: Flask) -> None:
    audit.init_app(app)  # before db.init_app: stored after the request's session closes
    _setup_log(app.config.get("EVENT_LOG", "stderr"))

    @app.before_request
    def _request_id():
        g.request_id = request_id(request.environ.get("HTTP_X_REQUEST_ID", ""))

    @app.after_request
    def _echo_request_id(response):
        if g.get("request_id"):
            response.headers["X-Request-Id"] = g.request_id
        return response


def _setup_log(destination: str) -> None:
    """Event lines are written at INFO whatever the root logger's level (under gunicorn nothing
    configures logging, so they would be dropped): to stderr, one JSON object per line, unless
    the deployment attached its own handler or chose ``EVENT_LOG = "off"``."""
    if destination == "off":
        log.setLevel(logging.WARNING)
        return
    log.setLevel(logging.INFO)
    if not log.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
