"""Brute-force protection and suspicious-IP throttling for password logins (Auth0's).

Failed passwords are counted per (connection, identifier, IP) in ``login_attempts``, so
every worker shares them and no Redis is needed. At ``max_attempts`` (connection option,
Auth0's default 10) the pair is blocked: further attempts fail with ``too_many_attempts``,
even with the right password, until a success-free 30 days pass
(``BRUTE_FORCE_BLOCK_SECONDS``), the user follows the unblock link mailed when the block
started, or resets the password. The owner from another IP is not blocked (checklist
LG-04). Unknown identifiers are counted the same way, so the answers do not tell which
accounts exist; only existing users get the mail. A success clears the pair's counter.

Suspicious-IP throttling counts failed logins of one IP across all accounts of a tenant
(``SUSPICIOUS_IP_LIMIT``, on the rate-limit storage) and answers 429 ``too_many_requests``
once it is exceeded.

Identifiers are stored as hashes: what people type as a user name is sometimes a password.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from dataclasses import replace
from datetime import timedelta

from flask import Blueprint
from flask import Flask
from flask import current_app
from flask import has_request_context
from flask import render_template
from flask import request
from sqlalchemy import case
from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from login_site import accounts
from login_site import mail
from login_site import tickets
from login_site.connections.base import LoginFailed
from login_site.db import get_db
from login_site.db import utcnow
from login_site.events import event
from login_site.models import Connection
from login_site.models import LoginAttempt
from login_site.models import Tenant
from login_site.models import User
from login_site.security import ratelimit
from login_site.security.secrets import sha256_hex
from login_site.tenancy import absolute
from login_site.tenancy import current_tenant

MAX_ATTEMPTS_RANGE = (1, 100)  # Auth0 accepts 1-100
# Counters untouched for a block period are deleted now and then (unknown identifiers
# would otherwise pile up); at most once per this many seconds per process.
PURGE_INTERVAL_SECONDS = 3600
_next_purge = 0.0


@dataclass(frozen=True)
class Guard:
    """What :func:`check` learned before the password is verified."""

    tenant_id: str
    connection_id: str
    connection_name: str
    identifier_key: str
    ip: str  # the counting unit (ratelimit.ip_key)
    raw_ip: str  # as seen, for the notification mail
    protected: bool
    max_attempts: int
    counted: bool  # a counter row existed


def identifier_key(identifier: str) -> str:
    """The same key for every spelling the login lookup treats as the same."""
    if "@" in identifier:
        return sha256_hex(accounts.normalise_email(identifier))
    return sha256_hex(accounts.normalise_username(identifier))


def _max_attempts(conn: Connection) -> int:
    value = (conn.options or {}).get("max_attempts")
    low, high = MAX_ATTEMPTS_RANGE
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return value
    return int(current_app.config["BRUTE_FORCE_MAX_ATTEMPTS"])


def _block_cutoff():
    return utcnow() - timedelta(seconds=int(current_app.config["BRUTE_FORCE_BLOCK_SECONDS"]))


def check(db: Session, conn: Connection, identifier: str, ip: str | None = None) -> Guard:
    """Before the password is verified: 429 for a throttled IP, ``LoginFailed
    ("too_many_attempts")`` for a blocked identifier and IP."""
    raw_ip = ip if ip is not None else ratelimit.client_ip()
    guard = Guard(
        tenant_id=conn.tenant_id,
        connection_id=conn.id,
        connection_name=conn.name,
        identifier_key=identifier_key(identifier),
        ip=ratelimit.ip_key(raw_ip),
        raw_ip=raw_ip,
        protected=(conn.options or {}).get("brute_force_protection", True) is not False,
        max_attempts=_max_attempts(conn),
        counted=False,
    )
    limit = current_app.config["SUSPICIOUS_IP_LIMIT"]
    counter = ("suspicious_ip", guard.tenant_id, guard.ip)
    if limit and not ratelimit.counter_test(limit, *counter):
        event("suspicious_ip", "throttled", connection=conn.name)
        raise ratelimit.too_many_requests(limit, *counter)
    if not guard.protected:
        return guard
    row = db.execute(
        select(LoginAttempt.blocked_at).where(
            LoginAttempt.connection_id == conn.id,
            LoginAttempt.identifier_key == guard.identifier_key,
            LoginAttempt.ip == guard.ip,
        )
    ).first()
    if row is None:
        return guard
    if row.blocked_at is not None and row.blocked_at > _block_cutoff():
        event("brute_force", "rejected", connection=conn.name)
        raise LoginFailed("too_many_attempts")
    return replace(guard, counted=True)


def record_failure(db: Session, guard: Guard, user: User | None = None) -> None:
    """Count a wrong password (``user``: the account it was for, if any). Committed on its
    own, whatever the caller does with its transaction; the block starts exactly once."""
    limit = current_app.config["SUSPICIOUS_IP_LIMIT"]
    if limit:
        ratelimit.counter_hit(limit, "suspicious_ip", guard.tenant_id, guard.ip)
    if not guard.protected:
        return
    outbox = None
    with Session(bind=db.get_bind(), expire_on_commit=False) as own, own.begin():
        failures, started = _count(own, guard)
        if started and user is not None and user.email:
            outbox = _notify(own, guard, user)
        _purge(own)
    if started:
        event(
            "brute_force",
            "blocked",
            connection=guard.connection_name,
            user_id=user.user_id if user is not None else None,
            failures=failures,
        )
    if outbox is not None:
        mail.deliver_after_commit(outbox)


def _count(own: Session, guard: Guard) -> tuple[int, bool]:
    """One atomic upsert; a block older than the block period starts a fresh count.
    Returns (failures, whether this failure started the block)."""
    now, cutoff = utcnow(), _block_cutoff()
    table = LoginAttempt.__table__
    stmt = ratelimit.upsert(own.get_bind(), table).values(
        tenant_id=guard.tenant_id,
        connection_id=guard.connection_id,
        identifier_key=guard.identifier_key,
        ip=guard.ip,
        failures=1,
        blocked_at=None,
        updated_at=now,
    )
    stale = table.c.blocked_at < cutoff
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.connection_id, table.c.identifier_key, table.c.ip],
        set_={
            "failures": case((stale, 1), else_=table.c.failures + 1),
            "blocked_at": case((stale, None), else_=table.c.blocked_at),
            "updated_at": now,
        },
    ).returning(table.c.id, table.c.failures)
    row_id, failures = own.execute(stmt).one()
    if failures < guard.max_attempts:
        return failures, False
    started = own.execute(
        update(LoginAttempt)
        .where(LoginAttempt.id == row_id, LoginAttempt.blocked_at.is_(None))
        .values(blocked_at=now)
        .execution_options(synchronize_session=False)
    )
    return failures, started.rowcount == 1


def _purge(own: Session) -> None:
    global _next_purge
    if time.monotonic() < _next_purge:
        return
    _next_purge = time.monotonic() + PURGE_INTERVAL_SECONDS
    own.execute(delete(LoginAttempt).where(LoginAttempt.updated_at < _block_cutoff()))


def _notify(own: Session, guard: Guard, user: User):
    """The blocked-account mail with an unblock link, in the counter's transaction."""
    if not has_request_context():
        return None  # links are made for the host the request came to
    tenant = own.get(Tenant, guard.tenant_id)
    raw = tickets.issue(own, user, "unblock")
    return mail.enqueue(
        own,
        tenant,
        to=user.email,
        template="blocked_account",
        kind="blocked_account",
        context={"unblock_link": absolute(f"unblock?ticket={raw}"), "ip": guard.raw_ip},
    )


