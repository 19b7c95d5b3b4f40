"""APIs (resource servers) through the Management API: plain functions over a session and a
tenant. The tenant's own Management API is a system API: shown, never changed or deleted."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy.orm import Session

from login_site.management import body
from login_site.management.auth import AUDIENCE_PATH
from login_site.management.errors import ManagementError
from login_site.management.errors import conflict
from login_site.management.errors import invalid_body
from login_site.models import ClientGrant
from login_site.models import ResourceServer
from login_site.models import Tenant

TOKEN_DIALECTS = ("access_token", "access_token_authz", "rfc9068_profile", "rfc9068_profile_authz")
SIGNING_ALGS = ("RS256",)  # [ls] RS256 only (management-api.md §7)
MAX_TOKEN_LIFETIME_SECONDS = 2592000  # Auth0: 30 days
DEFAULT_TOKEN_LIFETIME_SECONDS = 86400
MAX_SCOPES = 1000
SCOPE_VALUE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,280}$")  # RFC 6749 §3.3 scope-token
BOOLEANS = ("allow_offline_access", "skip_consent_for_verifiable_first_party_clients")
CREATE_FIELDS = {
    "name",
    "identifier",
    "scopes",
    "signing_alg",
    "token_lifetime",
    "token_dialect",
    *BOOLEANS,
}
UPDATE_FIELDS = CREATE_FIELDS - {"identifier"}
READ_ONLY = {"id", "is_system", "token_lifetime_for_web"}


def is_system(tenant: Tenant, identifier: str) -> bool:
    """The tenant's Management API: ``http(s)://<one of its hosts>/api/v2/``."""
    try:
        parts = urlsplit(identifier)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False
    hosts = {h.host for h in tenant.hosts}
    return (
        parts.scheme in ("http", "https")
        and parts.path == "/" + AUDIENCE_PATH
        and not parts.query
        and parts.netloc.lower() in hosts
    )


def as_json(tenant: Tenant, api: ResourceServer) -> dict[str, Any]:
    return {
        "id": api.id,
        "name": api.name,
        "identifier": api.identifier,
        "scopes": [dict(s) for s in api.scopes or []],
        "signing_alg": api.signing_alg,
        "allow_offline_access": api.allow_offline_access,
        "skip_consent_for_verifiable_first_party_clients": (
            api.skip_consent_for_verifiable_first_party_clients
        ),
        "token_lifetime": api.token_lifetime,
        # [ls] one lifetime for every flow: what web (implicit) flows get is the same.
        "token_lifetime_for_web": api.token_lifetime,
        "token_dialect": api.token_dialect,
        "is_system": is_system(tenant, api.identifier),
    }


def find(db: Session, tenant: Tenant, id_or_identifier: str) -> ResourceServer:
    """By ``rs_…`` id or by identifier (the path segment URL-decoded)."""
    api = db.execute(
        select(ResourceServer)
        .where(
            ResourceServer.tenant_id == tenant.id,
            or_(
                ResourceServer.id == id_or_identifier,
                ResourceServer.identifier == id_or_identifier,
            ),
        )
        .order_by((ResourceServer.id == id_or_identifier).desc())
        .limit(1)
    ).scalar_one_or_none()
    if api is None:
        raise ManagementError(
            404, "The resource server does not exist.", "inexistent_resource_server"
        )
    return api


def listing(
    db: Session, tenant: Tenant, page: int, per_page: int, identifiers: list[str]
) -> tuple[list[ResourceServer], int]:
    where = [ResourceServer.tenant_id == tenant.id]
    if identifiers:
        where.append(ResourceServer.identifier.in_(identifiers))
    total = db.scalar(select(func.count()).select_from(ResourceServer).where(*where)) or 0
    rows = db.execute(
        select(ResourceServer)
        .where(*where)
        .order_by(ResourceServer.name, ResourceServer.id)
        .offset(page * per_page)
        .limit(per_page)
    ).scalars()
    return list(rows), total


