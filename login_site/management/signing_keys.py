"""The tenant's signing keys through the Management API (management-api.md §7).

Auth0 shows each key with an X.509 certificate. Ours is self-signed by the key itself and
built the same way every time (serial and dates from the key row; RSA PKCS#1 v1.5 signatures
are deterministic), so nothing new is stored and every worker shows the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.orm import Session

from login_site.management.errors import ManagementError
from login_site.management.jobs import iso_time
from login_site.models import ResourceServer
from login_site.models import SigningKey
from login_site.models import Tenant
from login_site.oauth import keys
from login_site.vault import Keyring

CERT_VALIDITY_DAYS = 3650

# Certificates by (kid, subject). A kid is the key's thumbprint, so an entry never goes
# stale (STYLE: a local cache only if keyed by a stored version).
_CERTS: dict[tuple[str, str], x509.Certificate] = {}


def certificate(key: SigningKey, tenant: Tenant, ring: Keyring) -> x509.Certificate:
    subject = tenant.name
    cert = _CERTS.get((key.kid, subject))
    if cert is None:
        private = keys.private_key(key, ring).private_key
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        since = key.created_at.replace(microsecond=0)
        serial = int.from_bytes(hashlib.sha256(key.kid.encode()).digest()[:16], "big") >> 1
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(private.public_key())
            .serial_number(serial or 1)
            .not_valid_before(since)
            .not_valid_after(since + timedelta(days=CERT_VALIDITY_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(private, hashes.SHA256())
        )
        _CERTS[(key.kid, subject)] = cert
    return cert


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def as_json(key: SigningKey, tenant: Tenant, ring: Keyring) -> dict[str, Any]:
    cert = certificate(key, tenant, ring)
    sha1 = cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - Auth0's fingerprint
    out: dict[str, Any] = {
        "kid": key.kid,
        "cert": cert_pem(cert),
        "pkcs7": pkcs7.serialize_certificates([cert], serialization.Encoding.PEM).decode(),
        "fingerprint": ":".join(sha1[i : i + 2] for i in range(0, len(sha1), 2)),
        "thumbprint": sha1,
        "current": key.state == "current",
        "next": key.state == "next",
        "previous": key.state == "previous",
        "revoked": key.state == "revoked",
    }
    if key.state != "next":
        out["current_since"] = iso_time(key.current_since or key.created_at)
    if key.rotated_at is not None:
        out["current_until"] = iso_time(key.rotated_at)
    return out


def listing(db: Session, tenant: Tenant) -> list[SigningKey]:
    return list(
        db.execute(
            select(SigningKey)
            .where(SigningKey.tenant_id == tenant.id)
            .order_by(SigningKey.created_at, SigningKey.kid)
        ).scalars()
    )


def find(db: Session, tenant: Tenant, kid: str) -> SigningKey:
    key = db.execute(
        select(SigningKey).where(SigningKey.tenant_id == tenant.id, SigningKey.kid == kid)
    ).scalar_one_or_none()
    if key is None:
        raise ManagementError(404, "The signing key does not exist.", "inexistent_signing_key")
    return key


def longest_token_lifetime(db: Session, tenant: Tenant, config: Mapping[str, Any]) -> int:
    """How long a replaced key must stay published: the longest lifetime of a token it may
    have signed (ID tokens, access tokens, and this tenant's APIs' access tokens)."""
    apis = db.scalar(
        select(func.max(ResourceServer.token_lifetime)).where(ResourceServer.tenant_id == tenant.id)
    )
    return max(config["ID_TOKEN_TTL_SECONDS"], config["ACCESS_TOKEN_TTL_SECONDS"], apis or 0)


def rotate(db: Session, tenant: Tenant, ring: Keyring, config: Mapping[str, Any]) -> SigningKey:
    """The next key becomes current (:func:`login_site.oauth.keys.rotate`); the old one stays
    published."""
    return keys.rotate(db, tenant, ring, keep_seconds=longest_token_lifetime(db, tenant, config))


def revoke(db: Session, key: SigningKey) -> SigningKey:
    """The key leaves the JWKS: tokens it signed no longer verify. Not the current key."""
    if key.state == "current":
        raise ManagementError(
            400, "The current signing key cannot be revoked: rotate first.", "invalid_operation"
        )
    key.state = "revoked"
    db.flush()
    return key
