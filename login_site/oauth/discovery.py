"""OpenID Provider metadata (Discovery 1.0 §3, RFC 8414), per tenant issuer.

The document depends on the issuer alone, so its bytes are made once per issuer. Most
requests for it are answered in front of Flask (:class:`DiscoveryAnswer`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

from flask import Flask
from werkzeug.exceptions import SecurityError
from werkzeug.wsgi import get_host

from login_site import events
from login_site import tenancy
from login_site.oauth.tokens import SCOPE_CLAIMS
from login_site.security import headers

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIApplication
    from _typeshed.wsgi import WSGIEnvironment

PATH = "/.well-known/openid-configuration"
CACHE_CONTROL = "public, max-age=300"


# Keyed by the issuer string: nothing stored can make it stale. Only tenants' hosts get
# this far (others are answered 404 first), and at most 1024 issuers are kept.
@lru_cache(maxsize=1024)
def document(issuer: str) -> bytes:
    """The metadata as served: compact JSON, keys sorted, a final newline (as ``jsonify``)."""
    body = json.dumps(openid_configuration(issuer), sort_keys=True, separators=(",", ":"))
    return f"{body}\n".encode()


class DiscoveryAnswer:
    """WSGI middleware: ``GET /.well-known/openid-configuration`` answered without Flask when
    the request needs nothing of it: no ``Cookie`` header (Flask would open, and might
    refresh, the session cookie) and a host whose tenant the tenant cache holds
    (``TenantCache.holds``). Everything else, an unknown host's 404 included, goes on to
    Flask, which also reads a tenant again once its cache entry is older than
    ``TENANT_CACHE_SECONDS``. The answer is Flask's own, header for header (the tests compare
    both): this path has no rate limit, CORS or CSRF check, and Flask's answers carry
    ``Vary: Cookie`` because flask-login reads the session on every request."""

    def __init__(self, app: Flask, wsgi_app: WSGIApplication):
        self.app = app
        self.wsgi_app = wsgi_app
        self.tenants: tenancy.TenantCache = app.extensions[tenancy.CACHE]

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if (
            environ.get("PATH_INFO") != PATH
            or environ.get("REQUEST_METHOD") != "GET"
            or "HTTP_COOKIE" in environ
        ):
            return self.wsgi_app(environ, start_response)
        try:
            host = get_host(environ, self.app.config["TRUSTED_HOSTS"])
        except SecurityError:
            return self.wsgi_app(environ, start_response)  # Flask's 400
        if not self.tenants.holds(host):
            return self.wsgi_app(environ, start_response)
        scheme = environ["wsgi.url_scheme"]
        body = document(tenancy.issuer_of(scheme, host))
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", CACHE_CONTROL),
                *headers.always(scheme),
                ("X-Request-Id", events.request_id(environ.get("HTTP_X_REQUEST_ID", ""))),
                ("Vary", "Cookie"),
            ],
        )
        return [body]


def init_app(app: Flask) -> None:
    """After ``tenancy.init_app``, and before ProxyFix wraps ``app.wsgi_app``: the scheme and
    host read here are the ones Flask's request would see."""
    app.wsgi_app = DiscoveryAnswer(app, app.wsgi_app)


def openid_configuration(issuer: str) -> dict:
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}authorize",
        "token_endpoint": f"{issuer}oauth/token",
        "userinfo_endpoint": f"{issuer}userinfo",
        "jwks_uri": f"{issuer}.well-known/jwks.json",
        "revocation_endpoint": f"{issuer}oauth/revoke",
        "end_session_endpoint": f"{issuer}oidc/logout",
        "scopes_supported": [
            "openid",
            "profile",
            "offline_access",
            "email",
            "phone",
            "name",
            "given_name",
            "family_name",
            "nickname",
            "email_verified",
            "picture",
        ],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post", "web_message"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "password",
            "http://auth0.com/oauth/grant-type/password-realm",
            "http://auth0.com/oauth/grant-type/passwordless/otp",
        ],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": sorted(
            {"aud", "auth_time", "exp", "iat", "iss", "sub", "nonce", "sid", "at_hash", "azp"}
            | {c for names in SCOPE_CLAIMS.values() for c in names}
        ),
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
        "claims_parameter_supported": False,
    }
