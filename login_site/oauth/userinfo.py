"""``/userinfo`` (OIDC Core §5.3): bearer from the header or the form body (RFC 6750 §2)."""

from __future__ import annotations

from flask import g
from flask import request
from sqlalchemy import Row
from sqlalchemy import bindparam
from sqlalchemy import select
from sqlalchemy.orm import Session

from login_site.db import utcnow
from login_site.errors import InvalidRequest
from login_site.errors import InvalidToken
from login_site.models import AccessToken
from login_site.models import Tenant
from login_site.models import User
from login_site.oauth import tokens
from login_site.security.secrets import sha256_hex

MAX_TOKEN_LENGTH = 8192


def bearer_of(header: str) -> str:
    """The token of an ``Authorization: Bearer`` header (RFC 6750 §2.1), else ""."""
    return header[7:].strip() if header[:7].lower() == "bearer " else ""


def bearer_token() -> str:
    from_header = bearer_of(request.headers.get("Authorization", ""))
    from_body = request.form.get("access_token") if request.method == "POST" else None
    if from_header and from_body:
        raise InvalidRequest("Send the access token in one place only.")
    token = from_header or from_body
    if not token:
        raise InvalidToken("Missing access token.")
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("Invalid access token.")
    return token


# Built once (building a statement costs as much CPU as running it): the token by its hash,
# with its user, as plain columns (no ORM objects to build for a read-only answer).
_TOKEN_WITH_USER = (
    select(
        AccessToken.tenant_id,
        AccessToken.client_pk,
        AccessToken.revoked_at,
        AccessToken.expires_at,
        AccessToken.scope,
        AccessToken.user_pk,
        User.blocked,
        *(getattr(User, name) for name in tokens.USER_CLAIM_COLUMNS),
    )
    .outerjoin(User, User.id == AccessToken.user_pk)
    .where(AccessToken.token_hash == bindparam("token_hash"))
)


def claims_for(db: Session, tenant: Tenant, token: str) -> dict:
    """Every token we issued is recorded by hash, JWT ones too, so one lookup
    decides: an ID token or another tenant's token finds no row. The token's user comes
    with it, in the same query."""
    row = token_row(db, tenant.id, token)
    if row is None:
        raise InvalidToken("Invalid or expired access token.")
    g.cors_client_pk = row.client_pk
    if not row_has_user(row):
        raise InvalidToken("Invalid or expired access token.")
    return tokens.user_claims(row, row.scope)


def token_row(db: Session, tenant_id: str, token: str) -> Row | None:
    """The live ``openid`` access token of this tenant, with its user's columns (``user_id``
    None if the user is gone), else None."""
    # On the session's connection: plain columns need nothing of the ORM's execution layer.
    hashed = sha256_hex(token)
    row = db.connection().execute(_TOKEN_WITH_USER, {"token_hash": hashed}).one_or_none()
    if (
        row is None
        or row.tenant_id != tenant_id
        or row.revoked_at is not None
        or row.expires_at <= utcnow()
        or row.user_pk is None
        or "openid" not in row.scope.split()
    ):
        return None
    return row


def row_has_user(row: Row) -> bool:
    """The token's user exists (outer join) and is not blocked."""
    return row.user_id is not None and not row.blocked


def answer_outside_flask(db: Session, tenant_id: str, token: str) -> dict | None:
    """The claims for a request answered in front of Flask (``oauth/fastpath.py``), or None
    for anything but a valid token of a user who may sign in: Flask then gives the error."""
    row = token_row(db, tenant_id, token)
    if row is None or not row_has_user(row):
        return None
    return tokens.user_claims(row, row.scope)
