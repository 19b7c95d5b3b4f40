"""Applications through the Management API: plain functions over a session and a tenant."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.orm import Session

from login_site.management import body
from login_site.management.errors import conflict
from login_site.management.errors import invalid_body
from login_site.management.errors import not_found
from login_site.models import Client
from login_site.models import Tenant
from login_site.models.client import APP_TYPES
from login_site.models.client import AUTH_METHODS
from login_site.models.ids import new_secret
from login_site.tenant_config import CLIENT_LIST_FIELDS
from login_site.tenant_config import GRANT_TYPES
from login_site.urls import origin_problem
from login_site.urls import redirect_uri_problem
from login_site.vault import Keyring

SECRET_BYTES = 48
# Auth0 client properties kept in ``Client.extra``.
EXTRA_FIELDS = {
    "logo_uri",
    "cross_origin_authentication",
    "cross_origin_auth",
    "cross_origin_loc",
    "jwt_configuration",
    "refresh_token",
    "client_metadata",
    "oidc_conformant",
    "is_token_endpoint_ip_header_trusted",
}
WRITABLE = {
    "name",
    "description",
    "app_type",
    "token_endpoint_auth_method",
    "is_first_party",
    *CLIENT_LIST_FIELDS,
    *EXTRA_FIELDS,
}
READ_ONLY = {"client_id", "client_secret", "tenant", "global", "signing_keys"}
# [ls] defaults by application type (management-api.md §4).
DEFAULT_GRANTS = {
    "spa": ["authorization_code", "refresh_token"],
    "native": ["authorization_code", "refresh_token"],
    "regular_web": ["authorization_code", "refresh_token", "client_credentials"],
    "non_interactive": ["client_credentials"],
}


def as_json(client: Client, *, secret: str | None = None) -> dict[str, Any]:
    """Auth0's client object. The secret only when just generated (create, rotate)."""
    out: dict[str, Any] = dict(client.extra or {})
    out.update(
        {
            "client_id": client.client_id,
            "name": client.name,
            "description": client.description or "",
            "app_type": client.app_type,
            "token_endpoint_auth_method": client.token_endpoint_auth_method,
            "is_first_party": client.is_first_party,
            "oidc_conformant": True,
            **{k: list(getattr(client, k) or []) for k in CLIENT_LIST_FIELDS},
        }
    )
    if secret is not None:
        out["client_secret"] = secret
    return out


def find(db: Session, tenant: Tenant, client_id: str) -> Client:
    client = db.execute(
        select(Client).where(Client.tenant_id == tenant.id, Client.client_id == client_id)
    ).scalar_one_or_none()
    if client is None:
        raise not_found("client")
    return client


def listing(db: Session, tenant: Tenant, page: int, per_page: int) -> tuple[list[Client], int]:
    where = Client.tenant_id == tenant.id
    total = db.scalar(select(func.count()).select_from(Client).where(where)) or 0
    rows = db.execute(
        select(Client)
        .where(where)
        .order_by(Client.name, Client.id)
        .offset(page * per_page)
        .limit(per_page)
    ).scalars()
    return list(rows), total


def _check_urls(values: dict, app_type: str) -> None:
    for key in ("callbacks", "allowed_logout_urls"):
        for i, url in enumerate(values.get(key) or []):
            if problem := redirect_uri_problem(url, app_type=app_type):
                raise invalid_body(f"'{key}[{i}]' {problem}")
    for key in ("web_origins", "allowed_origins"):
        for i, origin in enumerate(values.get(key) or []):
            if problem := origin_problem(origin):
                raise invalid_body(f"'{key}[{i}]' {problem}")


def _check_extra(data: dict) -> None:
    for key in (
        "cross_origin_authentication",
        "cross_origin_auth",
        "oidc_conformant",
        "is_token_endpoint_ip_header_trusted",
    ):
        if key in data:
            body.boolean(data, key)
    if data.get("oidc_conformant") is False:
        raise invalid_body("'oidc_conformant' is always true here")
    for key in ("logo_uri", "cross_origin_loc"):
        if key in data:
            body.string(data, key, limit=2000)
            if data[key] and (problem := redirect_uri_problem(data[key])):
                raise invalid_body(f"'{key}' {problem}")
    if "jwt_configuration" in data:
        config = body.obj(data, "jwt_configuration")
        body.reject_unknown(config, {"lifetime_in_seconds", "alg"}, prefix="jwt_configuration.")
        lifetime = config.get("lifetime_in_seconds")
        if lifetime is not None and (
            not isinstance(lifetime, int)
            or isinstance(lifetime, bool)
            or not 1 <= lifetime <= 2592000
        ):
            raise invalid_body("'jwt_configuration.lifetime_in_seconds' must be 1-2592000")
        if config.get("alg", "RS256") != "RS256":
            raise invalid_body("'jwt_configuration.alg' must be RS256")
    if "refresh_token" in data:
        refresh = body.obj(data, "refresh_token")
        choices = {
            "rotation_type": ("rotating", "non-rotating"),
            "expiration_type": ("expiring", "non-expiring"),
        }
        body.reject_unknown(
            refresh,
            {
                *choices,
                "leeway",
                "token_lifetime",
                "idle_token_lifetime",
                "infinite_token_lifetime",
                "infinite_idle_token_lifetime",
            },
            prefix="refresh_token.",
        )
        for key, allowed in choices.items():
            if key in refresh and refresh[key] not in allowed:
                raise invalid_body(f"'refresh_token.{key}' must be one of {', '.join(allowed)}")
    if "client_metadata" in data:
        metadata = body.obj(data, "client_metadata")
        if len(metadata) > 10 or any(
            not isinstance(v, str) or len(k) > 255 or len(v) > 255 for k, v in metadata.items()
        ):
            raise invalid_body("'client_metadata' must map at most 10 keys to strings")


