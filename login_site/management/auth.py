"""Bearer tokens of the Management API: RS256 JWTs this tenant signed for
``{issuer}api/v2/`` with the client_credentials grant, checked per scope."""

from __future__ import annotations

import time
from dataclasses import dataclass

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import select
from sqlalchemy.orm import Session

from login_site.management.errors import ManagementError
from login_site.models import Client
from login_site.oauth.keys import MAX_JWT_LENGTH
from login_site.oauth.keys import jwks
from login_site.oauth.keys import jwt_header

AUDIENCE_PATH = "api/v2/"
FORBIDDEN_HEADERS = {"jwk", "jku", "x5u", "x5c"}
CLOCK_SKEW = 0


@dataclass(frozen=True)
class Caller:
    """Who is calling: the client that obtained the token, and what it may do."""

    client_id: str
    scopes: frozenset[str]


def audience(issuer: str) -> str:
    return f"{issuer}{AUDIENCE_PATH}"


def _unauthorized(message: str = "Invalid token", *, token_sent: bool = True) -> ManagementError:
    challenge = 'Bearer error="invalid_token"' if token_sent else "Bearer"
    return ManagementError(401, message, "invalid_token", {"WWW-Authenticate": challenge})


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header (RFC 6750 §2.1) — nothing else."""
    if not authorization:
        raise _unauthorized("Missing authentication", token_sent=False)
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise _unauthorized("Bad HTTP authentication header format", token_sent=False)
    return token


def verify(db: Session, tenant_id: str, token: str, issuer: str, *, now: float | None = None):
    """The caller of a valid Management API token, else a 401 :class:`ManagementError`."""
    if len(token) > MAX_JWT_LENGTH:
        raise _unauthorized()
    try:
        header = jwt_header(token)
        if header.get("alg") != "RS256" or FORBIDDEN_HEADERS & set(header):
            raise _unauthorized()
        key_set = KeySet.import_key_set(jwks(db, tenant_id))
        claims = jwt.decode(token, key_set, algorithms=["RS256"]).claims
    except (JoseError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise _unauthorized() from exc
    now = time.time() if now is None else now
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool) or exp <= now - CLOCK_SKEW:
        raise _unauthorized("Expired token" if isinstance(exp, int | float) else "Invalid token")
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and nbf > now + CLOCK_SKEW:
        raise _unauthorized()
    if claims.get("iss") != issuer:
        raise _unauthorized()
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if audience(issuer) not in audiences:
        raise _unauthorized()
    if claims.get("gty") != "client-credentials":
        raise _unauthorized()
    client_id = claims.get("azp")
    scope = claims.get("scope", "")
    if not isinstance(client_id, str) or not isinstance(scope, str):
        raise _unauthorized()
    # A deleted client's tokens die with it.
    exists = db.execute(
        select(Client.id).where(Client.tenant_id == tenant_id, Client.client_id == client_id)
    ).first()
    if exists is None:
        raise _unauthorized()
    return Caller(client_id=client_id, scopes=frozenset(scope.split()))


def require_scope(caller: Caller, *accepted: str) -> None:
    """Every endpoint needs one of its scopes (management-api.md §1); else 403."""
    if not caller.scopes & set(accepted):
        raise ManagementError(
            403,
            f"Insufficient scope, expected any of: {','.join(accepted)}",
            "insufficient_scope",
        )
