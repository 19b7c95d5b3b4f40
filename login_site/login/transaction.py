"""Stored login transactions, bound to the browser that started them."""

from __future__ import annotations

from datetime import timedelta

from flask import session
from sqlalchemy.orm import Session

from login_site import config_cache
from login_site.db import utcnow
from login_site.errors import PageError
from login_site.i18n import N_
from login_site.models import LoginTransaction
from login_site.models import Tenant
from login_site.models.ids import new_secret
from login_site.oauth.authorize import AuthorizeRequest
from login_site.security.secrets import same
from login_site.security.secrets import sha256_hex

BROWSER_KEY = "bx"

EXPIRED = PageError(
    N_("Your login took too long"),
    N_(
        "This login page has expired or was opened in another browser. "
        "Go back to the application and start again."
    ),
)


def browser_secret() -> str:
    """A random value in this browser's session cookie that transactions are bound to."""
    value = session.get(BROWSER_KEY)
    if not value:
        value = new_secret(16)
        session[BROWSER_KEY] = value
    return value


def create(
    db: Session, tenant: Tenant, areq: AuthorizeRequest, ttl_seconds: int, extra: dict | None = None
) -> str:
    tx_id = new_secret(24)
    now = utcnow()
    db.add(
        LoginTransaction(
            id=tx_id,
            tenant_id=tenant.id,
            client_pk=areq.client.id,
            params={**areq.to_params(), **(extra or {})},
            browser_hash=sha256_hex(browser_secret()),
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_seconds),
        )
    )
    db.commit()
    return tx_id


def load(
    db: Session, tenant: Tenant, tx_id: str | None
) -> tuple[LoginTransaction, AuthorizeRequest]:
    if not tx_id or len(tx_id) > 64:
        raise EXPIRED
    tx = db.get(LoginTransaction, tx_id)
    secret = session.get(BROWSER_KEY)
    if (
        tx is None
        or tx.tenant_id != tenant.id
        or tx.completed_at is not None
        or tx.expires_at <= utcnow()
        or not secret
        or not same(tx.browser_hash, sha256_hex(secret))
    ):
        raise EXPIRED
    client = config_cache.client_by_pk(db, tenant, tx.client_pk)
    if client is None:
        raise EXPIRED
    return tx, AuthorizeRequest.from_params(client, tx.params)