def _check(data: dict, *, creating: bool, current: Client | None) -> dict:
    """The validated values of ``data`` (POST or PATCH body)."""
    body.reject_unknown(data, WRITABLE, READ_ONLY)
    if creating and "name" not in data:
        raise invalid_body("missing required property 'name'")
    if "name" in data:
        body.string(data, "name", empty=False)
    if "description" in data:
        body.string(data, "description", limit=140)
    if "is_first_party" in data:
        body.boolean(data, "is_first_party")
    app_type = data.get("app_type", current.app_type if current else "regular_web")
    if app_type not in APP_TYPES:
        raise invalid_body(f"'app_type' must be one of {', '.join(APP_TYPES)}")
    method = data.get("token_endpoint_auth_method")
    if method is not None and method not in AUTH_METHODS:
        raise invalid_body(f"'token_endpoint_auth_method' must be one of {', '.join(AUTH_METHODS)}")
    for key in CLIENT_LIST_FIELDS:
        if key in data:
            body.string_list(data, key)
    for i, grant in enumerate(data.get("grant_types") or []):
        if grant not in GRANT_TYPES:
            raise invalid_body(f"'grant_types[{i}]' is not a known grant type")
    # URLs are checked against the resulting app type (custom schemes: native only).
    urls = {k: data.get(k, getattr(current, k, None)) for k in CLIENT_LIST_FIELDS}
    _check_urls(urls, app_type)
    _check_extra(data)
    return data


def _name_free(db: Session, tenant: Tenant, name: str, except_pk: str | None = None) -> None:
    taken = db.execute(
        select(Client.id).where(Client.tenant_id == tenant.id, Client.name == name)
    ).scalar_one_or_none()
    if taken is not None and taken != except_pk:
        raise conflict("A client with the same name already exists.")


def create(db: Session, ring: Keyring, tenant: Tenant, data: dict) -> tuple[Client, str | None]:
    """A new client, and its secret in plaintext (shown once), if it is confidential."""
    _check(data, creating=True, current=None)
    _name_free(db, tenant, data["name"])
    app_type = data.get("app_type", "regular_web")
    method = data.get("token_endpoint_auth_method") or (
        "none" if app_type in ("spa", "native") else "client_secret_post"
    )
    client = Client(
        tenant_id=tenant.id,
        client_id=new_secret(24),
        name=data["name"],
        description=data.get("description", ""),
        app_type=app_type,
        token_endpoint_auth_method=method,
        is_first_party=data.get("is_first_party", True),
        grant_types=list(data.get("grant_types", DEFAULT_GRANTS[app_type])),
        extra={k: data[k] for k in EXTRA_FIELDS if k in data and k != "oidc_conformant"},
        **{k: list(data.get(k) or []) for k in CLIENT_LIST_FIELDS if k != "grant_types"},
    )
    secret = None
    if method != "none":
        secret = new_secret(SECRET_BYTES)
        client.client_secret_enc = ring.encrypt(secret)
    db.add(client)
    db.flush()
    return client, secret


def update(db: Session, ring: Keyring, tenant: Tenant, client: Client, data: dict) -> Client:
    """PATCH: the given top-level properties replace the stored ones."""
    _check(data, creating=False, current=client)
    if "name" in data:
        _name_free(db, tenant, data["name"], except_pk=client.id)
        client.name = data["name"]
    for key in ("description", "app_type", "token_endpoint_auth_method", "is_first_party"):
        if key in data:
            setattr(client, key, data[key])
    for key in CLIENT_LIST_FIELDS:
        if key in data:
            setattr(client, key, list(data[key]))
    extra = dict(client.extra or {})
    extra.update({k: data[k] for k in EXTRA_FIELDS if k in data and k != "oidc_conformant"})
    client.extra = extra
    if client.token_endpoint_auth_method == "none":  # noqa: S105
        client.client_secret_enc = None
    elif client.client_secret_enc is None:
        # Became confidential: a secret exists from now on (read it with rotate-secret).
        client.client_secret_enc = ring.encrypt(new_secret(SECRET_BYTES))
    db.flush()
    return client


def rotate_secret(db: Session, ring: Keyring, client: Client) -> str:
    """A new secret; the old one stops working at once."""
    if client.token_endpoint_auth_method == "none":  # noqa: S105
        raise invalid_body("public clients (token_endpoint_auth_method none) have no secret")
    secret = new_secret(SECRET_BYTES)
    client.client_secret_enc = ring.encrypt(secret)
    db.flush()
    return secret
