"""Token Vault: upstream access and refresh tokens kept for the token-exchange grant.

Envelope encryption (checklist TV-01, TV-05): each tenant has AES-256-GCM data keys, stored
wrapped by the master keyring (``ENCRYPTION_KEYS``, Fernet, outside the database); a token set
is encrypted with the tenant's newest data key, with the row's tenant, identity and connection
as associated data, so a ciphertext moved to another row fails to decrypt. A tampered
ciphertext fails closed. ``login-site vault rotate`` re-wraps data keys under the newest master
key and, with ``--new-data-keys``, re-encrypts every token set under a fresh data key.

An expired upstream access token is refreshed once, by whichever request first takes the row's
refresh lease (one conditional UPDATE); parallel requests wait for the new version instead of
refreshing again (TV-04) — the lease is in the database, so this holds across workers and hosts.
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from login_site.db import utcnow
from login_site.models import Connection
from login_site.models import Identity
from login_site.models import TenantDataKey
from login_site.models import UpstreamToken
from login_site.models.ids import new_id
from login_site.vault import Keyring
from login_site.vault import keyring

EXPIRY_MARGIN_SECONDS = 30  # refresh an upstream token this close to its expiry
REFRESH_LEASE_SECONDS = 15  # longer than one bounded upstream call
WAIT_STEP_SECONDS = 0.1


class VaultError(Exception):
    """The stored token set cannot be used: ``reconnect`` says the user must log in with the
    connection again (revoked or missing upstream grant)."""

    def __init__(self, message: str, *, reconnect: bool = False):
        super().__init__(message)
        self.reconnect = reconnect


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str | None
    expires_at: datetime | None
    scope: str | None

    def expires_in(self) -> int | None:
        if self.expires_at is None:
            return None
        return max(0, int((self.expires_at - utcnow()).total_seconds()))

    def fresh(self, margin_seconds: float = EXPIRY_MARGIN_SECONDS) -> bool:
        return self.expires_at is None or self.expires_at > utcnow() + timedelta(
            seconds=margin_seconds
        )


# --- data keys -----------------------------------------------------------------------------


def _unwrap(row: TenantDataKey, ring: Keyring) -> AESGCM:
    return AESGCM(base64.b64decode(ring.decrypt(row.wrapped_key)))


def _current_data_key(db: Session, tenant_id: str, ring: Keyring) -> TenantDataKey:
    row = db.execute(
        select(TenantDataKey)
        .where(TenantDataKey.tenant_id == tenant_id)
        .order_by(TenantDataKey.created_at.desc(), TenantDataKey.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    return row if row is not None else new_data_key(db, tenant_id, ring)


def new_data_key(db: Session, tenant_id: str, ring: Keyring) -> TenantDataKey:
    raw = AESGCM.generate_key(bit_length=256)
    row = TenantDataKey(
        id=new_id("dk_"),
        tenant_id=tenant_id,
        wrapped_key=ring.encrypt(base64.b64encode(raw).decode()),
        created_at=utcnow(),
    )
    db.add(row)
    db.flush()
    return row


def _aad(row: UpstreamToken) -> bytes:
    return f"{row.tenant_id}|{row.identity_id}|{row.connection_id}".encode()


def _seal(db: Session, row: UpstreamToken, secrets: dict[str, Any], ring: Keyring) -> None:
    key = _current_data_key(db, row.tenant_id, ring)
    nonce = os.urandom(12)
    row.key_id = key.id
    row.nonce = nonce
    row.ciphertext = _unwrap(key, ring).encrypt(nonce, json.dumps(secrets).encode(), _aad(row))


def _open(db: Session, row: UpstreamToken, ring: Keyring) -> dict[str, Any]:
    key = db.get(TenantDataKey, row.key_id)
    if key is None or key.tenant_id != row.tenant_id:
        raise VaultError("the token set's data key is missing")
    try:
        plain = _unwrap(key, ring).decrypt(row.nonce, row.ciphertext, _aad(row))
        secrets = json.loads(plain)
    except (InvalidTag, ValueError) as exc:
        raise VaultError("the stored token set cannot be decrypted") from exc
    if not isinstance(secrets, dict) or not isinstance(secrets.get("access_token"), str):
        raise VaultError("the stored token set is not valid")
    return secrets


# --- token sets ----------------------------------------------------------------------------


def _expiry(tokens: dict[str, Any]) -> datetime | None:
    at = tokens.get("expires_at")
    return datetime.fromtimestamp(int(at), UTC) if isinstance(at, int | float) else None


def store(
    db: Session, tenant_id: str, identity: Identity, conn: Connection, tokens: dict[str, Any]
) -> UpstreamToken:
    """Keep (or replace) the identity's token set; an answer without a refresh token keeps the
    one we had (providers often return it only once)."""
    ring = keyring()
    row = db.execute(
        select(UpstreamToken).where(UpstreamToken.identity_id == identity.id)
    ).scalar_one_or_none()
    refresh_token = tokens.get("refresh_token")
    new = row is None
    if new:
        row = UpstreamToken(
            tenant_id=tenant_id, identity_id=identity.id, connection_id=conn.id, version=0
        )
    elif not refresh_token:
        try:
            refresh_token = _open(db, row, ring).get("refresh_token")
        except VaultError:
            refresh_token = None
    _seal(db, row, {"access_token": tokens["access_token"], "refresh_token": refresh_token}, ring)
    if new:
        db.add(row)  # only once sealed: nothing half-written is ever flushed
    row.scope = tokens.get("scope")
    row.expires_at = _expiry(tokens)
    row.version = (row.version or 0) + 1
    row.refreshing_until = None
    row.updated_at = utcnow()
    db.flush()
    return row


def _margin_seconds(row: UpstreamToken) -> float:
    """Refresh this early: 30 s, or a quarter of a short token's lifetime."""
    if row.expires_at is None:
        return EXPIRY_MARGIN_SECONDS
    lifetime = (row.expires_at - row.updated_at).total_seconds()
    return max(0.0, min(EXPIRY_MARGIN_SECONDS, lifetime / 4))


