"""Tenant signing keys (RS256 only: Auth0 SDKs parse every JWKS key as RSA)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import weakref
from datetime import timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwk import RSAKey
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from login_site.db import utcnow
from login_site.models import SigningKey
from login_site.models import Tenant
from login_site.vault import Keyring

DEFAULT_KEY_SIZE = 2048
PUBLISHED_STATES = ("next", "current", "previous")
_PUBLIC_MEMBERS = ("kty", "n", "e")


def _kid(public_jwk: dict) -> str:
    """RFC 7638 thumbprint: stable and unique per key."""
    canonical = '{{"e":"{}","kty":"RSA","n":"{}"}}'.format(public_jwk["e"], public_jwk["n"])
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def generate_key(
    db: Session,
    tenant: Tenant,
    ring: Keyring,
    *,
    state: str = "current",
    key_size: int = DEFAULT_KEY_SIZE,
) -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=max(key_size, 2048))
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    full = RSAKey.import_key(pem).as_dict(private=False)
    public = {k: full[k] for k in _PUBLIC_MEMBERS}
    key = SigningKey(
        kid=_kid(public),
        tenant_id=tenant.id,
        alg="RS256",
        state=state,
        public_jwk=public,
        private_pem_enc=ring.encrypt(pem),
        current_since=utcnow() if state == "current" else None,
    )
    db.add(key)
    db.flush()
    return key


def _key_size(tenant: Tenant) -> int:
    return int((tenant.setting("signing_keys") or {}).get("key_size", DEFAULT_KEY_SIZE))


def ensure_signing_keys(db: Session, tenant: Tenant, ring: Keyring) -> list[SigningKey]:
    """A current key, and a next key published beside it: those missing are made (and
    returned)."""
    made = []
    for state in ("current", "next"):
        if _key_in(db, tenant.id, state) is None:
            made.append(generate_key(db, tenant, ring, state=state, key_size=_key_size(tenant)))
    return made


def _key_in(db: Session, tenant_id: str, state: str) -> SigningKey | None:
    return db.execute(
        select(SigningKey)
        .where(SigningKey.tenant_id == tenant_id, SigningKey.state == state)
        .order_by(SigningKey.created_at.desc())
        .limit(1)
    ).scalar_one_or_none()


def current_key(db: Session, tenant_id: str) -> SigningKey | None:
    return _key_in(db, tenant_id, "current")


def rotate(db: Session, tenant: Tenant, ring: Keyring, *, keep_seconds: int = 36000) -> SigningKey:
    """Auth0's rotation: the next key becomes current, the current one previous, and a new
    next key is made. The next key is published from the moment it is made, so every JWKS a
    relying party (or another worker's cache) holds already has the key that signs from now
    on. A tenant without a next key (made before there were any) gets a new current key at
    once. Previous keys stay published until every token they signed has expired
    (``keep_seconds``: the longest token lifetime, or the tenant's
    ``signing_keys.keep_previous_days`` if longer), then they are retired."""
    days = (tenant.setting("signing_keys") or {}).get("keep_previous_days") or 0
    keep = timedelta(seconds=max(keep_seconds, int(days) * 86400))
    now = utcnow()
    for key in db.execute(
        select(SigningKey).where(SigningKey.tenant_id == tenant.id, SigningKey.state == "previous")
    ).scalars():
        if key.rotated_at is not None and key.rotated_at + keep <= now:
            key.state = "revoked"
    old = current_key(db, tenant.id)
    if old is not None:
        old.state = "previous"
        old.rotated_at = now
    promoted = _key_in(db, tenant.id, "next")
    if promoted is None:
        promoted = generate_key(db, tenant, ring, key_size=_key_size(tenant))
    else:
        promoted.state = "current"
        promoted.current_since = now
    generate_key(db, tenant, ring, state="next", key_size=_key_size(tenant))
    forget_signer(tenant.id)
    return promoted


# The current signer (kid, parsed key) per database and tenant, for a few seconds: signing
# then needs no query. This cache is not keyed by a stored version, and that is safe here
# because a stale signer is harmless: rotate() keeps the replaced key published as
# "previous" for at least the longest token lifetime, so a token a worker signs with it
# during the next SIGNER_CACHE_SECONDS still verifies against the JWKS. Keys are only
# retired by a later rotation, long after. Only a key read from the database is cached,
# never one generated in a transaction that may yet roll back. Entries are per engine, so
# two apps (tests) over different databases never share one.
SIGNER_CACHE_SECONDS = 5.0
_SIGNERS: weakref.WeakKeyDictionary[Engine, dict[str, tuple[float, str, RSAKey]]] = (
    weakref.WeakKeyDictionary()
)


def signer(db: Session, tenant: Tenant, ring: Keyring) -> tuple[str, RSAKey]:
    """The kid and private key to sign with now; creates a first key if the tenant has none."""
    engine = db.get_bind()
    signers = _SIGNERS.get(engine)
    if signers is None:
        signers = _SIGNERS.setdefault(engine, {})
    now = time.monotonic()
    cached = signers.get(tenant.id)
    if cached is not None and cached[0] > now:
        return cached[1], cached[2]
    key = current_key(db, tenant.id)
    if key is None:
        key = ensure_signing_keys(db, tenant, ring)[0]  # the current key; not committed: not cached
        return key.kid, private_key(key, ring)
    parsed = private_key(key, ring)
    signers[tenant.id] = (now + SIGNER_CACHE_SECONDS, key.kid, parsed)
    return key.kid, parsed


def forget_signer(tenant_id: str) -> None:
    """Drop this process's cached signer of the tenant (on rotation; other workers catch
    up within SIGNER_CACHE_SECONDS, signing meanwhile with a key that stays published)."""
    for signers in list(_SIGNERS.values()):
        signers.pop(tenant_id, None)


# Parsed private keys by kid. The kid is the key's thumbprint, so an entry can never be
# stale: a rotated key has a new kid and is read from the database by every worker.
_PARSED: dict[str, RSAKey] = {}


def private_key(key: SigningKey, ring: Keyring) -> RSAKey:
    parsed = _PARSED.get(key.kid)
    if parsed is None:
        pem = ring.decrypt(key.private_pem_enc)
        parsed = RSAKey.import_key(pem, {"kid": key.kid, "alg": key.alg})
        _PARSED[key.kid] = parsed
    return parsed


def _public_jwk(key: SigningKey) -> dict:
    return {
        "alg": key.alg,
        "kty": "RSA",
        "use": "sig",
        "n": key.public_jwk["n"],
        "e": key.public_jwk["e"],
        "kid": key.kid,
    }


def _published(tenant_id: str):
    return (
        SigningKey.tenant_id == tenant_id,
        SigningKey.state.in_(PUBLISHED_STATES),
    )


def jwks(db: Session, tenant_id: str) -> dict:
    keys = db.execute(
        select(SigningKey).where(*_published(tenant_id)).order_by(SigningKey.created_at)
    ).scalars()
    return {"keys": [_public_jwk(k) for k in keys]}


JWKS_DOCUMENTS = "login_site.jwks_documents"


def cached_jwks(app: Flask, tenant: Tenant) -> bytes | None:
    """The tenant's JWKS as served, if this worker made it under the tenant's current
    ``config_version``, which every change to its signing keys bumps in the same
    transaction (config_cache.py). Read with the tenant, the version reaches other workers
    within the tenant cache's second; a rotation is safe in that second because the key it
    makes current was published as the next key when it was made (:func:`rotate`)."""
    cached = app.extensions[JWKS_DOCUMENTS].get(tenant.id)
    if cached is not None and cached[0] == tenant.config_version:
        return cached[1]
    return None


def jwks_document(app: Flask, db: Session, tenant: Tenant) -> bytes:
    """The tenant's JWKS as served, from this worker's copy or from the database. Only
    tenants that exist are kept, at most one document each."""
    document = cached_jwks(app, tenant)
    if document is None:
        # Read after the version (which came with the tenant): the keys are at least as
        # new as the version they are kept under.
        document = json.dumps(jwks(db, tenant.id), separators=(",", ":")).encode()
        app.extensions[JWKS_DOCUMENTS][tenant.id] = (tenant.config_version, document)
    return document


MAX_JWT_LENGTH = 8192


def verify_own_jwt(db: Session, tenant_id: str, token: str, issuer: str) -> dict | None:
    """Claims of a JWT this tenant signed (``id_token_hint``), else ``None``.

    RS256 only and only our published keys: ``alg: none``, HMAC with a public key and
    keys from ``jwk``/``jku``/``x5u`` headers are refused (RFC 8725 §3.1). Expiry is not
    checked: an expired ID token is still a valid hint (OIDC RP-Initiated Logout §2).
    """
    if not token or len(token) > MAX_JWT_LENGTH:
        return None
    try:
        header = jwt_header(token)
        if header.get("alg") != "RS256" or {"jwk", "jku", "x5u", "x5c"} & set(header):
            return None
        key_set = KeySet.import_key_set(jwks(db, tenant_id))
        decoded = jwt.decode(token, key_set, algorithms=["RS256"])
    except (JoseError, ValueError, TypeError, KeyError):
        return None
    claims = decoded.claims
    if claims.get("iss") != issuer or not claims.get("sub"):
        return None
    return claims


def jwt_header(token: str) -> dict:
    segment = token.split(".", 1)[0]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def init_app(app: Flask) -> None:
    app.extensions[JWKS_DOCUMENTS] = {}
