"""The OpenAPI 3.1 description of ``/api/v2`` (served at ``/api/v2/openapi.json``).

Operations are declared here once, with the scopes, query parameters and request schemas the
views and service modules enforce (limits and enums are imported from them). The document
only lists operations whose route is registered, and a test checks that every route of the
``management`` blueprint is described, so the two cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from flask import Flask

from login_site.connections.base import KNOWN_STRATEGIES
from login_site.management import body
from login_site.management import client_grants
from login_site.management import connections
from login_site.management import jobs
from login_site.management import resource_servers
from login_site.management import tickets
from login_site.management import users
from login_site.management.auth import AUDIENCE_PATH
from login_site.models.client import APP_TYPES
from login_site.models.client import AUTH_METHODS
from login_site.tenant_config import GRANT_TYPES

OPENAPI_VERSION = "3.1.0"
PREFIX = "/api/v2"
_RULE_VARIABLE = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def openapi_path(rule: str) -> str:
    """``/api/v2/clients/<client_id>`` → ``/clients/{client_id}``."""
    return _RULE_VARIABLE.sub(r"{\1}", rule).removeprefix(PREFIX)


# --- schema helpers -------------------------------------------------------------------------


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def string(max_length: int = 255, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length, **extra}


def integer(minimum: int, maximum: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "maximum": maximum}


def array(items: dict[str, Any], max_items: int = 100, **extra: Any) -> dict[str, Any]:
    return {"type": "array", "items": items, "maxItems": max_items, **extra}


def closed(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """An object whose unknown properties the API rejects (400 ``invalid_body``)."""
    out: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        out["required"] = list(required)
    return out


def shown(properties: dict[str, Any]) -> dict[str, Any]:
    """A response object (more properties may appear)."""
    return {"type": "object", "properties": properties}


BOOLEAN = {"type": "boolean"}
URL = string(2000)
STRINGS = array(string(2000))
TIMESTAMP = {"type": "string", "format": "date-time"}

# --- request and response schemas -----------------------------------------------------------

_CLIENT_PROPERTIES: dict[str, Any] = {
    "name": string(minLength=1),
    "description": string(140),
    "app_type": {"enum": list(APP_TYPES)},
    "token_endpoint_auth_method": {"enum": list(AUTH_METHODS)},
    "is_first_party": BOOLEAN,
    "callbacks": STRINGS,
    "allowed_logout_urls": STRINGS,
    "web_origins": STRINGS,
    "allowed_origins": STRINGS,
    "grant_types": array({"enum": sorted(GRANT_TYPES)}),
    "logo_uri": URL,
    "cross_origin_authentication": BOOLEAN,
    "cross_origin_auth": BOOLEAN,
    "cross_origin_loc": URL,
    "oidc_conformant": {"const": True},
    "is_token_endpoint_ip_header_trusted": BOOLEAN,
    "jwt_configuration": closed(
        {"lifetime_in_seconds": integer(1, 2592000), "alg": {"const": "RS256"}}
    ),
    "refresh_token": closed(
        {
            "rotation_type": {"enum": ["rotating", "non-rotating"]},
            "expiration_type": {"enum": ["expiring", "non-expiring"]},
            "leeway": {"type": "integer"},
            "token_lifetime": {"type": "integer"},
            "idle_token_lifetime": {"type": "integer"},
            "infinite_token_lifetime": BOOLEAN,
            "infinite_idle_token_lifetime": BOOLEAN,
        }
    ),
    "client_metadata": {
        "type": "object",
        "maxProperties": 10,
        "propertyNames": {"maxLength": 255},
        "additionalProperties": string(),
    },
}
_CONNECTION_PROPERTIES: dict[str, Any] = {
    "name": string(128, pattern=connections.NAME.pattern),
    "strategy": {"enum": list(KNOWN_STRATEGIES)},
    "display_name": {"type": ["string", "null"], "maxLength": 128},
    "options": {"type": "object"},
    "enabled_clients": array(string(), 1000),
}
_RESOURCE_SERVER_PROPERTIES: dict[str, Any] = {
    "name": string(minLength=1),
    "identifier": string(600, minLength=1),
    "scopes": array(
        closed(
            {
                "value": string(280, pattern=resource_servers.SCOPE_VALUE.pattern),
                "description": string(500),
            },
            ("value",),
        ),
        resource_servers.MAX_SCOPES,
    ),
    "signing_alg": {"enum": list(resource_servers.SIGNING_ALGS)},
    "token_lifetime": integer(1, resource_servers.MAX_TOKEN_LIFETIME_SECONDS),
    "token_dialect": {"enum": list(resource_servers.TOKEN_DIALECTS)},
    **{key: BOOLEAN for key in resource_servers.BOOLEANS},
}
_USER_PROPERTIES: dict[str, Any] = {
    "connection": string(128, minLength=1),
    "email": string(320, format="email"),
    "phone_number": string(32),
    "username": string(128),
    "password": string(1000),
    "email_verified": BOOLEAN,
    "verify_email": BOOLEAN,
    "phone_verified": BOOLEAN,
    "verify_phone_number": BOOLEAN,
    "blocked": BOOLEAN,
    "picture": URL,
    **{key: string(minLength=1) for key in users.ROOT_TEXT_FIELDS},
    **{key: {"type": "object"} for key in users.METADATA_FIELDS},
    "client_id": string(128, minLength=1),
}
_IDENTITY = shown(
    {
        "connection": {"type": "string"},
        "provider": {"type": "string"},
        "user_id": {"type": "string"},
        "isSocial": BOOLEAN,
        "profileData": {"type": "object"},
    }
)
_EXPORT_FIELD = closed(
    {"name": {"enum": list(jobs.EXPORTABLE)}, "export_as": string(100, minLength=1)}, ("name",)
)

SCHEMAS: dict[str, Any] = {
    "Error": shown(
        {
            "statusCode": {"type": "integer"},
            "error": {"type": "string"},
            "message": {"type": "string"},
            "errorCode": {"type": "string"},
        }
    ),
    "Client": shown(
        {"client_id": {"type": "string"}, "client_secret": {"type": "string"}} | _CLIENT_PROPERTIES
    ),
    "ClientCreate": closed(_CLIENT_PROPERTIES, ("name",)),
    "ClientUpdate": closed(_CLIENT_PROPERTIES),
    "Connection": shown(
        {
            "id": {"type": "string"},
            "realms": array({"type": "string"}),
            "is_domain_connection": BOOLEAN,
        }
        | _CONNECTION_PROPERTIES
    ),
    "ConnectionCreate": closed(_CONNECTION_PROPERTIES, ("name", "strategy")),
    "ConnectionUpdate": closed(
        {k: _CONNECTION_PROPERTIES[k] for k in sorted(connections.UPDATE_FIELDS)}
    ),
    "ConnectionClientsUpdate": array(
        closed({"client_id": string(), "status": BOOLEAN}, ("client_id", "status")),
        connections.MAX_CLIENT_CHANGES,
        minItems=1,
    ),
    "ConnectionClients": shown(
        {
            "clients": array(shown({"client_id": {"type": "string"}})),
            "next": {"type": "string"},
        }
    ),
    "ResourceServer": shown(
        {
            "id": {"type": "string"},
            "token_lifetime_for_web": {"type": "integer"},
            "is_system": BOOLEAN,
        }
        | _RESOURCE_SERVER_PROPERTIES
    ),
    "ResourceServerCreate": closed(_RESOURCE_SERVER_PROPERTIES, ("identifier",)),
    "ResourceServerUpdate": closed(
        {k: v for k, v in _RESOURCE_SERVER_PROPERTIES.items() if k != "identifier"}
    ),
    "ClientGrant": shown(
        {
            "id": {"type": "string"},
            "client_id": {"type": "string"},
            "audience": {"type": "string"},
            "scope": array({"type": "string"}),
        }
    ),
    "ClientGrantCreate": closed(
        {
            "client_id": string(minLength=1),
            "audience": string(600, minLength=1),
            "scope": array(string(2000), 1000),
        },
        tuple(sorted(client_grants.CREATE_FIELDS)),
    ),
    "ClientGrantUpdate": closed({"scope": array(string(2000), 1000)}),
    "SigningKey": shown(
        {
            "kid": {"type": "string"},
            "cert": {"type": "string"},
            "pkcs7": {"type": "string"},
            "fingerprint": {"type": "string"},
            "thumbprint": {"type": "string"},
            "current": BOOLEAN,
            "next": BOOLEAN,
            "previous": BOOLEAN,
            "revoked": BOOLEAN,
            "current_since": TIMESTAMP,
            "current_until": TIMESTAMP,
        }
    ),
    "SigningKeyCertificate": shown({"cert": {"type": "string"}, "kid": {"type": "string"}}),
    "PasswordChangeTicketCreate": closed(
        {
            "user_id": string(minLength=1),
            "email": string(320, minLength=1),
            "connection_id": string(minLength=1),
            "client_id": string(minLength=1),
            "result_url": URL
            | {
                "description": "[ls] checked like a callback; the reset page does not "
                "redirect to it yet."
            },
            "ttl_sec": integer(0, tickets.MAX_TTL_SECONDS),
            "mark_email_as_verified": BOOLEAN,
            "includeEmailInRedirect": BOOLEAN,
        }
    ),
    "Ticket": shown({"ticket": {"type": "string", "format": "uri"}}),
    "VerificationEmailJobCreate": closed(
        {
            "user_id": string(minLength=1),
            "client_id": string(minLength=1),
            "identity": closed(
                {"user_id": {"type": "string"}, "provider": {"type": "string"}},
                ("user_id", "provider"),
            ),
        },
        ("user_id",),
    ),
    "UsersExportJobCreate": closed(
        {
            "connection_id": string(minLength=1),
            "format": {"enum": list(jobs.EXPORT_FORMATS)},
            "fields": array(_EXPORT_FIELD, jobs.MAX_EXPORT_FIELDS, minItems=1),
            "limit": integer(1, jobs.MAX_EXPORT_USERS),
        }
    ),
    "Job": shown(
        {
            "id": {"type": "string"},
            "type": {"enum": ["verification_email", "users_export"]},
            "status": {"enum": ["pending", "completed", "failed"]},
            "created_at": TIMESTAMP,
            "completed_at": TIMESTAMP,
            "connection_id": {"type": "string"},
            "format": {"enum": list(jobs.EXPORT_FORMATS)},
            "fields": array(_EXPORT_FIELD, jobs.MAX_EXPORT_FIELDS),
            "location": {"type": "string", "format": "uri"},
        }
    ),
    "User": shown(
        {
            "user_id": {"type": "string"},
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
            "last_login": TIMESTAMP,
            "last_ip": {"type": "string"},
            "logins_count": {"type": "integer"},
            "identities": array(_IDENTITY),
        }
        | {k: v for k, v in _USER_PROPERTIES.items() if k in users.PROFILE_FIELDS}
    ),
    "UserCreate": closed(
        {k: v for k, v in _USER_PROPERTIES.items() if k in users.CREATE_FIELDS}, ("connection",)
    ),
    "UserUpdate": closed({k: v for k, v in _USER_PROPERTIES.items() if k in users.UPDATE_FIELDS}),
    "UserIdentityLink": closed(
        {
            "provider": string(64, minLength=1),
            "user_id": string(minLength=1),
            "connection_id": string(40, minLength=1),
            "link_with": string(8192, minLength=1),
        }
    ),
    "Identities": array(_IDENTITY),
    "OpenAPI": {"type": "object"},
}


def _page(name: str, item: str, per_page: int = body.MAX_PER_PAGE) -> dict[str, Any]:
    """A bare array, or with ``include_totals=true`` the paged object."""
    return {
        "oneOf": [
            array(ref(item), per_page),
            shown(
                {
                    "start": {"type": "integer"},
                    "limit": {"type": "integer"},
                    "length": {"type": "integer"},
                    "total": {"type": "integer"},
                    name: array(ref(item), per_page),
                }
            ),
        ]
    }


# --- operations -----------------------------------------------------------------------------


def query(name: str, schema: dict[str, Any], description: str = "", **extra: Any) -> dict:
    out = {"name": name, "in": "query", "required": False, "schema": schema, **extra}
    if description:
        out["description"] = description
    return out


PAGING = [
    query("page", integer(0, 999999999), "Page number, from 0."),
    query("per_page", integer(1, body.MAX_PER_PAGE), "Items per page."),
    query("include_totals", BOOLEAN, "Return the paged object with totals."),
]

USER_FIELDS = [
    query("fields", string(1000), "Comma-separated fields to include (or exclude)."),
    query("include_fields", BOOLEAN, "false: the fields are excluded."),
]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # OpenAPI form, relative to /api/v2
    summary: str
    scopes: tuple[str, ...]
    status: int = 200
    response: dict[str, Any] | None = None
    request: str | None = None  # a schema name
    params: list[dict[str, Any]] = field(default_factory=list)
    path_params: dict[str, str] = field(default_factory=dict)  # name -> description


# One line per operation reads as a table: kept as written.
# fmt: off
def operations() -> list[Operation]:
    client_id = {"client_id": "The client's client_id."}
    connection_id = {"connection_id": "The connection id (con_…)."}
    rs_id = {"rs_id": "The API's id (rs_…) or its identifier, URL-encoded."}
    grant_id = {"grant_id": "The client grant id (cgr_…)."}
    kid = {"kid": "The key id."}
    job_id = {"job_id": "The job id (job_…)."}
    user_id = {"user_id": "The user's user_id (provider|id), URL-encoded."}
    return [
        # clients
        Operation("get", "/clients", "List clients", ("read:clients",),
                  response=_page("clients", "Client"), params=PAGING),
        Operation("post", "/clients", "Create a client", ("create:clients",), 201,
                  ref("Client"), "ClientCreate"),
        Operation("get", "/clients/{client_id}", "Get a client", ("read:clients",),
                  response=ref("Client"), path_params=client_id),
        Operation("patch", "/clients/{client_id}", "Update a client", ("update:clients",),
                  response=ref("Client"), request="ClientUpdate", path_params=client_id),
        Operation("delete", "/clients/{client_id}", "Delete a client", ("delete:clients",), 204,
                  path_params=client_id),
        Operation("post", "/clients/{client_id}/rotate-secret", "Rotate a client's secret",
                  ("update:client_keys",), response=ref("Client"), path_params=client_id),
        # connections
        Operation("get", "/connections", "List connections", ("read:connections",),
                  response=_page("connections", "Connection"),
                  params=[*PAGING,
                          query("strategy", array({"enum": list(KNOWN_STRATEGIES)}),
                                "Only these strategies (repeatable).", style="form",
                                explode=True),
                          query("name", string(128), "Only the connection of this name.")]),
        Operation("post", "/connections", "Create a connection", ("create:connections",), 201,
                  ref("Connection"), "ConnectionCreate"),
        Operation("get", "/connections/{connection_id}", "Get a connection",
                  ("read:connections",), response=ref("Connection"), path_params=connection_id),
        Operation("patch", "/connections/{connection_id}", "Update a connection",
                  ("update:connections",), response=ref("Connection"),
                  request="ConnectionUpdate", path_params=connection_id),
        Operation("delete", "/connections/{connection_id}", "Delete a connection",
                  ("delete:connections",), 204, path_params=connection_id),
        Operation("get", "/connections/{connection_id}/clients",
                  "Clients the connection is enabled for", ("read:connections",),
                  response=ref("ConnectionClients"), path_params=connection_id,
                  params=[query("take", integer(1, body.MAX_PER_PAGE), "Items per page."),
                          query("from", string(), "The previous page's 'next'.")]),
        Operation("patch", "/connections/{connection_id}/clients",
                  "Enable or disable the connection per client", ("update:connections",), 204,
                  request="ConnectionClientsUpdate", path_params=connection_id),
        # users
        Operation("get", "/users", "List or search users", ("read:users",),
                  response=_page("users", "User", users.MAX_PER_PAGE),
                  params=[*PAGING[:1],
                          query("per_page", integer(1, users.MAX_PER_PAGE), "Items per page."),
                          *PAGING[2:],
                          query("q", string(users.MAX_QUERY_LENGTH),
                                "Lucene-like query: field:value, quotes, AND/OR, '*' suffix."),
                          query("search_engine", {"enum": ["v2", "v3"]}),
                          query("connection", string(128), "Only users of this connection."),
                          query("sort", string(64), "field:1 or field:-1."),
                          *USER_FIELDS]),
        Operation("post", "/users", "Create a user", ("create:users",), 201, ref("User"),
                  "UserCreate"),
        Operation("get", "/users/{user_id}", "Get a user", ("read:users",),
                  response=ref("User"), params=USER_FIELDS, path_params=user_id),
        Operation("patch", "/users/{user_id}", "Update a user",
                  ("update:users", "update:users_app_metadata"), response=ref("User"),
                  request="UserUpdate", path_params=user_id),
        Operation("delete", "/users/{user_id}", "Delete a user", ("delete:users",), 204,
                  path_params=user_id),
        Operation("get", "/users-by-email", "Users with this email, over every connection",
                  ("read:users",), response=array(ref("User"), 1000),
                  params=[query("email", string(320), "The email address.", required=True),
                          *USER_FIELDS]),
        Operation("post", "/users/{user_id}/identities", "Link another user into this one",
                  ("update:users",), 201, ref("Identities"), "UserIdentityLink",
                  path_params=user_id),
        Operation("delete", "/users/{user_id}/identities/{provider}/{identity_user_id}",
                  "Unlink an identity into a user of its own", ("update:users",),
                  response=ref("Identities"),
                  path_params=user_id | {"provider": "The identity's provider.",
                                         "identity_user_id": "The identity's user id "
                                         "(without the provider prefix)."}),
        # resource servers
        Operation("get", "/resource-servers", "List APIs", ("read:resource_servers",),
                  response=_page("resource_servers", "ResourceServer"),
                  params=[*PAGING,
                          query("identifiers", array(string(600)),
                                "Only these identifiers (repeatable).", style="form",
                                explode=True)]),
        Operation("post", "/resource-servers", "Create an API", ("create:resource_servers",),
                  201, ref("ResourceServer"), "ResourceServerCreate"),
        Operation("get", "/resource-servers/{rs_id}", "Get an API", ("read:resource_servers",),
                  response=ref("ResourceServer"), path_params=rs_id),
        Operation("patch", "/resource-servers/{rs_id}", "Update an API (not the system API)",
                  ("update:resource_servers",), response=ref("ResourceServer"),
                  request="ResourceServerUpdate", path_params=rs_id),
        Operation("delete", "/resource-servers/{rs_id}",
                  "Delete an API and its client grants (not the system API)",
                  ("delete:resource_servers",), 204, path_params=rs_id),
        # client grants
        Operation("get", "/client-grants", "List client grants", ("read:client_grants",),
                  response=_page("client_grants", "ClientGrant"),
                  params=[*PAGING, query("audience", string(600)),
                          query("client_id", string())]),
        Operation("post", "/client-grants", "Create a client grant", ("create:client_grants",),
                  201, ref("ClientGrant"), "ClientGrantCreate"),
        Operation("patch", "/client-grants/{grant_id}", "Update a client grant's scopes",
                  ("update:client_grants",), response=ref("ClientGrant"),
                  request="ClientGrantUpdate", path_params=grant_id),
        Operation("delete", "/client-grants/{grant_id}", "Delete a client grant",
                  ("delete:client_grants",), 204, path_params=grant_id),
        # signing keys
        Operation("get", "/keys/signing", "List signing keys", ("read:signing_keys",),
                  response=array(ref("SigningKey"), 1000)),
        Operation("get", "/keys/signing/{kid}", "Get a signing key", ("read:signing_keys",),
                  response=ref("SigningKey"), path_params=kid),
        Operation("post", "/keys/signing/rotate", "Rotate the signing key",
                  ("create:signing_keys", "update:signing_keys"), 201,
                  ref("SigningKeyCertificate")),
        Operation("put", "/keys/signing/{kid}/revoke", "Revoke a signing key (not the current)",
                  ("update:signing_keys",), response=ref("SigningKeyCertificate"),
                  path_params=kid),
        # tickets and jobs
        Operation("post", "/tickets/password-change", "Create a password-change ticket",
                  ("create:user_tickets",), 201, ref("Ticket"), "PasswordChangeTicketCreate"),
        Operation("post", "/jobs/verification-email", "Send a verification email",
                  ("update:users",), 201, ref("Job"), "VerificationEmailJobCreate"),
        Operation("post", "/jobs/users-exports", "Export users", ("read:users",), 201,
                  ref("Job"), "UsersExportJobCreate"),
        Operation("get", "/jobs/{job_id}", "Get a job", ("read:users", "create:users"),
                  response=ref("Job"), path_params=job_id),
        Operation("get", "/jobs/{job_id}/export", "Download a users export",
                  ("read:users",), path_params=job_id),
        # this document
        Operation("get", "/openapi.json", "This OpenAPI document", (), response=ref("OpenAPI")),
    ]
# fmt: on


def _operation(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operationId": f"{op.method}_{op.path.strip('/')}".replace("/", "_")
        .replace("{", "")
        .replace("}", "")
        .replace("-", "_")
        .replace(".", "_"),
        "summary": op.summary,
        "parameters": [
            {
                "name": name,
                "in": "path",
                "required": True,
                "description": description,
                "schema": {"type": "string", "minLength": 1},
            }
            for name, description in op.path_params.items()
        ]
        + op.params,
        "responses": _responses(op),
    }
    if op.scopes:
        out["description"] = f"Scopes: any of {', '.join(op.scopes)}."
        out["x-required-scopes"] = list(op.scopes)
    else:
        out["security"] = []
    if op.request is not None:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(op.request)}},
        }
    return out


def _responses(op: Operation) -> dict[str, Any]:
    if op.status == 204:
        success: dict[str, Any] = {"description": "Done."}
    elif op.response is None:
        success = {
            "description": "The export file.",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    else:
        success = {"description": "OK.", "content": {"application/json": {"schema": op.response}}}
    out: dict[str, Any] = {str(op.status): success}
    if op.scopes:
        for status in ("400", "401", "403", "404", "409", "429"):
            out[status] = {"$ref": "#/components/responses/Error"}
    return out


def registered(app: Flask) -> set[tuple[str, str]]:
    """(method, OpenAPI path) of every route of the ``management`` blueprint."""
    out = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("management."):
            for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
                out.add((method.lower(), openapi_path(rule.rule)))
    return out


def document(app: Flask, issuer: str) -> dict[str, Any]:
    """The document for the tenant at ``issuer``: the operations whose route exists."""
    routes = registered(app)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations():
        if (op.method, op.path) in routes:
            paths.setdefault(op.path, {})[op.method] = _operation(op)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "login_site Management API v2",
            "version": "2",
            "description": "Auth0-compatible Management API subset. Get a token with the "
            "client_credentials grant for the audience "
            f"{issuer}{AUDIENCE_PATH} and send it as a Bearer token.",
        },
        "servers": [{"url": f"{issuer.rstrip('/')}{PREFIX}"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "schemas": SCHEMAS,
            "responses": {
                "Error": {
                    "description": "Auth0's error shape.",
                    "content": {"application/json": {"schema": ref("Error")}},
                }
            },
        },
    }
