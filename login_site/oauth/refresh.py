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
from sqlalchemy import ColumnElement
from sqlalchemy import FromClause
from sqlalchemy import Insert
from sqlalchemy import Row
from sqlalchemy import bindparam
from sqlalchemy import insert
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from login_site import config_cache
from login_site.db import core
from login_site.db import utcnow
from login_site.models import AccessToken
from login_site.models import Client
from login_site.models import RefreshToken
from login_site.models import Tenant
from login_site.models import User
from login_site.models.ids import new_secret
from login_site.oauth import tokens
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
    api = config_cache.api(db, tenant, audience)
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
) -> tuple[str, str]:
    """A new family's first token: (the token, its family id). Written at once, not at the
    next flush."""
    conf = settings(client)
    now = utcnow()
    raw, family_id = new_secret(), new_secret(16)
    core(db).execute(
        _INSERT,
        {
            "token_hash": sha256_hex(raw),
            "family_id": family_id,
            "tenant_id": tenant.id,
            "client_pk": client.id,
            "user_pk": user.id,
            "scope": scope,
            "audience": audience,
            "session_sid": sid,
            "auth_time": auth_time,
            "created_at": now,
            "expires_at": now + timedelta(seconds=conf.lifetime),
            "idle_expires_at": _idle_expiry(conf, now),
        },
    )
    return raw, family_id


def _idle_expiry(conf: Settings, now: datetime) -> datetime | None:
    return now + timedelta(seconds=conf.idle) if conf.idle else None


# --- prebuilt statements (docs/architecture.md, Performance) ----------------------------------
# Building a statement costs about as much CPU as running it, so the rotation path's are built
# once, over the tables (no ORM objects: the answer needs plain values). Bind parameters in
# UPDATE and INSERT statements may not share a column's name: hash, tenant, client, now,
# new_hash, idle_until.

_TOKENS = RefreshToken.__table__
_USERS = User.__table__

# What a redemption decides on and what the new tokens carry, with the user they are for:
# ``id`` and the columns tokens.user_claims reads.
_TOKEN_COLUMNS = (
    "tenant_id",
    "client_pk",
    "user_pk",
    "family_id",
    "scope",
    "audience",
    "session_sid",
    "auth_time",
    "expires_at",
    "idle_expires_at",
    "used_at",
    "revoked_at",
)
_USER_COLUMNS = ("id", "blocked", *tokens.USER_CLAIM_COLUMNS)
# A rotated token keeps its predecessor's family, grant and absolute expiry.
_INHERITED = (
    "family_id",
    "tenant_id",
    "client_pk",
    "user_pk",
    "scope",
    "audience",
    "session_sid",
    "auth_time",
    "expires_at",
)

_INSERT = insert(_TOKENS)

_SPEND = tokens.spend_once(
    _TOKENS,
    "token_hash",
    _TOKENS.c.revoked_at.is_(None),
    or_(_TOKENS.c.idle_expires_at.is_(None), _TOKENS.c.idle_expires_at > bindparam("now")),
)

_TOKEN_WITH_USER = (
    select(*(_TOKENS.c[name] for name in _TOKEN_COLUMNS), *(_USERS.c[n] for n in _USER_COLUMNS))
    .join_from(_TOKENS, _USERS, _USERS.c.id == _TOKENS.c.user_pk)
    .where(_TOKENS.c.token_hash == bindparam("hash"))
)

_TOUCH = (
    update(_TOKENS)
    .where(_TOKENS.c.token_hash == bindparam("hash"))
    .values(idle_expires_at=bindparam("idle_until"))
)


def _successor(source: FromClause, *where: ColumnElement[bool]) -> Insert:
    """INSERT the token that replaces ``source``'s: a new hash and idle window, the rest
    inherited."""
    rows = select(
        bindparam("new_hash", type_=_TOKENS.c.token_hash.type),
        bindparam("now", type_=_TOKENS.c.created_at.type),
        bindparam("idle_until", type_=_TOKENS.c.idle_expires_at.type),
        *(source.c[name] for name in _INHERITED),
    ).where(*where)
    return insert(_TOKENS).from_select(
        ["token_hash", "created_at", "idle_expires_at", *_INHERITED], rows
    )