def token_set(db: Session, row: UpstreamToken) -> TokenSet:
    secrets = _open(db, row, keyring())
    return TokenSet(
        access_token=secrets["access_token"],
        refresh_token=secrets.get("refresh_token"),
        expires_at=row.expires_at,
        scope=row.scope,
    )


def find(db: Session, tenant_id: str, identity: Identity) -> UpstreamToken | None:
    row = db.execute(
        select(UpstreamToken).where(
            UpstreamToken.identity_id == identity.id, UpstreamToken.tenant_id == tenant_id
        )
    ).scalar_one_or_none()
    return row


def current_token(db: Session, conn: Connection, identity: Identity, refresher) -> TokenSet:
    """A usable upstream access token for ``identity``: the stored one while fresh, else one
    refreshed with the stored refresh token through ``refresher(refresh_token) -> dict``
    (the provider's token response), by one request at a time."""
    deadline = time.monotonic() + REFRESH_LEASE_SECONDS
    first_version = None
    while True:
        row = find(db, identity.tenant_id, identity)
        if row is None:
            raise VaultError("no token set is stored for this user", reconnect=True)
        tokens = token_set(db, row)
        first_version = row.version if first_version is None else first_version
        if tokens.fresh(_margin_seconds(row)):
            return tokens
        if row.version != first_version and tokens.fresh(0):
            return tokens  # another request refreshed it while we waited
        if not tokens.refresh_token:
            raise VaultError("the upstream access token expired", reconnect=True)
        now = utcnow()
        leased = db.execute(
            update(UpstreamToken)
            .where(
                UpstreamToken.id == row.id,
                UpstreamToken.version == row.version,
                (UpstreamToken.refreshing_until.is_(None)) | (UpstreamToken.refreshing_until < now),
            )
            .values(refreshing_until=now + timedelta(seconds=REFRESH_LEASE_SECONDS))
            .execution_options(synchronize_session=False)
        ).rowcount
        db.commit()
        if leased == 1:
            return _refresh(db, conn, identity, row.id, tokens, refresher)
        if time.monotonic() > deadline:
            raise VaultError("the upstream token is being refreshed; try again")
        time.sleep(WAIT_STEP_SECONDS)
        db.expire_all()


def _refresh(db, conn, identity, row_id: int, tokens: TokenSet, refresher) -> TokenSet:
    try:
        answer = refresher(tokens.refresh_token)
    except Exception:
        db.execute(
            update(UpstreamToken)
            .where(UpstreamToken.id == row_id)
            .values(refreshing_until=None)
            .execution_options(synchronize_session=False)
        )
        db.commit()
        raise
    kept: dict[str, Any] = {
        "access_token": answer["access_token"],
        "refresh_token": answer.get("refresh_token") or tokens.refresh_token,
        "scope": answer.get("scope") if isinstance(answer.get("scope"), str) else tokens.scope,
    }
    expires_in = answer.get("expires_in")
    if isinstance(expires_in, str) and expires_in.isdigit():
        expires_in = int(expires_in)
    if isinstance(expires_in, int | float):
        kept["expires_at"] = int(time.time()) + int(expires_in)
    db.expire_all()
    store(db, identity.tenant_id, identity, conn, kept)
    db.commit()
    row = find(db, identity.tenant_id, identity)
    return token_set(db, row)


# --- key rotation --------------------------------------------------------------------------


def rotate(db: Session, ring: Keyring, *, new_data_keys: bool = False) -> dict[str, int]:
    """Re-wrap every data key under the newest master key; with ``new_data_keys``, give each
    tenant a fresh data key, re-encrypt its token sets with it and drop the old keys."""
    counts = {"data_keys_rewrapped": 0, "token_sets_reencrypted": 0, "data_keys_dropped": 0}
    for key in db.execute(select(TenantDataKey)).scalars():
        key.wrapped_key = ring.rotate(key.wrapped_key)
        counts["data_keys_rewrapped"] += 1
    db.flush()
    if not new_data_keys:
        return counts
    tenants = set(db.execute(select(TenantDataKey.tenant_id).distinct()).scalars())
    fresh = {tenant_id: new_data_key(db, tenant_id, ring) for tenant_id in tenants}
    for row in db.execute(select(UpstreamToken)).scalars():
        secrets = _open(db, row, ring)
        key = fresh.get(row.tenant_id) or new_data_key(db, row.tenant_id, ring)
        nonce = os.urandom(12)
        row.key_id, row.nonce = key.id, nonce
        row.ciphertext = _unwrap(key, ring).encrypt(nonce, json.dumps(secrets).encode(), _aad(row))
        counts["token_sets_reencrypted"] += 1
    db.flush()
    keep = {k.id for k in fresh.values()}
    for key in db.execute(select(TenantDataKey)).scalars().all():
        if key.id not in keep:
            db.delete(key)
            counts["data_keys_dropped"] += 1
    db.flush()
    return counts
