"""One-time codes and magic-link tokens for the passwordless connections.

- Secrets come from the CSPRNG: a code of ``options.totp.length`` digits (6 by default),
  or a 256-bit token for a magic link. Only an HMAC keyed with ``SECRET_KEY`` is stored,
  so a database dump alone does not reveal a code (a plain hash of 6 digits would).
- One live code per (connection, identifier): issuing one clears the previous one's unique
  ``live_key`` in the same transaction (checklist PL-03).
- Lifetime ``options.totp.time_step`` seconds: Auth0's defaults, 180 s for email and 300 s
  for SMS (compat §10.3); NIST SP 800-63B allows up to 10 minutes.
- At most ``MAX_ATTEMPTS`` (3, as Auth0) tries per code, counted by taking an attempt slot
  with one conditional UPDATE before the comparison, so parallel guesses cannot get more
  comparisons than slots (checklist PL-02, PW-02). A right code gives its slot back.
- A code is spent by one conditional UPDATE on ``used_at``, checked by rowcount: of many
  parallel redemptions exactly one wins (PW-08).
- Sends are counted per identifier, per number prefix and per connection and day (SMS
  pumping, checklist PL-04); the per-IP limit of ``/passwordless/start`` is the rate
  limiter's (``RATE_LIMIT_PASSWORDLESS_START``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flask import current_app
from limits import parse as parse_limit
from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from login_site.db import utcnow
from login_site.models import Client
from login_site.models import Connection
from login_site.models import PasswordlessCode
from login_site.models import Tenant
from login_site.models.ids import new_id
from login_site.security import ratelimit
from login_site.security.secrets import sha256_hex

CODE_LENGTH = 6
MIN_CODE_LENGTH = 6  # checklist PL-01: at least 6 digits (20 bits)
MAX_CODE_LENGTH = 10
TTL_SECONDS = {"email": 180, "sms": 300}  # Auth0's defaults (compat §10.3)
MAX_TTL_SECONDS = 600  # NIST SP 800-63B out-of-band: 10 minutes
MAX_ATTEMPTS = 3  # Auth0: three wrong codes kill it
LINK_TOKEN_BYTES = 32
# Send limits, per tenant (connection option ``rate_limits`` overrides them).
SEND_LIMITS = {
    "per_identifier": "3/10 minutes",  # checklist PW-11: the 4th send in 10 min is refused
    "per_prefix": "10/hour",  # SMS: numbers sharing all but the last 4 digits (PW-10)
    "per_day": "1000/day",  # SMS: per connection, a daily spend cap (PL-04)
}


class CodeRejected(Exception):
    """Wrong, expired, used, superseded or exhausted. ``dead`` means no try can succeed
    any more: the user needs a new code."""

    def __init__(self, dead: bool):
        super().__init__("dead" if dead else "wrong")
        self.dead = dead


class SendLimited(Exception):
    """A send limit was reached; ``limit`` is its text (``"3/10 minutes"``)."""

    def __init__(self, limit: str, scope: str):
        super().__init__(scope)
        self.limit = limit
        self.scope = scope

    @property
    def window_seconds(self) -> int:
        return int(parse_limit(self.limit).get_expiry())

    @property
    def amount(self) -> int:
        return int(parse_limit(self.limit).amount)


# --- settings -------------------------------------------------------------------------------


def code_length(conn: Connection) -> int:
    return int(((conn.options or {}).get("totp") or {}).get("length") or CODE_LENGTH)


def ttl_seconds(conn: Connection) -> int:
    step = ((conn.options or {}).get("totp") or {}).get("time_step")
    return int(step or TTL_SECONDS.get(conn.strategy, TTL_SECONDS["email"]))


def send_limits(conn: Connection) -> dict[str, str]:
    return {**SEND_LIMITS, **((conn.options or {}).get("rate_limits") or {})}


def check_options(options: Mapping[str, Any]) -> str | None:
    """The first problem with ``totp`` and ``rate_limits``, named by key, or None."""
    totp = options.get("totp")
    if totp is not None:
        if not isinstance(totp, dict):
            return "options.totp must be an object"
        length = totp.get("length")
        if length is not None and (
            not isinstance(length, int) or not MIN_CODE_LENGTH <= length <= MAX_CODE_LENGTH
        ):
            return f"options.totp.length must be an integer {MIN_CODE_LENGTH}-{MAX_CODE_LENGTH}"
        step = totp.get("time_step")
        if step is not None and (not isinstance(step, int) or not 30 <= step <= MAX_TTL_SECONDS):
            return f"options.totp.time_step must be seconds, 30-{MAX_TTL_SECONDS}"
    limits = options.get("rate_limits")
    if limits is not None:
        if not isinstance(limits, dict) or set(limits) - set(SEND_LIMITS):
            return f"options.rate_limits may set {', '.join(SEND_LIMITS)}"
        for key, value in limits.items():
            try:
                parse_limit(value)
            except (TypeError, ValueError):
                return f"options.rate_limits.{key} must be a limit such as '3/10 minutes'"
    return None


# --- secrets --------------------------------------------------------------------------------


def new_code(length: int = CODE_LENGTH) -> str:
    return "".join(secrets.choice(string.digits) for _ in range(length))


def _digest(code_id: str, secret: str) -> str:
    key = str(current_app.config["SECRET_KEY"]).encode()
    message = f"{code_id}:{secret}".encode("utf-8", "surrogatepass")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def live_key(conn: Connection, identifier: str) -> str:
    return f"{conn.id}:{identifier}"


# --- sending --------------------------------------------------------------------------------


def check_send_limits(tenant: Tenant, conn: Connection, identifier: str) -> None:
    """Count this send; :class:`SendLimited` once a limit is passed. Runs before anything
    is stored or sent."""
    limits = send_limits(conn)
    key = sha256_hex(identifier)[:32]
    checks = [("per_identifier", key)]
    if conn.strategy == "sms":
        checks += [("per_prefix", sha256_hex(identifier[:-4])[:32]), ("per_day", "all")]
    for scope, value in checks:
        if not ratelimit.counter_hit(
            limits[scope], "passwordless", tenant.id, conn.id, scope, value
        ):
            raise SendLimited(limits[scope], scope)


def issue(
    db: Session,
    tenant: Tenant,
    conn: Connection,
    client: Client,
    identifier: str,
    *,
    send: str,
    tx_id: str | None = None,
    auth_params: dict[str, Any] | None = None,
) -> tuple[PasswordlessCode, str]:
    """A new live code (``send="code"``) or magic-link token (``"link"``) for
    ``identifier``; the previous one dies in the same transaction. Flushed, not committed.
    Returns the row and the secret, which exists nowhere else."""
    key = live_key(conn, identifier)
    if send == "code":
        secret = new_code(code_length(conn))
    else:
        secret = secrets.token_urlsafe(LINK_TOKEN_BYTES)
    # Old rows of this identifier go once they cannot matter (the table stays small).
    db.execute(
        delete(PasswordlessCode).where(
            PasswordlessCode.connection_id == conn.id,
            PasswordlessCode.identifier == identifier,
            PasswordlessCode.expires_at < utcnow() - timedelta(days=1),
        )
    )
    for attempt in (1, 2):
        now = utcnow()
        # Taking the old row's key first also serialises two concurrent sends (row lock).
        db.execute(
            update(PasswordlessCode)
            .where(PasswordlessCode.live_key == key)
            .values(live_key=None)
            .execution_options(synchronize_session=False)
        )
        code_id = new_id("plc_")
        row = PasswordlessCode(
            id=code_id,
            tenant_id=tenant.id,
            connection_id=conn.id,
            client_pk=client.id,
            identifier=identifier,
            live_key=key,
            secret_hash=_digest(code_id, secret),
            send=send,
            tx_id=tx_id,
            auth_params=auth_params,
            attempts=0,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_seconds(conn)),
        )
        try:
            with db.begin_nested():
                db.add(row)
                db.flush()
        except IntegrityError:
            # A concurrent send inserted its live row between our UPDATE and INSERT.
            if attempt == 2:
                raise
            continue
        return row, secret
    raise AssertionError("unreachable")


def kill(db: Session, row: PasswordlessCode) -> None:
    """The code can no longer be used (its message could not be sent). Committed."""
    db.execute(
        update(PasswordlessCode)
        .where(PasswordlessCode.id == row.id, PasswordlessCode.live_key.is_not(None))
        .values(live_key=None)
        .execution_options(synchronize_session=False)
    )
    db.commit()


# --- redeeming ------------------------------------------------------------------------------


def find_live(
    db: Session, tenant: Tenant, conn: Connection, identifier: str
) -> PasswordlessCode | None:
    row = db.execute(
        select(PasswordlessCode).where(PasswordlessCode.live_key == live_key(conn, identifier))
    ).scalar_one_or_none()
    if row is None or row.tenant_id != tenant.id:
        return None
    return row


def redeem(
    db: Session,
    tenant: Tenant,
    conn: Connection,
    identifier: str,
    secret: str,
    *,
    client_pk: str,
    tx_id: str | None = None,
    consume: bool = True,
    check_tx: bool = True,
) -> PasswordlessCode:
    """Check ``secret`` for the live code of ``identifier``, bound to the client that asked
    for it and, when a hosted login page asked, to that login transaction. With
    ``consume`` the code is spent (one winner); without (``/passwordless/verify``) it stays
    live. Every try is committed before this returns or raises :class:`CodeRejected`."""
    row = find_live(db, tenant, conn, identifier)
    if row is None:
        _digest("none", secret or "")  # about the same work as a real comparison
        db.commit()
        raise CodeRejected(dead=True)
    now = utcnow()
    slot = db.execute(
        update(PasswordlessCode)
        .where(
            PasswordlessCode.id == row.id,
            PasswordlessCode.live_key.is_not(None),
            PasswordlessCode.used_at.is_(None),
            PasswordlessCode.expires_at > now,
            PasswordlessCode.attempts < MAX_ATTEMPTS,
        )
        .values(attempts=PasswordlessCode.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    db.commit()
    if slot.rowcount != 1:
        raise CodeRejected(dead=True)
    right = hmac.compare_digest(row.secret_hash, _digest(row.id, secret or ""))
    bound = row.client_pk == client_pk and (not check_tx or row.tx_id is None or row.tx_id == tx_id)
    if not (right and bound):
        fresh = db.get(PasswordlessCode, row.id, populate_existing=True)
        db.commit()
        raise CodeRejected(dead=fresh is None or fresh.attempts >= MAX_ATTEMPTS)
    if not consume:
        db.execute(
            update(PasswordlessCode)
            .where(PasswordlessCode.id == row.id, PasswordlessCode.attempts > 0)
            .values(attempts=PasswordlessCode.attempts - 1)
            .execution_options(synchronize_session=False)
        )
        db.commit()
        return row
    spent = db.execute(
        update(PasswordlessCode)
        .where(
            PasswordlessCode.id == row.id,
            PasswordlessCode.used_at.is_(None),
            PasswordlessCode.live_key.is_not(None),
            PasswordlessCode.expires_at > now,
        )
        .values(used_at=now, live_key=None)
        .execution_options(synchronize_session=False)
    )
    db.commit()
    if spent.rowcount != 1:
        raise CodeRejected(dead=True)
    return row