_SUCCESSOR = _successor(_TOKENS, _TOKENS.c.token_hash == bindparam("hash"))

# PostgreSQL: spend, insert the successor and read the user in one round trip (WITH may hold
# data-modifying statements there, not on SQLite).
_spent = _SPEND.returning(*(_TOKENS.c[name] for name in _TOKEN_COLUMNS)).cte("spent")
_SPEND_AND_ROTATE = (
    select(*(_spent.c[name] for name in _TOKEN_COLUMNS), *(_USERS.c[n] for n in _USER_COLUMNS))
    .join_from(_spent, _USERS, _USERS.c.id == _spent.c.user_pk)
    .add_cte(_successor(_spent).cte("successor"))
)


def _is_live(token: Row, tenant: Tenant, client: Client, now: datetime) -> bool:
    """This client's, not revoked, within its absolute and idle lifetimes (``_SPEND``'s
    conditions but ``used_at``)."""
    return (
        token.tenant_id == tenant.id
        and token.client_pk == client.id
        and token.revoked_at is None
        and token.expires_at > now
        and (token.idle_expires_at is None or token.idle_expires_at > now)
    )


def find(db: Session, tenant: Tenant, client: Client, raw: str) -> Row | None:
    """The token, with its user, if it is this client's and still live (read only)."""
    token = core(db).execute(_TOKEN_WITH_USER, {"hash": sha256_hex(raw)}).one_or_none()
    return token if token is not None and _is_live(token, tenant, client, utcnow()) else None


def redeem(db: Session, tenant: Tenant, client: Client, raw: str) -> tuple[Row, str | None]:
    """Spend (rotating) or touch (non-rotating) a refresh token: (the token with its user,
    the refresh token that replaces it, if any).

    One conditional UPDATE decides between parallel requests; a spent token presented again
    outside the overlap window revokes its whole family (committed at once). The spend is not
    committed here: the caller commits it with the tokens it issues, or rolls back and the
    token is as it was.
    """
    conf = settings(client)
    now = utcnow()
    params = {"hash": sha256_hex(raw), "tenant": tenant.id, "client": client.id, "now": now}
    if not conf.rotating:
        token = find(db, tenant, client, raw)
        if token is None:
            raise InvalidGrantError(INVALID)
        if conf.idle:
            db.execute(_TOUCH, {**params, "idle_until": _idle_expiry(conf, now)})
        return token, None
    new_raw = new_secret()
    params.update(new_hash=sha256_hex(new_raw), idle_until=_idle_expiry(conf, now))
    if db.get_bind().dialect.name == "postgresql":
        token = core(db).execute(_SPEND_AND_ROTATE, params).one_or_none()
    elif core(db).execute(_SPEND, params).rowcount == 1:
        core(db).execute(_SUCCESSOR, params)
        token = core(db).execute(_TOKEN_WITH_USER, params).one()
    else:
        token = None
    if token is None:
        token = _presented_again(db, conf, tenant, client, params)
        core(db).execute(_SUCCESSOR, params)
    return token, new_raw


def _presented_again(
    db: Session, conf: Settings, tenant: Tenant, client: Client, params: dict
) -> Row:
    """The token could not be spent. A token rotated less than ``leeway`` seconds ago is
    honoured again (its successor may have been lost on the way); any other spent token
    revokes its family (reuse detection)."""
    token = db.execute(_TOKEN_WITH_USER, params).one_or_none()
    if token is None or token.tenant_id != tenant.id or token.client_pk != client.id:
        raise InvalidGrantError(INVALID)
    if token.used_at is not None and token.revoked_at is None:
        now = params["now"]
        if (
            conf.leeway
            and now - token.used_at <= timedelta(seconds=conf.leeway)
            and token.expires_at > now
        ):
            return token
        revoke_family(db, token.family_id)  # reuse detected
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
