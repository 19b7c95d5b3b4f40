"""All authlib wiring in one place (canaille's layout).

authlib runs the token endpoint's protocol checks; we supply storage hooks and
policy, and override its lax defaults: exact redirect URIs, PKCE S256 only and
required for public clients, codes spent atomically, secrets compared in
constant time, JSON bodies accepted (Auth0 SDKs send JSON), repeated
parameters and query-string secrets rejected.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections import defaultdict
from functools import cached_property

from authlib.oauth2 import AuthorizationServer as _AuthorizationServer
from authlib.oauth2 import OAuth2Request
from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from flask import Flask
from flask import Response
from flask import current_app
from flask import g
from flask import request as flask_request

from login_site import config_cache
from login_site.db import get_db
from login_site.errors import safe_description
from login_site.events import event
from login_site.models import Client
from login_site.oauth import grants
from login_site.oauth.passwordless_grant import PasswordlessOtpGrant
from login_site.oauth.revoke import revoke_token
from login_site.oauth.vault_grant import FederatedTokenExchangeGrant
from login_site.vault import keyring

DEFAULT_DESCRIPTIONS = {
    "unsupported_grant_type": "Unsupported grant_type.",
    "invalid_client": "Client authentication failed.",
    "invalid_grant": "Invalid authorization code.",
}


SECRET_DIGESTS = "login_site.client_secret_digests"  # noqa: S105 - an extension key
MAX_SECRET_DIGESTS = 4096


def secret_digest(secret_enc: str) -> bytes:
    """SHA-256 of a client secret, by its stored ciphertext (a stored version: a rotated
    secret has another). Saves decrypting it on every token request; the plaintext is not
    kept, and the digest of a 32-byte random secret reveals nothing usable."""
    digests = current_app.extensions.setdefault(SECRET_DIGESTS, {})
    digest = digests.get(secret_enc)
    if digest is None:
        plain = keyring().decrypt(secret_enc)
        digest = hashlib.sha256(plain.encode("utf-8", "surrogatepass")).digest()
        if len(digests) >= MAX_SECRET_DIGESTS:
            digests.clear()
        digests[secret_enc] = digest
    return digest


class ClientAdapter(ClientMixin):
    """authlib's view of our :class:`Client`."""

    def __init__(self, client: Client):
        self.model = client

    def get_client_id(self):
        return self.model.client_id

    def get_default_redirect_uri(self):
        return None  # never default (OIDC Core §3.1.2.1)

    def get_allowed_scope(self, scope):
        return scope

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri in (self.model.callbacks or [])

    def check_client_secret(self, client_secret):
        if self.model.is_public or not self.model.client_secret_enc:
            return False
        presented = hashlib.sha256(client_secret.encode("utf-8", "surrogatepass")).digest()
        return hmac.compare_digest(secret_digest(self.model.client_secret_enc), presented)

    def check_endpoint_auth_method(self, method, endpoint):
        if self.model.is_public:
            return method == "none"
        if endpoint == "revoke" and method == "none":
            return False
        # A confidential client may present its secret by either transport (compat §0.3).
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type in (self.model.grant_types or [])


class Payload(OAuth2Payload):
    def __init__(self, data: dict[str, str]):
        self._data = data

    @property
    def data(self):
        return self._data

    @cached_property
    def datalist(self):
        values = defaultdict(list)
        for key, value in self._data.items():
            values[key].append(value)
        return values


class TokenRequest(OAuth2Request):
    """A token request from a form or JSON body, checked before authlib sees it."""

    def __init__(self, data: dict[str, str]):
        # Skip authlib's transport check: TLS is terminated in front of us and the
        # issuer's scheme follows the request (compat §0.1).
        self.method = flask_request.method
        self.uri = flask_request.url
        self.headers = flask_request.headers
        self._body = None
        self.payload = Payload(data)
        self.client = None
        self.auth_method = None
        self.user = None
        self.authorization_code = None
        self.refresh_token = None
        self.credential = None
        self._scope = None

    @property
    def args(self):
        return flask_request.args

    @property
    def form(self):
        return self.payload.data


