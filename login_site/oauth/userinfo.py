"""``/userinfo`` (OIDC Core §5.3): bearer from the header or the form body (RFC 6750 §2)."""

from __future__ import annotations

from flask import g
from flask import request
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


def bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    from_header = header[7:].strip() if header[:7].lower() == "bearer " else None
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
    # On the session's connection: plain columns need nothing of the ORM's execution layer.
    hashed = sha256_hex(token)
    row = db.connection().execute(_TOKEN_WITH_USER, {"token_hash": hashed}).one_or_none()
    if (
        row is None
        or row.tenant_id != tenant.id
        or row.revoked_at is not None
        or row.expires_at <= utcnow()
        or row.user_pk is None
        or "openid" not in row.scope.split()
    ):
        raise InvalidToken("Invalid or expired access token.")
    g.cors_client_pk = row.client_pk
    if row.user_id is None or row.blocked:  # no such user (outer join) or blocked
        raise InvalidToken("Invalid or expired access token.")
    return tokens.user_claims(row, row.scope)
