"""ID tokens, access tokens and the claims they carry (compat §12)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from sqlalchemy import ColumnElement
from sqlalchemy import Row
from sqlalchemy import Table
from sqlalchemy import Update
from sqlalchemy import bindparam
from sqlalchemy import update
from sqlalchemy.orm import Session

from login_site import config_cache
from login_site.db import core
from login_site.db import utcnow
from login_site.models import AccessToken
from login_site.models import Client
from login_site.models import Tenant
from login_site.models import User
from login_site.models.ids import new_id
from login_site.models.ids import new_secret
from login_site.oauth import keys
from login_site.security.secrets import sha256_hex
from login_site.vault import Keyring

# Standard claims released per scope (OIDC Core §5.4).
SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "profile": (
        "name",
        "given_name",
        "family_name",
        "middle_name",
        "nickname",
        "preferred_username",
        "profile",
        "picture",
        "website",
        "gender",
        "birthdate",
        "zoneinfo",
        "locale",
        "updated_at",
    ),
    "email": ("email", "email_verified"),
    "phone": ("phone_number", "phone_number_verified"),
    "address": ("address",),
}


# The user columns :func:`user_claims` reads.
USER_CLAIM_COLUMNS = (
    "user_id",
    "name",
    "given_name",
    "family_name",
    "nickname",
    "username",
    "picture",
    "updated_at",
    "email",
    "email_verified",
    "phone_number",
    "phone_verified",
)


def user_claims(user: User | Row, scope: str) -> dict[str, Any]:
    """``sub`` plus the claims the scope allows (used in ID tokens and userinfo). ``user``
    is a User or a row with its USER_CLAIM_COLUMNS."""
    scopes = set(scope.split())
    available: dict[str, Any] = {
        "name": user.name,
        "given_name": user.given_name,
        "family_name": user.family_name,
        "nickname": user.nickname,
        "preferred_username": user.username,
        "picture": user.picture,
        # Seconds since the epoch (OIDC Core §5.1); Auth0 sends an ISO string instead.
        "updated_at": int(user.updated_at.timestamp()) if user.updated_at else None,
        "email": user.email,
        "email_verified": bool(user.email_verified) if user.email else None,
        "phone_number": user.phone_number,
        "phone_number_verified": bool(user.phone_verified) if user.phone_number else None,
    }
    claims: dict[str, Any] = {"sub": user.user_id}
    for scope_name, names in SCOPE_CLAIMS.items():
        if scope_name in scopes:
            for name in names:
                if available.get(name) is not None:
                    claims[name] = available[name]
    return claims


def spend_once(table: Table, hash_column: str, *conditions: ColumnElement[bool]) -> Update:
    """``UPDATE … SET used_at = :now`` of the unspent, unexpired row with this hash, of this
    tenant and client (bind parameters ``hash``, ``tenant``, ``client``, ``now``): the one
    statement that decides between parallel redemptions of a code or a refresh token."""
    return (
        update(table)
        .where(
            table.c[hash_column] == bindparam("hash"),
            table.c.tenant_id == bindparam("tenant"),
            table.c.client_pk == bindparam("client"),
            table.c.used_at.is_(None),
            table.c.expires_at > bindparam("now"),
            *conditions,
        )
        .values(used_at=bindparam("now"))
    )


def half_hash(value: str) -> str:
    """``at_hash``/``c_hash`` for RS256 (OIDC Core §3.1.3.6)."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign(db: Session, tenant: Tenant, ring: Keyring, claims: dict, typ: str = "JWT") -> str:
    """An RS256 JWS in compact form (RFC 7515 §7.1), signed with ``cryptography`` directly:
    the same bytes joserfc's ``jwt.encode`` produces, without its per-call validation."""
    kid, private = keys.signer(db, tenant, ring)
    header = json.dumps({"typ": typ, "alg": "RS256", "kid": kid}, separators=(",", ":"))
    payload = json.dumps(claims, ensure_ascii=False, separators=(",", ":"))
    signing_input = f"{_b64(header.encode())}.{_b64(payload.encode())}"
    signature = private.private_key.sign(
        signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
    )
    return f"{signing_input}.{_b64(signature)}"


