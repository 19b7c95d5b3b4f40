"""The dashboard as a client of our own hosted login (authorization code + PKCE).

Before the redirect to ``/authorize``, ``state``, the PKCE verifier and the nonce go into a
signed, short-lived cookie on ``/dashboard`` (the Flask session cannot hold them: a login
starts a fresh session). The callback takes them back, checks ``state``, and spends the code
in-process with one conditional UPDATE, checking client, redirect URI, PKCE and nonce.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import asdict
from dataclasses import dataclass
from urllib.parse import urlencode

from itsdangerous import BadSignature
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import update
from sqlalchemy.orm import Session

from login_site.db import utcnow
from login_site.models import AuthorizationCode
from login_site.models import Client
from login_site.models import Tenant
from login_site.models.ids import new_secret
from login_site.security.secrets import same
from login_site.security.secrets import sha256_hex

PENDING_TTL_SECONDS = 900
COOKIE_PATH = "/dashboard"
SCOPE = "openid profile email"


@dataclass(frozen=True)
class Pending:
    """One login the dashboard started: what the callback must see again."""

    state: str
    verifier: str
    nonce: str
    redirect_uri: str
    client_id: str
    tenant_id: str
    next: str = ""
    connection: str = ""


def new_pending(
    tenant: Tenant, client: Client, redirect_uri: str, *, next_url: str = "", connection: str = ""
) -> Pending:
    return Pending(
        state=new_secret(24),
        verifier=new_secret(48),
        nonce=new_secret(16),
        redirect_uri=redirect_uri,
        client_id=client.client_id,
        tenant_id=tenant.id,
        next=next_url,
        connection=connection,
    )


def challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorize_url(base: str, pending: Pending, *, prompt: str | None = None) -> str:
    """``{base}authorize?…`` for this pending login (``base`` is the tenant's issuer)."""
    params = {
        "client_id": pending.client_id,
        "redirect_uri": pending.redirect_uri,
        "response_type": "code",
        "scope": SCOPE,
        "state": pending.state,
        "nonce": pending.nonce,
        "code_challenge": challenge(pending.verifier),
        "code_challenge_method": "S256",
    }
    if pending.connection:
        params["connection"] = pending.connection
    if prompt:
        params["prompt"] = prompt
    return f"{base}authorize?{urlencode(params)}"


def _serializer(secret_key: str, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=f"login_site.dashboard.{purpose}")


def seal(secret_key: str, purpose: str, pending: Pending) -> str:
    return _serializer(secret_key, purpose).dumps(asdict(pending))


def unseal(secret_key: str, purpose: str, value: str | None, state: str | None) -> Pending | None:
    """The pending login in the cookie ``value`` if it is ours, fresh, and for ``state``."""
    if not value or not state:
        return None
    try:
        data = _serializer(secret_key, purpose).loads(value, max_age=PENDING_TTL_SECONDS)
        pending = Pending(**data)
    except (BadSignature, TypeError, ValueError):
        return None
    return pending if same(pending.state, state) else None


def redeem(
    db: Session, tenant: Tenant, client: Client, code: str | None, pending: Pending
) -> AuthorizationCode | None:
    """Spend ``code`` once (``UPDATE … WHERE used_at IS NULL``); the row if it was issued to
    ``client`` for this pending login, else ``None``."""
    if not code or len(code) > 512:
        return None
    code_hash = sha256_hex(code)
    now = utcnow()
    spent = db.execute(
        update(AuthorizationCode)
        .where(
            AuthorizationCode.code_hash == code_hash,
            AuthorizationCode.tenant_id == tenant.id,
            AuthorizationCode.client_pk == client.id,
            AuthorizationCode.used_at.is_(None),
            AuthorizationCode.expires_at > now,
        )
        .values(used_at=now)
    )
    db.commit()
    if spent.rowcount != 1:
        return None
    row = db.get(AuthorizationCode, code_hash, populate_existing=True)
    if (
        row is None
        or row.redirect_uri != pending.redirect_uri
        or row.code_challenge_method != "S256"
        or not same(row.code_challenge, challenge(pending.verifier))
        or not same(row.nonce, pending.nonce)
    ):
        return None
    return row
