"""Refresh tokens: issue, rotate with reuse detection, revoke by family.

A client's ``refresh_token`` settings follow Auth0's names: ``rotation_type``
(``rotating`` | ``non-rotating``), ``expiration_type``, ``token_lifetime`` (absolute, s),
``idle_token_lifetime`` (s) and ``leeway`` (the overlap window in which the token just
rotated may be presented again, default 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

from authlib.oauth2.rfc6749.errors import InvalidGrantError
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from login_site.db import returns_updated_rows
from login_site.db import utcnow
from login_site.models import AccessToken
from login_site.models import Client
from login_site.models import RefreshToken
from login_site.models import ResourceServer
from login_site.models import Tenant
from login_site.models import User
from login_site.models.ids import new_secret
from login_site.security.secrets import sha256_hex

DEFAULT_TOKEN_LIFETIME = 2_592_000  # 30 days, Auth0's default absolute lifetime
DEFAULT_IDLE_LIFETIME = 1_296_000  # 15 days
NON_EXPIRING_LIFETIME = 10 * 365 * 86400
INVALID = "Unknown or invalid refresh token."


@dataclass(frozen=True)
class Settings:
    rotating: bool
    leeway: int
    lifetime: int
    idle: int | None


def settings(client: Client) -> Settings:
    conf = (client.extra or {}).get("refresh_token") or {}
    expiring = conf.get("expiration_type", "expiring") == "expiring"
    return Settings(
        rotating=conf.get("rotation_type", "rotating") == "rotating",
        leeway=max(int(conf.get("leeway", 0) or 0), 0),
        lifetime=int(conf.get("token_lifetime") or DEFAULT_TOKEN_LIFETIME)
        if expiring
        else NON_EXPIRING_LIFETIME,
        idle=int(conf.get("idle_token_lifetime") or DEFAULT_IDLE_LIFETIME) if expiring else None,
    )


def allowed(db: Session, tenant: Tenant, client: Client, scope: str, audience: str | None) -> bool:
    """``offline_access`` granted, the client may refresh, and the API allows offline access."""
    if "offline_access" not in scope.split() or "refresh_token" not in (client.grant_types or []):
        return False
    if audience is None:
        return True
    api = db.execute(
        select(ResourceServer).where(
            ResourceServer.tenant_id == tenant.id, ResourceServer.identifier == audience
        )
    ).scalar_one_or_none()
    return bool(api and api.allow_offline_access)


def issue(
    db: Session,
    tenant: Tenant,
    client: Client,
    user: User,
    *,
    scope: str,
    audience: str | None,
    sid: str | None,
    auth_time: datetime,
    family_id: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[str, RefreshToken]:
    conf = settings(client)
    now = utcnow()
    raw = new_secret()
    row = RefreshToken(
        token_hash=sha256_hex(raw),
        family_id=family_id or new_secret(16),
        tenant_id=tenant.id,
        client_pk=client.id,
        user_pk=user.id,
        scope=scope,
        audience=audience,
        session_sid=sid,
        auth_time=auth_time,
        created_at=now,
        expires_at=expires_at or now + timedelta(seconds=conf.lifetime),
        idle_expires_at=now + timedelta(seconds=conf.idle) if conf.idle else None,
    )
    db.add(row)
    return raw, row


def _live(now: datetime):
    return (
        RefreshToken.revoked_at.is_(None),
        RefreshToken.expires_at > now,
        (RefreshToken.idle_expires_at.is_(None)) | (RefreshToken.idle_expires_at > now),
    )


def find(db: Session, tenant: Tenant, client: Client, raw: str) -> RefreshToken | None:
    """The token if it is this client's and still live (read only)."""
    row = db.get(RefreshToken, sha256_hex(raw))
    now = utcnow()
    if row is None or row.tenant_id != tenant.id or row.client_pk != client.id:
        return None
    if row.revoked_at is not None or row.expires_at <= now:
        return None
    if row.idle_expires_at is not None and row.idle_expires_at <= now:
        return None
    return row


def redeem(db: Session, tenant: Tenant, client: Client, raw: str) -> tuple[RefreshToken, bool]:
    """Spend (rotating) or touch (non-rotating) a refresh token.

    Returns the row and whether a new refresh token must be issued. One conditional
    UPDATE decides between parallel requests; a spent token presented again outside
    the overlap window revokes its whole family.
    """
    conf = settings(client)
    token_hash = sha256_hex(raw)
    now = utcnow()
    base = (
        RefreshToken.token_hash == token_hash,
        RefreshToken.tenant_id == tenant.id,
        RefreshToken.client_pk == client.id,
        *_live(now),
    )
    if not conf.rotating:
        row = find(db, tenant, client, raw)
        if row is None:
            raise InvalidGrantError(INVALID)
        if conf.idle:
            row.idle_expires_at = now + timedelta(seconds=conf.idle)
            db.commit()
        return row, False

    spend = update(RefreshToken).where(*base, RefreshToken.used_at.is_(None)).values(used_at=now)
    if returns_updated_rows(db):
        won = db.execute(spend.returning(RefreshToken)).scalar_one_or_none()
        db.commit()
    else:
        spent = db.execute(spend)
        db.commit()
        won = db.get(RefreshToken, token_hash) if spent.rowcount == 1 else None
    if won is not None:
        return won, True
    row = db.get(RefreshToken, token_hash)
    if row is None or row.tenant_id != tenant.id or row.client_pk != client.id:
        raise InvalidGrantError(INVALID)
    db.refresh(row)
    if row.used_at is not None and row.revoked_at is None:
        if (
            conf.leeway
            and now - row.used_at <= timedelta(seconds=conf.leeway)
            and row.expires_at > now
        ):
            return row, True
        revoke_family(db, row.family_id)  # reuse detected
        db.commit()
    raise InvalidGrantError(INVALID)


def revoke_family(db: Session, family_id: str) -> None:
    now = utcnow()
    db.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    db.execute(
        update(AccessToken)
        .where(AccessToken.refresh_family == family_id, AccessToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def revoke_for_user(db: Session, user_pk: int) -> None:
    """Password change, reset, block, delete: every refresh token of the user dies."""
    families = db.execute(
        select(RefreshToken.family_id).where(RefreshToken.user_pk == user_pk).distinct()
    ).scalars()
    for family_id in list(families):
        revoke_family(db, family_id)