def _scopes(data: dict) -> list[dict[str, str]]:
    value = data["scopes"]
    if not isinstance(value, list) or len(value) > MAX_SCOPES:
        raise invalid_body(f"'scopes' must be an array of at most {MAX_SCOPES} objects")
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise invalid_body(f"'scopes[{i}]' must be an object")
        body.reject_unknown(item, {"value", "description"}, prefix=f"scopes[{i}].")
        scope = item.get("value")
        if not isinstance(scope, str) or not SCOPE_VALUE.match(scope):
            raise invalid_body(f"'scopes[{i}].value' must be a scope token (no spaces or quotes)")
        if scope in seen:
            raise invalid_body(f"'scopes[{i}].value' repeats {scope!r}")
        seen.add(scope)
        description = item.get("description", "")
        if not isinstance(description, str) or len(description) > 500:
            raise invalid_body(f"'scopes[{i}].description' must be a string of at most 500")
        out.append({"value": scope, "description": description})
    return out


def _check(data: dict, allowed: set[str]) -> dict[str, Any]:
    """The validated column values of a POST or PATCH body."""
    body.reject_unknown(data, allowed, READ_ONLY | (CREATE_FIELDS - allowed))
    values: dict[str, Any] = {}
    if "name" in data:
        values["name"] = body.string(data, "name", empty=False)
    if "scopes" in data:
        values["scopes"] = _scopes(data)
    if "signing_alg" in data and data["signing_alg"] not in SIGNING_ALGS:
        raise invalid_body("'signing_alg' must be RS256")
    if "token_dialect" in data:
        if data["token_dialect"] not in TOKEN_DIALECTS:
            raise invalid_body(f"'token_dialect' must be one of {', '.join(TOKEN_DIALECTS)}")
        values["token_dialect"] = data["token_dialect"]
    if "token_lifetime" in data:
        lifetime = data["token_lifetime"]
        if (
            not isinstance(lifetime, int)
            or isinstance(lifetime, bool)
            or not 1 <= lifetime <= MAX_TOKEN_LIFETIME_SECONDS
        ):
            raise invalid_body(f"'token_lifetime' must be 1-{MAX_TOKEN_LIFETIME_SECONDS}")
        values["token_lifetime"] = lifetime
    for key in BOOLEANS:
        if key in data:
            values[key] = body.boolean(data, key)
    return values


def _identifier(db: Session, tenant: Tenant, data: dict) -> str:
    if "identifier" not in data:
        raise invalid_body("missing required property 'identifier'")
    identifier = body.string(data, "identifier", limit=600, empty=False)
    if identifier != identifier.strip() or any(c.isspace() for c in identifier):
        raise invalid_body("'identifier' must not contain spaces")
    if is_system(tenant, identifier):
        raise invalid_body("'identifier' is reserved for the Management API")
    taken = db.execute(
        select(ResourceServer.id).where(
            ResourceServer.tenant_id == tenant.id, ResourceServer.identifier == identifier
        )
    ).first()
    if taken is not None:
        raise conflict("A resource server with the same identifier already exists.")
    return identifier


def create(db: Session, tenant: Tenant, data: dict) -> ResourceServer:
    values = _check(data, CREATE_FIELDS)
    identifier = _identifier(db, tenant, data)
    api = ResourceServer(
        tenant_id=tenant.id,
        identifier=identifier,
        name=values.pop("name", identifier),
        scopes=values.pop("scopes", []),
        signing_alg="RS256",
        token_lifetime=values.pop("token_lifetime", DEFAULT_TOKEN_LIFETIME_SECONDS),
        **values,
    )
    db.add(api)
    db.flush()
    return api


def _not_system(tenant: Tenant, api: ResourceServer, verb: str) -> None:
    if is_system(tenant, api.identifier):
        raise ManagementError(
            403, f"The system resource server cannot be {verb}.", "operation_not_supported"
        )


def update(db: Session, tenant: Tenant, api: ResourceServer, data: dict) -> ResourceServer:
    """PATCH: the given properties replace the stored ones; ``identifier`` is immutable."""
    _not_system(tenant, api, "updated")
    for key, value in _check(data, UPDATE_FIELDS).items():
        setattr(api, key, value)
    db.flush()
    return api


def remove(db: Session, tenant: Tenant, api: ResourceServer) -> None:
    """Delete the API and every client grant for it (Auth0)."""
    _not_system(tenant, api, "deleted")
    db.execute(
        delete(ClientGrant).where(
            ClientGrant.tenant_id == tenant.id, ClientGrant.audience == api.identifier
        )
    )
    db.delete(api)
    db.flush()