def read_body() -> dict[str, str]:
    """Form or JSON body as single values; ``null``/``""`` mean absent (compat §0.2)."""
    if any(k in flask_request.args for k in ("client_secret", "code", "password")):
        raise InvalidRequestError("Credentials are not accepted in the query string.")
    if flask_request.is_json:
        try:
            raw = json.loads(flask_request.get_data(as_text=False) or b"null")
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise InvalidRequestError("The request body is not valid JSON.") from exc
        if not isinstance(raw, dict):
            raise InvalidRequestError("The request body must be a JSON object.")
        data = {}
        for key, value in raw.items():
            if value is None or value == "":
                continue
            if isinstance(value, bool | int | float):
                value = json.dumps(value)
            if not isinstance(value, str):
                raise InvalidRequestError(f"Invalid value for {str(key)[:40]}.")
            data[str(key)] = value
        return data
    form = flask_request.form
    data = {}
    for key in form:
        values = form.getlist(key)
        if len(values) > 1:
            raise InvalidRequestError(f"The {key[:40]} parameter was sent more than once.")
        if values[0] != "":
            data[key] = values[0]
    return data


def basic_client_id() -> str | None:
    header = flask_request.headers.get("Authorization", "")
    parts = header.split(None, 1)
    if len(parts) != 2 or parts[0].lower() != "basic":
        return None
    try:
        return base64.b64decode(parts[1], validate=True).decode().split(":", 1)[0] or None
    except (ValueError, UnicodeDecodeError):
        return None


def check_client_auth_header(data: dict[str, str]) -> None:
    """One authentication method per request, and a well-formed Basic header
    (authlib's parser raises on some malformed ones)."""
    header = flask_request.headers.get("Authorization", "")
    parts = header.split(None, 1)
    if not parts or parts[0].lower() != "basic":
        return
    if "client_secret" in data:
        raise InvalidClientError(
            description="Use one client authentication method only.", status_code=401
        )
    try:
        decoded = base64.b64decode(parts[1].strip(), validate=True).decode()
    except (IndexError, ValueError, UnicodeDecodeError):
        decoded = ""
    if ":" not in decoded:
        raise InvalidClientError(
            description="Malformed Basic authorization header.", status_code=401
        )


class AuthorizationServer(_AuthorizationServer):
    def query_client(self, client_id):
        if not client_id:
            return None
        client = config_cache.client(get_db(), g.tenant, client_id)
        return ClientAdapter(client) if client else None

    def save_token(self, token, request):
        """Tokens are stored by the grants."""

    def create_oauth2_request(self, request):
        data = read_body()
        g.grant_type = data.get("grant_type")
        g.cors_client_id = data.get("client_id") or basic_client_id()
        check_client_auth_header(data)
        return TokenRequest(data)

    def create_json_request(self, request):  # pragma: no cover - not used
        raise NotImplementedError

    def handle_response(self, status_code, payload, headers):
        if isinstance(payload, dict) and "error" in payload:
            payload = {
                **payload,
                "error_description": safe_description(
                    payload.get("error_description")
                    or DEFAULT_DESCRIPTIONS.get(payload["error"], "The request was rejected.")
                ),
            }
            if payload["error"] == "invalid_client":
                status_code = 401
            event("token", payload["error"], grant_type=g.get("grant_type"))
        else:
            event("token", "issued", grant_type=g.get("grant_type"))
        body = json.dumps(payload) if isinstance(payload, dict) else payload
        response = Response(body, status=status_code, mimetype="application/json")
        for key, value in headers:
            response.headers[key] = value
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
        return response

    def send_signal(self, name, *args, **kwargs):
        """No signals."""


def revocation_response():
    """RFC 7009 §2: authenticate the client, revoke, answer 200 with an empty body."""
    server = authorization_server()
    request = server.create_oauth2_request(flask_request)
    try:
        client = server.authenticate_client(request, grants.TOKEN_AUTH_METHODS, "revoke")
        token = request.form.get("token")
        if not token:
            raise InvalidRequestError("Missing 'token' in request.")
    except OAuth2Error as error:
        return server.handle_error_response(request, error)
    revoke_token(get_db(), g.tenant, client.model, token)
    event("revoke", "success", client_id=client.model.client_id)
    return Response("", 200, {"Cache-Control": "no-store", "Pragma": "no-cache"})


def setup_oauth(app: Flask) -> None:
    # authlib logs issued tokens at DEBUG ("Issue token {...}"): never let them reach a log.
    logging.getLogger("authlib").setLevel(logging.WARNING)
    server = AuthorizationServer()
    server.register_grant(
        grants.AuthorizationCodeGrant, [grants.StrictCodeChallenge(required=True)]
    )
    server.register_grant(grants.RefreshTokenGrant)
    server.register_grant(grants.ClientCredentialsGrant)
    server.register_grant(grants.PasswordGrant)
    server.register_grant(PasswordlessOtpGrant)
    server.register_grant(FederatedTokenExchangeGrant)
    app.extensions["login_site.oauth"] = server


def authorization_server() -> AuthorizationServer:
    return current_app.extensions["login_site.oauth"]
