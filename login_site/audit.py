"""Security events kept in the database: which events are kept, how they are written,
and the queries the dashboard reads them with (checklist LOG-01, MG-09).

:func:`login_site.events.event` still writes one log line per event; it hands every event
to :func:`collect`, which keeps only the allow-listed ones. Inside a request they wait on
``g`` and are inserted with one statement in a short transaction of their own once the
request's session is closed: a login that rolls back still leaves its failure, and the
request's own transaction gets no extra commit. Outside a request they are written at once.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any

from flask import Flask
from flask import current_app
from flask import g
from flask import has_app_context
from flask import has_request_context
from flask import request
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from login_site.db import utcnow
from login_site.models import Tenant
from login_site.models.event import SecurityEvent

log = logging.getLogger("login_site.audit")

# --- what is kept ---------------------------------------------------------------------------

EVERY_OUTCOME = None
# Event name -> outcomes kept (EVERY_OUTCOME: all of them). Names are those passed to
# events.event() across the code. Not kept: mail, sms, rate_limit, request_rejected and plain
# token issuance: high volume, and /oauth/token is the benchmarked hot path.
PERSISTED_EVENTS: dict[str, frozenset[str] | None] = {
    "login": EVERY_OUTCOME,
    "signup": EVERY_OUTCOME,
    "co_authenticate": EVERY_OUTCOME,
    "change_password": EVERY_OUTCOME,
    "reset_password": EVERY_OUTCOME,
    "verify_email": EVERY_OUTCOME,
    "brute_force": EVERY_OUTCOME,
    "suspicious_ip": EVERY_OUTCOME,
    "consent": EVERY_OUTCOME,
    "logout": EVERY_OUTCOME,
    "revoke": EVERY_OUTCOME,
    "passwordless": frozenset({"verify_failed", "send_limited", "link_other_browser"}),
    "custom_database": frozenset({"imported", "linked", "conflict", "mismatch", "ambiguous"}),
    # Token errors (replayed codes, bad client credentials) are kept; issued tokens only
    # for the grants in TOKEN_GRANTS_KEPT.
    "token": EVERY_OUTCOME,
}
# Every admin change, whatever its name (MG-09): Management API and dashboard.
PERSISTED_PREFIXES = ("management.", "dashboard.")
# Issued tokens worth keeping: grants that authenticate a user at the token endpoint, and
# token exchanges. Not client_credentials, authorization_code or refresh_token.
TOKEN_GRANTS_KEPT = frozenset(
    {
        "password",
        "http://auth0.com/oauth/grant-type/password-realm",
        "http://auth0.com/oauth/grant-type/passwordless/otp",
        "urn:ietf:params:oauth:grant-type:token-exchange",
        "urn:auth0:params:oauth:grant-type:token-exchange:federated-connection-access-token",
    }
)

# Field names never stored, whatever a caller passes (STYLE §3 Logging): secrets, and the
# personal data the log lines avoid too (user ids, not emails).
SECRET_FIELD = re.compile(
    r"password|secret|token|code|otp|cookie|authorization|assertion|ticket|nonce|verifier"
    r"|state|session|email|phone|username|link|credential|key",
    re.IGNORECASE,
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_DETAIL_CHARS = 200
MAX_DETAILS = 20
_PENDING = "security_events"


def persisted(name: str, outcome: str, fields: Mapping[str, object]) -> bool:
    """Whether this event goes to the table (the one allow-list)."""
    if name.startswith(PERSISTED_PREFIXES):
        return True
    if name not in PERSISTED_EVENTS:
        return False
    if name == "token" and outcome == "issued":
        return fields.get("grant_type") in TOKEN_GRANTS_KEPT
    outcomes = PERSISTED_EVENTS[name]
    return outcomes is EVERY_OUTCOME or outcome in outcomes


# --- shaping a row --------------------------------------------------------------------------


def clean_text(value: object, limit: int = MAX_DETAIL_CHARS) -> str:
    """One line, no control characters (checklist LOG-02), capped."""
    return _CONTROL.sub(" ", str(value))[:limit]


def _detail(value: object) -> object:
    if value is None or isinstance(value, bool | int | float):
        return value
    return clean_text(value)


def _target(name: str, fields: Mapping[str, object]) -> str | None:
    if fields.get("target") is not None:
        return clean_text(fields["target"], 255)
    if not name.startswith(PERSISTED_PREFIXES):
        return None
    for key, kind in (
        ("connection_id", "connection"),
        ("client_id", "client"),
        ("user_id", "user"),
    ):
        if fields.get(key) is not None:
            return clean_text(f"{kind}:{fields[key]}", 255)
    return None


def _actor(fields: Mapping[str, object]) -> str | None:
    if fields.get("actor") is not None:
        return clean_text(fields["actor"], 255)
    if fields.get("actor_client_id") is not None:
        return clean_text(f"client:{fields['actor_client_id']}", 255)
    return None


COLUMN_FIELDS = frozenset(
    {
        "user_id",
        "client_id",
        "connection",
        "actor",
        "actor_client_id",
        "target",
        "tenant_id",
        "tenant",
    }
)


def make_row(
    tenant_id: str | None,
    name: str,
    outcome: str,
    fields: Mapping[str, object],
    *,
    tenant_name: str | None = None,
    ip: str | None = None,
    request_id: str | None = None,
    time: datetime | None = None,
) -> dict[str, Any]:
    """The ``security_events`` values for one event: known fields to columns, the rest to
    ``details`` without secret-looking names. Without ``tenant_id``, :func:`write` looks
    ``tenant_name`` up."""
    details = {
        clean_text(k, 64): _detail(v)
        for k, v in fields.items()
        if k not in COLUMN_FIELDS and v is not None and not SECRET_FIELD.search(k)
    }
    return {
        "tenant_id": tenant_id,
        "tenant_name": tenant_name,
        "time": time or utcnow(),
        "name": clean_text(name, 64),
        "outcome": clean_text(outcome, 64),
        "user_id": _column(fields, "user_id", 255),
        "client_id": _column(fields, "client_id", 255),
        "connection": _column(fields, "connection", 128),
        "ip": clean_text(ip, 64) if ip else None,
        "actor": _actor(fields),
        "target": _target(name, fields),
        "request_id": request_id,
        "details": dict(list(details.items())[:MAX_DETAILS]),
    }


def _column(fields: Mapping[str, object], key: str, limit: int) -> str | None:
    value = fields.get(key)
    return clean_text(value, limit) if value is not None else None


# --- writing --------------------------------------------------------------------------------


def _tenant_of(fields: Mapping[str, object]) -> tuple[str | None, str | None]:
    """(id, name) of the tenant an event is about: ``tenant_id=`` or ``tenant=<name>`` when
    the caller names one, else ``g.audit_tenant`` (set by dashboard views working on a tenant
    other than their host's, for the events of the shared code they call), else the
    request's tenant. A name is looked up when the rows are written."""
    if fields.get("tenant_id"):
        return str(fields["tenant_id"]), None
    current = (g.get("audit_tenant") or g.get("tenant")) if has_request_context() else None
    named = fields.get("tenant")
    if isinstance(named, str) and named and (current is None or named != current.name):
        return None, named
    return (current.id, None) if current is not None else (None, None)


def collect(name: str, outcome: str, fields: Mapping[str, object]) -> None:
    """Keep an allow-listed event: on ``g`` inside a request, written at once outside one.
    Never raises: losing an audit row must not fail a login (the log line stays)."""
    if not persisted(name, outcome, fields):
        return
    try:
        tenant_id, tenant_name = _tenant_of(fields)
        if tenant_id is None and tenant_name is None:  # e.g. an unknown host
            return
        if has_request_context():
            row = make_row(
                tenant_id,
                name,
                outcome,
                fields,
                tenant_name=tenant_name,
                ip=request.remote_addr,
                request_id=g.get("request_id"),
            )
            g.setdefault(_PENDING, []).append(row)
        elif has_app_context():
            row = make_row(tenant_id, name, outcome, fields, tenant_name=tenant_name)
            write(current_app.extensions["login_site.engine"], [row])
    except Exception as exc:  # see the docstring
        log.warning("security event %s not stored: %s", name, type(exc).__name__)


def write(engine: Engine, rows: list[dict[str, Any]]) -> None:
    """One INSERT in its own short transaction (after one SELECT if tenants are named).
    Rows of a tenant that does not exist are dropped."""
    rows = [dict(r) for r in rows]
    names = {r["tenant_name"] for r in rows if r.get("tenant_id") is None and r.get("tenant_name")}
    with engine.begin() as conn:
        ids: dict[str, str] = {}
        if names:
            query = select(Tenant.name, Tenant.id).where(Tenant.name.in_(names))
            ids = dict(conn.execute(query).tuples().all())
        ready = []
        for row in rows:
            tenant_name = row.pop("tenant_name", None)
            row["tenant_id"] = row.get("tenant_id") or ids.get(tenant_name)
            if row["tenant_id"] is not None:
                ready.append(row)
        if ready:
            conn.execute(insert(SecurityEvent), ready)


def _flush(_exc: BaseException | None) -> None:
    rows = g.pop(_PENDING, None)
    if not rows:
        return
    try:
        write(current_app.extensions["login_site.engine"], rows)
    except Exception as exc:  # the response is already made
        log.warning("%d security event(s) not stored: %s", len(rows), type(exc).__name__)


def init_app(app: Flask) -> None:
    """Call before ``db.init_app``: teardowns run in reverse order, so the events are
    written after the request's session has closed (SQLite has one writer at a time)."""
    app.teardown_appcontext(_flush)


def prune(db: Session, older_than_days: int, now: datetime | None = None) -> int:
    """Delete events older than the retention period; returns how many went."""
    cutoff = (now or utcnow()) - timedelta(days=older_than_days)
    result = db.execute(delete(SecurityEvent).where(SecurityEvent.time < cutoff))
    return result.rowcount or 0


# --- reading --------------------------------------------------------------------------------

MAX_PER_PAGE = 100


@dataclass(frozen=True)
class EventFilter:
    """What the logs page asks for; empty values do not filter."""

    name: str = ""
    outcome: str = ""
    user_id: str = ""
    connection: str = ""
    since: datetime | None = None
    until: datetime | None = None


def search(
    db: Session, tenant_id: str, where: EventFilter, page: int = 0, per_page: int = 50
) -> tuple[list[SecurityEvent], int]:
    """A page of the tenant's events, newest first, and the total matching."""
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    conditions = [SecurityEvent.tenant_id == tenant_id]
    for column, value in (
        (SecurityEvent.name, where.name),
        (SecurityEvent.outcome, where.outcome),
        (SecurityEvent.user_id, where.user_id),
        (SecurityEvent.connection, where.connection),
    ):
        if value:
            conditions.append(column == value)
    if where.since is not None:
        conditions.append(SecurityEvent.time >= where.since)
    if where.until is not None:
        conditions.append(SecurityEvent.time < where.until)
    total = db.scalar(select(func.count()).select_from(SecurityEvent).where(*conditions)) or 0
    rows = db.scalars(
        select(SecurityEvent)
        .where(*conditions)
        .order_by(SecurityEvent.time.desc(), SecurityEvent.id.desc())
        .offset(max(page, 0) * per_page)
        .limit(per_page)
    )
    return list(rows), total


def for_user(db: Session, tenant_id: str, user_id: str, limit: int = 20) -> list[SecurityEvent]:
    """The user's latest events: about them or done to them."""
    return list(
        db.scalars(
            select(SecurityEvent)
            .where(
                SecurityEvent.tenant_id == tenant_id,
                (SecurityEvent.user_id == user_id) | (SecurityEvent.target == f"user:{user_id}"),
            )
            .order_by(SecurityEvent.time.desc(), SecurityEvent.id.desc())
            .limit(limit)
        )
    )


def event_names(db: Session, tenant_id: str) -> list[str]:
    """Names present for the tenant, for the logs page's filter."""
    return list(
        db.scalars(
            select(SecurityEvent.name)
            .where(SecurityEvent.tenant_id == tenant_id)
            .distinct()
            .order_by(SecurityEvent.name)
        )
    )


def event_outcomes(db: Session, tenant_id: str) -> list[str]:
    """Outcomes present for the tenant, for the logs page's filter."""
    return list(
        db.scalars(
            select(SecurityEvent.outcome)
            .where(SecurityEvent.tenant_id == tenant_id)
            .distinct()
            .order_by(SecurityEvent.outcome)
        )
    )
