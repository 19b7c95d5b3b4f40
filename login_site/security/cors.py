"""CORS for the browser-facing JSON endpoints (compat §0.5).

A preflight carries no client, so it is answered for origins that some client of the
tenant registered; the real response names the client (``client_id`` in the body or Basic
header, or the access token's client) and is answered only for that client's origins:
its allowed web origins, allowed origins (CORS) and the origins of its callbacks.
Never ``*``; ``Vary: Origin`` always.
"""

from __future__ import annotations

from flask import Flask
from flask import Response
from flask import g
from flask import request
from sqlalchemy import select

from login_site import config_cache
from login_site.db import get_db
from login_site.models import Client
from login_site.oauth.authorize import origin_of

CORS_PATHS = (
    "/oauth/token",
    "/oauth/revoke",
    "/userinfo",
    "/dbconnections/signup",
    "/dbconnections/change_password",
    "/co/authenticate",
    "/passwordless/start",
)
CREDENTIALED_PATHS = ("/co/authenticate",)  # sent with credentials: sets the ticket cookie
ALLOWED_HEADERS = "auth0-client, authorization, content-type, dpop, x-request-language"
MAX_AGE_SECONDS = 600


def client_origins(client: Client) -> set[str]:
    origins = set(client.web_origins or []) | set(client.allowed_origins or [])
    origins |= {origin_of(url) for url in client.callbacks or [] if url.startswith("http")}
    return origins


def tenant_origins(tenant_id: str) -> set[str]:
    clients = get_db().execute(select(Client).where(Client.tenant_id == tenant_id)).scalars()
    return set().union(*(client_origins(c) for c in clients))


def _allowed_for_request(origin: str) -> bool:
    tenant = g.get("tenant")
    if tenant is None:
        return False
    client = None
    if g.get("cors_client_pk"):
        client = get_db().get(Client, g.cors_client_pk)
    elif g.get("cors_client_id"):
        client = config_cache.client(get_db(), tenant, g.cors_client_id)
    if client is not None and client.tenant_id == tenant.id:
        return origin in client_origins(client)
    return origin in tenant_origins(tenant.id)


def _allow(response: Response, origin: str) -> None:
    response.headers["Access-Control-Allow-Origin"] = origin
    # Only /co/authenticate is called with credentials; the others take bearer tokens.
    if request.path in CREDENTIALED_PATHS:
        response.headers["Access-Control-Allow-Credentials"] = "true"


def init_app(app: Flask) -> None:
    @app.before_request
    def _preflight():
        if request.method != "OPTIONS" or request.path not in CORS_PATHS:
            return None
        response = Response(status=204)
        response.headers["Vary"] = "Origin"
        origin = request.headers.get("Origin")
        tenant = g.get("tenant")
        if origin and tenant is not None and origin in tenant_origins(tenant.id):
            _allow(response, origin)
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = str(MAX_AGE_SECONDS)
        return response

    @app.after_request
    def _actual(response: Response):
        if request.method == "OPTIONS" or request.path not in CORS_PATHS:
            return response
        response.headers.add("Vary", "Origin")
        origin = request.headers.get("Origin")
        if origin and _allowed_for_request(origin):
            _allow(response, origin)
        return response
