"""OpenID Connect as a client: the provider's metadata and keys, and ID token validation.

Discovery documents and JWKS are kept in ``upstream_metadata`` (shared by every worker, not in
process memory) for ``UPSTREAM_METADATA_TTL_SECONDS``; an ID token signed with a ``kid`` we do
not know triggers one refetch of the JWKS (rate-limited per connection), which is how a provider's
key rotation is picked up. ID tokens are validated as OIDC Core §3.1.3.7 requires (checklist
UP-04, SC-05…SC-09): signature with a key from that provider's JWKS only, algorithm from an
allow-list (never ``none`` or HMAC), ``iss`` exact, ``aud`` containing our client id, ``azp``
when there are several audiences, ``exp``/``iat`` with a small leeway, and ``nonce``.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from flask import current_app
from joserfc import jws
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.orm import Session

from login_site.connections.base import LoginFailed
from login_site.db import utcnow
from login_site.models import UpstreamMetadata
from login_site.outbound import UpstreamError
from login_site.outbound import call

ALLOWED_ID_TOKEN_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
CLOCK_SKEW_SECONDS = 60
JWKS_REFETCH_MIN_SECONDS = 10  # an unknown kid refetches the JWKS at most this often
DISCOVERY_PATH = "/.well-known/openid-configuration"


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + DISCOVERY_PATH


def _fresh(row: UpstreamMetadata | None, source: str, ttl_seconds: float) -> bool:
    return (
        row is not None
        and row.source == source
        and row.fetched_at > utcnow() - timedelta(seconds=ttl_seconds)
    )


def _row(db: Session, connection_id: str) -> UpstreamMetadata:
    row = db.get(UpstreamMetadata, connection_id)
    if row is None:
        row = UpstreamMetadata(connection_id=connection_id, source="")
        db.add(row)
    return row


def _fetch_json(url: str) -> dict[str, Any]:
    answer = call("GET", url, headers={"Accept": "application/json"})
    if answer.status != 200:
        raise UpstreamError(f"{url} answered {answer.status}", unavailable=answer.status >= 500)
    document = answer.json()
    if not isinstance(document, dict):
        raise UpstreamError(f"{url} did not answer a JSON object")
    return document


def discover(db: Session, connection_id: str, issuer: str, url: str | None = None) -> dict:
    """The provider's discovery document; its ``issuer`` must equal the configured one."""
    source = url or discovery_url(issuer)
    row = db.get(UpstreamMetadata, connection_id)
    ttl = current_app.config["UPSTREAM_METADATA_TTL_SECONDS"]
    if _fresh(row, source, ttl) and row.discovery:
        return row.discovery
    document = _fetch_json(source)
    if document.get("issuer") != issuer:
        raise UpstreamError("the discovery document names another issuer")
    row = _row(db, connection_id)
    row.source, row.discovery, row.jwks, row.fetched_at = source, document, None, utcnow()
    return document


def key_set(db: Session, connection_id: str, jwks_uri: str, *, refetch: bool = False) -> KeySet:
    row = db.get(UpstreamMetadata, connection_id)
    ttl = current_app.config["UPSTREAM_METADATA_TTL_SECONDS"]
    cached = row.jwks if row is not None and row.jwks else None
    if cached and not refetch and row.fetched_at > utcnow() - timedelta(seconds=ttl):
        return KeySet.import_key_set(cached)
    if (
        cached
        and refetch
        and row.fetched_at > utcnow() - timedelta(seconds=JWKS_REFETCH_MIN_SECONDS)
    ):
        return KeySet.import_key_set(cached)  # refetched moments ago: the kid is unknown
    document = _fetch_json(jwks_uri)
    try:
        keys = KeySet.import_key_set(
            {"keys": [k for k in document.get("keys", []) if k.get("kty") in ("RSA", "EC")]}
        )
    except (JoseError, ValueError, TypeError) as exc:
        raise UpstreamError("the provider's JWKS is not valid") from exc
    row = _row(db, connection_id)
    if not row.source:
        row.source = jwks_uri
    row.jwks, row.fetched_at = document, utcnow()
    return keys


def validate_id_token(
    db: Session,
    connection_id: str,
    token: str,
    *,
    issuer: str,
    client_id: str,
    jwks_uri: str,
    nonce: str | None,
    algorithms: tuple[str, ...] = ("RS256",),
) -> dict[str, Any]:
    """The claims of a valid upstream ID token; :class:`LoginFailed` on any doubt."""
    allowed = tuple(a for a in algorithms if a in ALLOWED_ID_TOKEN_ALGS) or ("RS256",)
    try:
        header = jws.extract_compact(token.encode()).headers()
    except (JoseError, ValueError, TypeError) as exc:
        raise LoginFailed("id_token_malformed") from exc
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in allowed:
        raise LoginFailed("id_token_alg")
    if any(h in header for h in ("jwk", "jku", "x5u", "x5c")):
        raise LoginFailed("id_token_header")  # keys come from the JWKS only (JW-03)
    keys = key_set(db, connection_id, jwks_uri)
    key = _key_for(keys, kid, alg)
    if key is None:
        key = _key_for(key_set(db, connection_id, jwks_uri, refetch=True), kid, alg)
    if key is None:
        raise LoginFailed("id_token_unknown_key")
    try:
        claims = jwt.decode(token, key, algorithms=[alg]).claims
    except (JoseError, ValueError, TypeError) as exc:
        raise LoginFailed("id_token_signature") from exc
    _check_claims(claims, issuer=issuer, client_id=client_id, nonce=nonce)
    return claims


def _key_for(keys: KeySet, kid: str | None, alg: str):
    kty = "EC" if alg.startswith("ES") else "RSA"
    candidates = [k for k in keys.keys if k.key_type == kty]
    if kid is not None:
        candidates = [k for k in candidates if k.kid == kid]
    elif len(candidates) != 1:
        return None  # no kid and several keys: refuse to guess
    return candidates[0] if candidates else None


def _check_claims(claims: dict, *, issuer: str, client_id: str, nonce: str | None) -> None:
    now = time.time()
    if claims.get("iss") != issuer:
        raise LoginFailed("id_token_issuer")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if client_id not in audiences:
        raise LoginFailed("id_token_audience")
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise LoginFailed("id_token_azp")
    if "azp" in claims and claims["azp"] != client_id:
        raise LoginFailed("id_token_azp")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or exp + CLOCK_SKEW_SECONDS < now:
        raise LoginFailed("id_token_expired")
    if not isinstance(iat, int | float) or iat - CLOCK_SKEW_SECONDS > now:
        raise LoginFailed("id_token_issued_in_future")
    if nonce is not None and claims.get("nonce") != nonce:
        raise LoginFailed("id_token_nonce")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise LoginFailed("id_token_subject")
