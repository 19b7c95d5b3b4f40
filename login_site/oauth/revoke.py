"""``/oauth/revoke`` (RFC 7009): refresh tokens (their whole family) and our opaque
access tokens. Always 200 with an empty body once the client is authenticated."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from login_site.db import utcnow
from login_site.models import AccessToken
from login_site.models import Client
from login_site.models import RefreshToken
from login_site.models import Tenant
from login_site.oauth import refresh
from login_site.security.secrets import sha256_hex


def revoke_token(db: Session, tenant: Tenant, client: Client, token: str) -> None:
    token_hash = sha256_hex(token)
    row = db.get(RefreshToken, token_hash)
    if row is not None and row.tenant_id == tenant.id and row.client_pk == client.id:
        refresh.revoke_family(db, row.family_id)
    db.execute(
        update(AccessToken)
        .where(
            AccessToken.token_hash == token_hash,
            AccessToken.tenant_id == tenant.id,
            AccessToken.client_pk == client.id,
            AccessToken.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )
    db.commit()
