"""The two documents relying parties fetch most, answered in front of Flask.

``GET /.well-known/openid-configuration`` depends on the issuer alone
(``discovery.document``); ``GET /.well-known/jwks.json`` on the tenant's published keys, kept
per worker under the tenant's ``config_version`` (``keys.cached_jwks``). Neither needs a
session, a query or a template, yet Flask's request handling costs several times the answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from flask import Flask
from werkzeug.exceptions import SecurityError
from werkzeug.wsgi import get_host

from login_site import events
from login_site import tenancy
from login_site.models import Tenant
from login_site.oauth import discovery
from login_site.oauth import keys
from login_site.security import headers
from login_site.security import ratelimit

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIApplication
    from _typeshed.wsgi import WSGIEnvironment

JWKS_PATH = "/.well-known/jwks.json"
JWKS_CACHE_CONTROL = "public, max-age=300"


class WellKnownAnswer:
    """WSGI middleware: the discovery document and the JWKS answered without Flask when the
    request needs nothing of it: ``GET``, no ``Cookie`` header (Flask would open, and might
    refresh, the session cookie) and a host whose tenant the tenant cache holds
    (``TenantCache.peek``); for the JWKS also a document this worker made under the tenant's
    current version, and a request within its rate limit (counted here, in the same storage
    and under the same key as Flask counts it). Everything else, an unknown host's 404 and a
    JWKS request over its limit included, goes on to Flask, which also reads a tenant again
    once its cache entry is older than ``TENANT_CACHE_SECONDS``. The answers are Flask's own,
    header for header (the tests compare both): these paths have no CORS or CSRF check, and
    Flask's answers carry ``Vary: Cookie`` because flask-login reads the session on every
    request."""

    def __init__(self, app: Flask, wsgi_app: WSGIApplication):
        self.app = app
        self.wsgi_app = wsgi_app
        self.tenants: tenancy.TenantCache = app.extensions[tenancy.CACHE]

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO")
        if (
            (path != discovery.PATH and path != JWKS_PATH)
            or environ.get("REQUEST_METHOD") != "GET"
            or "HTTP_COOKIE" in environ
        ):
            return self.wsgi_app(environ, start_response)
        try:
            host = get_host(environ, self.app.config["TRUSTED_HOSTS"])
        except SecurityError:
            return self.wsgi_app(environ, start_response)  # Flask's 400
        tenant = self.tenants.peek(host)
        if tenant is None:
            return self.wsgi_app(environ, start_response)
        scheme = environ["wsgi.url_scheme"]
        if path == discovery.PATH:
            body = discovery.document(tenancy.issuer_of(scheme, host))
            answer = [("Cache-Control", discovery.CACHE_CONTROL)]
        else:
            jwks = self._jwks(environ, tenant)
            if jwks is None:
                return self.wsgi_app(environ, start_response)
            body, answer = jwks
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                *answer,
                *headers.always(scheme),
                ("X-Request-Id", events.request_id(environ.get("HTTP_X_REQUEST_ID", ""))),
                ("Vary", "Cookie"),
            ],
        )
        return [body]

    def _jwks(
        self, environ: WSGIEnvironment, tenant: Tenant
    ) -> tuple[bytes, list[tuple[str, str]]] | None:
        body = keys.cached_jwks(self.app, tenant)
        if body is None:
            return None
        answer = [("Cache-Control", JWKS_CACHE_CONTROL)]
        key = ratelimit.tenant_ip_key(tenant.id, environ.get("REMOTE_ADDR") or "")
        applied = ratelimit.count_outside_flask(self.app, "jwks", key)
        if applied is not None:
            if applied.breached:
                return None
            answer += ratelimit.header_items(applied)
        return body, answer


def init_app(app: Flask) -> None:
    """After ``tenancy.init_app`` and ``ratelimit.init_app``, and before ProxyFix wraps
    ``app.wsgi_app``: the scheme, host and address read here are the ones Flask's request
    would see."""
    keys.init_app(app)
    app.wsgi_app = WellKnownAnswer(app, app.wsgi_app)
