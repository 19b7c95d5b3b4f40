"""Server-side login sessions. The browser cookie holds only a random id; the record
(in the database) is what makes a session alive, so logout and revocation are real."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import bindparam
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from login_site.db import utcnow
from login_site.models import LoginSession
from login_site.models import Tenant
from login_site.models import User
from login_site.models.ids import new_secret
from login_site.security.secrets import sha256_hex

# last_seen_at is written at most this often, to keep reads cheap.
TOUCH_INTERVAL = timedelta(minutes=5)

# Built once (docs/architecture.md, Prebuilt statements): every /authorize with a cookie reads it.
_BY_ID_HASH = select(LoginSession).where(LoginSession.id_hash == bindparam("id_hash"))


def lifetimes(tenant: Tenant, config) -> tuple[timedelta, timedelta]:
    absolute = float(tenant.setting("session_lifetime") or config["SESSION_LIFETIME_HOURS"])
    idle = float(tenant.setting("idle_session_lifetime") or config["SESSION_IDLE_HOURS"])
    return timedelta(hours=absolute), timedelta(hours=idle)


def start(
    db: Session,
    tenant: Tenant,
    user: User,
    connection: str,
    config,
    *,
    ip: str | None = None,
    user_agent: str | None = None,
) -> tuple[str, LoginSession]:
    raw = new_secret()
    absolute, _ = lifetimes(tenant, config)
    now = utcnow()
    record = LoginSession(
        id_hash=sha256_hex(raw),
        sid=new_secret(16),
        tenant_id=tenant.id,
        user_pk=user.id,
        connection=connection,
        auth_time=now,
        last_seen_at=now,
        expires_at=now + absolute,
        ip=ip,
        user_agent=(user_agent or "")[:500],
    )
    db.add(record)
    return raw, record


def load(db: Session, tenant: Tenant, raw: str | None, config) -> LoginSession | None:
    """The live session for this cookie value on this tenant, else ``None``."""
    if not raw:
        return None
    record = db.execute(_BY_ID_HASH, {"id_hash": sha256_hex(raw)}).scalar_one_or_none()
    if record is None or record.tenant_id != tenant.id or record.revoked_at is not None:
        return None
    now = utcnow()
    _, idle = lifetimes(tenant, config)
    if record.expires_at <= now or record.last_seen_at + idle <= now:
        return None
    if now - record.last_seen_at > TOUCH_INTERVAL:
        record.last_seen_at = now
        db.commit()
    return record


def revoke(db: Session, raw: str | None) -> None:
    if raw:
        db.execute(
            update(LoginSession)
            .where(LoginSession.id_hash == sha256_hex(raw), LoginSession.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )


def revoke_all_for_user(db: Session, user_pk: int) -> None:
    db.execute(
        update(LoginSession)
        .where(LoginSession.user_pk == user_pk, LoginSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
