"""Three answers made in front of Flask: the two documents relying parties fetch most and
``/userinfo``, the API call applications make most.

``GET /.well-known/openid-configuration`` depends on the issuer alone
(``discovery.document``); ``GET /.well-known/jwks.json`` on the tenant's published keys, kept
per worker under the tenant's ``config_version`` (``keys.cached_jwks``); ``GET /userinfo``
with a bearer token on one query (``userinfo.answer_outside_flask``). None of them needs a
session cookie, a template or a form, yet Flask's request handling costs as much as the
answer or more (docs/architecture.md, Performance).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
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
from login_site.oauth import userinfo
from login_site.security import headers
from login_site.security import ratelimit

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIApplication
    from _typeshed.wsgi import WSGIEnvironment

log = logging.getLogger("login_site.fastpath")

JWKS_PATH = "/.well-known/jwks.json"
JWKS_CACHE_CONTROL = "public, max-age=300"
USERINFO_PATH = "/userinfo"

Headers = list[tuple[str, str]]
# (body, headers of its own, whether Flask's CORS hook would add ``Vary: Origin``), or None:
# Flask answers.
Answer = tuple[bytes, Headers, bool]
# As Flask's hooks place them: ``Vary: Origin`` comes from the CORS hook, which runs before
# the request id's; ``Cookie`` joins the first ``Vary`` header when the session is saved.
VARY = ("Vary", "Cookie")
VARY_ORIGIN = ("Vary", "Origin, Cookie")


class FastPath:
    """WSGI middleware: the three answers without Flask when the request needs nothing of
    it: ``GET``, no ``Cookie`` header (Flask would open, and might refresh, the session
    cookie) and a host whose tenant the tenant cache holds (``TenantCache.peek``). The JWKS
    also needs a document this worker made under the tenant's current version; userinfo a
    bearer token in the header, no ``Origin`` (CORS is Flask's) and a live token of a user
    who may sign in. Both count their rate limit here, in the same storage and under the
    same key as Flask, and hand the count on to Flask (``ratelimit.COUNTED``) when they pass
    the request on. Everything else (an unknown host's 404, any error or failing dependency,
    a request over its limit, the first request of each tenant-cache period) goes on to
    Flask. The answers are Flask's own, header for header: the tests compare both."""

    def __init__(self, app: Flask, wsgi_app: WSGIApplication):
        self.app = app
        self.wsgi_app = wsgi_app
        self.tenants: tenancy.TenantCache = app.extensions[tenancy.CACHE]
        self.answers: dict[str, Callable[[WSGIEnvironment, Tenant, str, str], Answer | None]] = {
            discovery.PATH: self._discovery,
            JWKS_PATH: self._jwks,
            USERINFO_PATH: self._userinfo,
        }

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        answer = self.answers.get(environ.get("PATH_INFO", ""))
        if answer is None or environ.get("REQUEST_METHOD") != "GET" or "HTTP_COOKIE" in environ:
            return self.wsgi_app(environ, start_response)
        try:
            host = get_host(environ, self.app.config["TRUSTED_HOSTS"])
        except SecurityError:
            return self.wsgi_app(environ, start_response)  # Flask's 400
        tenant = self.tenants.peek(host)
        if tenant is None:
            return self.wsgi_app(environ, start_response)
        scheme = environ["wsgi.url_scheme"]
        try:
            answered = answer(environ, tenant, scheme, host)
        except Exception:  # a failing dependency (the database): Flask answers, or errs its way
            log.debug("fast path for %s passed to Flask", environ.get("PATH_INFO"), exc_info=True)
            answered = None
        if answered is None:
            return self.wsgi_app(environ, start_response)
        body, own, cors = answered
        request_id = ("X-Request-Id", events.request_id(environ.get("HTTP_X_REQUEST_ID", "")))
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                *own,
                *headers.always(scheme),
                *((VARY_ORIGIN, request_id) if cors else (request_id, VARY)),
            ],
        )
        return [body]

    def _discovery(self, _environ, _tenant, scheme: str, host: str) -> Answer:
        body = discovery.document(tenancy.issuer_of(scheme, host))
        return body, [("Cache-Control", discovery.CACHE_CONTROL)], False

    def _count(self, environ: WSGIEnvironment, class_name: str, key: str) -> Headers | None:
        """Count the request against its class's limit: its ``X-RateLimit-*`` headers, or
        None past the limit. The count is left in the environ for Flask, should the request
        go on to it (``ratelimit.COUNTED``): it is not counted twice."""
        applied = ratelimit.count_outside_flask(self.app, class_name, key)
        if applied is None:
            return []
        environ[ratelimit.COUNTED] = applied
        return None if applied.breached else ratelimit.header_items(applied)

    def _jwks(self, environ: WSGIEnvironment, tenant: Tenant, _scheme, _host) -> Answer | None:
        body = keys.cached_jwks(self.app, tenant)
        if body is None:
            return None
        key = ratelimit.tenant_ip_key(tenant.id, environ.get("REMOTE_ADDR") or "")
        limit = self._count(environ, "jwks", key)
        if limit is None:
            return None
        return body, [("Cache-Control", JWKS_CACHE_CONTROL), *limit], False

    def _userinfo(self, environ: WSGIEnvironment, tenant: Tenant, _scheme, _host) -> Answer | None:
        token = userinfo.bearer_of(environ.get("HTTP_AUTHORIZATION", ""))
        if not token or len(token) > userinfo.MAX_TOKEN_LENGTH or "HTTP_ORIGIN" in environ:
            return None
        limit = self._count(environ, "userinfo", ratelimit.token_key(tenant.id, token))
        if limit is None:
            return None
        with self.app.extensions["login_site.sessionmaker"]() as db:
            claims = userinfo.answer_outside_flask(db, tenant.id, token)
        if claims is None:
            return None
        body = self.app.json.response(claims).get_data()
        return body, [("Cache-Control", "no-store"), *limit], True


def init_app(app: Flask) -> None:
    """After ``tenancy.init_app`` and ``ratelimit.init_app``, and before ProxyFix wraps
    ``app.wsgi_app``: the scheme, host and address read here are the ones Flask's request
    would see."""
    app.wsgi_app = FastPath(app, app.wsgi_app)