def id_token(
    db: Session,
    tenant: Tenant,
    ring: Keyring,
    *,
    issuer: str,
    client: Client,
    user: User | Row,
    scope: str,
    nonce: str | None,
    auth_time: int,
    sid: str | None,
    access_token: str | None,
    lifetime: int,
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = user_claims(user, scope)
    claims.update(
        {
            "iss": issuer,
            "aud": client.client_id,
            "azp": client.client_id,
            "iat": now,
            "exp": now + lifetime,
            "auth_time": int(auth_time),
        }
    )
    if nonce:
        claims["nonce"] = nonce
    if sid:
        claims["sid"] = sid
    if access_token:
        claims["at_hash"] = half_hash(access_token)
    return sign(db, tenant, ring, claims)


# A Core insert, built once: no ORM object to build and flush for a row nobody reads back.
_INSERT_ACCESS_TOKEN = AccessToken.__table__.insert()


def issue_access_token(
    db: Session,
    tenant: Tenant,
    ring: Keyring,
    *,
    issuer: str,
    client: Client,
    user: User | Row | None,
    scope: str,
    audience: str | None,
    lifetime: int,
    code_hash: str | None = None,
    session_sid: str | None = None,
    refresh_family: str | None = None,
    store: bool = True,
) -> str:
    """Opaque (stored hashed, valid at /userinfo) without an audience; a JWT for an API.
    User tokens are recorded (userinfo, revocation); machine JWTs (``store=False``) are
    stateless."""
    now = utcnow()
    jti = None
    if audience:
        token, jti = _api_jwt(
            db,
            tenant,
            ring,
            issuer=issuer,
            client=client,
            user=user,
            scope=scope,
            audience=audience,
            lifetime=lifetime,
            now=now,
        )
    else:
        token = new_secret()
    if store:
        core(db).execute(
            _INSERT_ACCESS_TOKEN,
            {
                "token_hash": sha256_hex(token),
                "tenant_id": tenant.id,
                "client_pk": client.id,
                "user_pk": user.id if user else None,
                "jti": jti,
                "scope": scope,
                "audience": audience,
                "code_hash": code_hash,
                "issued_at": now,
                "expires_at": now + timedelta(seconds=lifetime),
                "lifetime_seconds": lifetime,
                "session_sid": session_sid,
                "refresh_family": refresh_family,
            },
        )
    return token


def _api_jwt(
    db: Session,
    tenant: Tenant,
    ring: Keyring,
    *,
    issuer: str,
    client: Client,
    user: User | Row | None,
    scope: str,
    audience: str,
    lifetime: int,
    now: datetime,
) -> tuple[str, str]:
    """(access token for an API, its ``jti``): an RFC 9068 JWT."""
    jti = new_id()
    iat = int(now.timestamp())
    aud: list[str] | str = [audience]
    if "openid" in scope.split():
        aud = [audience, f"{issuer}userinfo"]
    claims = {
        "iss": issuer,
        "sub": user.user_id if user else f"{client.client_id}@clients",
        "aud": aud,
        "azp": client.client_id,
        "client_id": client.client_id,  # RFC 9068 §2.2
        "iat": iat,
        "exp": iat + lifetime,
        "scope": scope,
        "jti": jti,
    }
    if user is None:
        claims["gty"] = "client-credentials"
    return sign(db, tenant, ring, claims, typ="at+jwt"), jti


@dataclass
class Issue:
    """What one token response is for."""

    client: Client
    user: User | Row | None  # a User, or a row with its id, USER_CLAIM_COLUMNS
    scope: str
    audience: str | None
    auth_time: datetime | None = None
    sid: str | None = None
    nonce: str | None = None
    code_hash: str | None = None
    refresh_family: str | None = None
    # The API's access-token lifetime when the grant already loaded the API (saves a query).
    token_lifetime: int | None = None


def access_token_lifetime(db: Session, tenant: Tenant, audience: str | None, default: int) -> int:
    if not audience:
        return default
    api = config_cache.api(db, tenant, audience)
    return api.token_lifetime if api else default


def token_response(
    db: Session,
    tenant: Tenant,
    ring: Keyring,
    *,
    issuer: str,
    config,
    issue: Issue,
    refresh_token: str | None = None,
) -> dict[str, Any]:
    """Access token, ID token when ``openid`` was granted to a user, refresh token if given."""
    lifetime = issue.token_lifetime
    if lifetime is None:
        default = config["ACCESS_TOKEN_TTL_SECONDS"]
        lifetime = access_token_lifetime(db, tenant, issue.audience, default)
    access = issue_access_token(
        db,
        tenant,
        ring,
        issuer=issuer,
        client=issue.client,
        user=issue.user,
        scope=issue.scope,
        audience=issue.audience,
        lifetime=lifetime,
        code_hash=issue.code_hash,
        session_sid=issue.sid,
        refresh_family=issue.refresh_family,
        store=issue.user is not None,
    )
    body: dict[str, Any] = {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "scope": issue.scope,
    }
    if issue.user is not None and "openid" in issue.scope.split():
        body["id_token"] = id_token(
            db,
            tenant,
            ring,
            issuer=issuer,
            client=issue.client,
            user=issue.user,
            scope=issue.scope,
            nonce=issue.nonce,
            auth_time=int((issue.auth_time or utcnow()).timestamp()),
            sid=issue.sid,
            access_token=access,
            lifetime=config["ID_TOKEN_TTL_SECONDS"],
        )
    if refresh_token:
        body["refresh_token"] = refresh_token
    return body