def record_success(db: Session, guard: Guard) -> None:
    """A right password clears the pair's counter, in the caller's transaction."""
    if guard.counted:
        db.execute(
            delete(LoginAttempt).where(
                LoginAttempt.connection_id == guard.connection_id,
                LoginAttempt.identifier_key == guard.identifier_key,
                LoginAttempt.ip == guard.ip,
            )
        )


def unblock_user(db: Session, user: User) -> int:
    """Lift every brute-force block and counter of ``user`` (unblock link, password reset,
    admin), from every IP, in the caller's transaction. Returns the rows removed."""
    keys = {identifier_key(value) for value in (user.email, user.username) if value}
    if not keys:
        return 0
    removed = db.execute(
        delete(LoginAttempt).where(
            LoginAttempt.tenant_id == user.tenant_id,
            LoginAttempt.connection_id.in_([i.connection_id for i in user.identities]),
            LoginAttempt.identifier_key.in_(keys),
        )
    ).rowcount
    event("brute_force", "unblocked", user_id=user.user_id, rows=removed)
    return removed


# --- the unblock link ------------------------------------------------------------------------

bp = Blueprint("unblock", __name__)


def _page(status: int = 200, **context):
    return render_template("login/unblocked.html", tenant=current_tenant(), **context), status


@bp.get("/unblock")
def unblock_page():
    """A confirmation page: mail scanners follow links, so only the POST spends it."""
    raw = request.args.get("ticket")
    try:
        tickets.peek(get_db(), current_tenant().id, raw, "unblock")
    except tickets.TicketInvalid:
        return _page(400, screen="invalid")
    return _page(screen="confirm", ticket=raw)


@bp.post("/unblock")
def unblock_submit():
    db, tenant = get_db(), current_tenant()
    try:
        ticket = tickets.spend(db, tenant.id, request.form.get("ticket"), "unblock")
    except tickets.TicketInvalid:
        db.rollback()
        event("brute_force", "unblock_rejected")
        return _page(400, screen="invalid")
    user = accounts.get_user(db, tenant.id, ticket.user_pk)
    if user is not None:
        unblock_user(db, user)
    db.commit()
    return _page(screen="done")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
