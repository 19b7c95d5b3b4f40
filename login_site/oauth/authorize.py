"""``/authorize`` as an ordered list of small checks (node-oidc-provider's layout).

Until the client and its redirect URI are validated, every failure is a page
(:class:`PageError`). After that, failures go back to the application as
:class:`RedirectError`, which carries the validated target.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import field
from datetime import timedelta
from html import escape
from typing import Any
from urllib.parse import urlencode
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from flask import Response
from flask import render_template
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from login_site import config_cache
from login_site.connections.base import get_strategy
from login_site.db import core
from login_site.db import utcnow
from login_site.errors import AccessDenied
from login_site.errors import InvalidRequest
from login_site.errors import LoginSiteError
from login_site.errors import PageError
from login_site.errors import RequestNotSupported
from login_site.errors import RequestUriNotSupported
from login_site.errors import UnauthorizedClient
from login_site.errors import UnsupportedResponseType
from login_site.errors import safe_description
from login_site.i18n import N_
from login_site.models import AuthorizationCode
from login_site.models import Client
from login_site.models import Connection
from login_site.models import ResourceServer
from login_site.models import Tenant
from login_site.models.ids import new_secret
from login_site.oauth import keys
from login_site.security.secrets import sha256_hex

RESPONSE_MODES = ("query", "form_post", "web_message")
PROMPTS = ("none", "login", "consent", "select_account")
OIDC_SCOPES = ("openid", "profile", "email", "phone", "address", "offline_access")
CODE_CHALLENGE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
MAX_PARAM_LENGTH = 4096
# Parameters kept on the login transaction and the code.
FORWARDED = (
    "redirect_uri",
    "response_type",
    "response_mode",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "login_hint",
    "screen_hint",
    "connection",
    "audience",
    "ui_locales",
)


@dataclass(frozen=True)
class Target:
    redirect_uri: str
    response_mode: str
    state: str | None


@dataclass
class RedirectError(Exception):
    target: Target
    error: LoginSiteError
    issuer: str


@dataclass
class AuthorizeRequest:
    client: Client
    target: Target
    scope: str = "openid"
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    prompt: set[str] = field(default_factory=set)
    max_age: int | None = None
    login_hint: str | None = None
    screen_hint: str | None = None
    connection: str | None = None
    audience: str | None = None
    ui_locales: str | None = None
    hint_sub: str | None = None  # ``sub`` of a verified id_token_hint
    # Parameters only passed on to upstream providers (connection ``upstream_params`` aliases,
    # ``connection_scope``): kept as sent, length-capped, never interpreted here.
    upstream: dict[str, str] = field(default_factory=dict)

    def to_params(self) -> dict[str, Any]:
        return {
            "client_id": self.client.client_id,
            "redirect_uri": self.target.redirect_uri,
            "response_mode": self.target.response_mode,
            "state": self.target.state,
            "scope": self.scope,
            "nonce": self.nonce,
            "code_challenge": self.code_challenge,
            "code_challenge_method": self.code_challenge_method,
            "prompt": sorted(self.prompt),
            "max_age": self.max_age,
            "login_hint": self.login_hint,
            "screen_hint": self.screen_hint,
            "connection": self.connection,
            "audience": self.audience,
            "ui_locales": self.ui_locales,
            "hint_sub": self.hint_sub,
            "upstream": self.upstream,
        }

    @classmethod
    def from_params(cls, client: Client, params: dict[str, Any]) -> AuthorizeRequest:
        return cls(
            client=client,
            target=Target(params["redirect_uri"], params["response_mode"], params.get("state")),
            scope=params["scope"],
            nonce=params.get("nonce"),
            code_challenge=params.get("code_challenge"),
            code_challenge_method=params.get("code_challenge_method"),
            prompt=set(params.get("prompt") or ()),
            max_age=params.get("max_age"),
            login_hint=params.get("login_hint"),
            screen_hint=params.get("screen_hint"),
            connection=params.get("connection"),
            audience=params.get("audience"),
            ui_locales=params.get("ui_locales"),
            hint_sub=params.get("hint_sub"),
            upstream=dict(params.get("upstream") or {}),
        )


# Authorize parameters that matter only to upstream providers (Auth0's upstream_params aliases
# that we do not otherwise keep, and connection_scope).
UPSTREAM_PASSED_PARAMS = (
    "acr_values",
    "display",
    "id_token_hint",
    "resource",
    "response_type",
    "connection_scope",
)
UPSTREAM_PARAM_MAX_LENGTH = 2048


# --- checks before the redirect URI is trusted: errors are pages --------------------------


def _single(args: MultiDict, name: str) -> str | None:
    values = [v for v in args.getlist(name)]
    if len(values) > 1:
        return None
    return values[0] if values and values[0] != "" else None


def check_size(args: MultiDict) -> None:
    """Oversized input is refused before anything is echoed back (checklist AZ-10)."""
    for name, value in args.items(multi=True):
        if len(name) > 100 or len(value) > MAX_PARAM_LENGTH:
            raise PageError(
                N_("Request too large"), N_("A parameter of this request is too long."), status=414
            )


def check_client(db: Session, tenant: Tenant, args: MultiDict) -> Client:
    if len(args.getlist("client_id")) > 1:
        raise PageError(
            N_("Invalid request"), N_("The client_id parameter was sent more than once.")
        )
    client_id = _single(args, "client_id")
    if not client_id:
        raise PageError(N_("Invalid request"), N_("The request has no client_id."))
    client = config_cache.client(db, tenant, client_id)
    if client is None:
        raise PageError(
            N_("Unknown application"),
            N_("The application that sent you here is not registered with this service."),
        )
    return client


def check_redirect_uri(client: Client, args: MultiDict) -> str:
    values = args.getlist("redirect_uri")
    if len(values) > 1:
        raise PageError(
            N_("Invalid request"), N_("The redirect_uri parameter was sent more than once.")
        )
    redirect_uri = values[0] if values else ""
    if not redirect_uri:
        # OIDC Core §3.1.2.1: required; never default to a registered one for OpenID requests.
        scope = (_single(args, "scope") or "").split()
        if "openid" in scope or len(client.callbacks or []) != 1:
            raise PageError(N_("Invalid request"), N_("The request has no redirect_uri."))
        return client.callbacks[0]
    # Exact string comparison against the registered callbacks (RFC 9700 §2.1).
    if redirect_uri not in (client.callbacks or []):
        raise PageError(
            N_("Callback URL mismatch"),
            N_("The redirect_uri is not one of the callback URLs registered for this application."),
        )
    return redirect_uri


def check_response_mode(args: MultiDict, client: Client, redirect_uri: str) -> str:
    mode = _single(args, "response_mode") or "query"
    if len(args.getlist("response_mode")) > 1 or mode not in RESPONSE_MODES:
        raise InvalidRequest("Unsupported response_mode.")
    if mode == "web_message" and origin_of(redirect_uri) not in (client.web_origins or []):
        raise InvalidRequest("The redirect_uri origin is not an allowed web origin.")
    return mode


# --- checks after: errors go to the application -------------------------------------------


def check_no_repeats(args: MultiDict) -> None:
    for name in args:
        if len(args.getlist(name)) > 1:
            raise InvalidRequest(f"The {name[:40]} parameter was sent more than once.")


def check_request_objects(args: MultiDict) -> None:
    # Never fetched or parsed (OIDC Core §6; Keycloak CVE-2020-10770).
    if "request" in args:
        raise RequestNotSupported("Request objects are not supported.")
    if "request_uri" in args:
        raise RequestUriNotSupported("The request_uri parameter is not supported.")


def check_response_type(args: MultiDict, client: Client) -> None:
    response_type = args.get("response_type")
    if not response_type:
        raise InvalidRequest("Missing required parameter: response_type.")
    if response_type != "code":
        raise UnsupportedResponseType(f"Unsupported response_type: {response_type[:40]}.")
    if "authorization_code" not in (client.grant_types or []):
        raise UnauthorizedClient("The authorization_code grant is not enabled for this client.")


def check_pkce(args: MultiDict, client: Client) -> tuple[str | None, str | None]:
    challenge = args.get("code_challenge")
    method = args.get("code_challenge_method")
    if not challenge:
        if method:
            raise InvalidRequest("code_challenge_method given without code_challenge.")
        if client.is_public:
            raise InvalidRequest("code_challenge is required for public clients (PKCE).")
        return None, None
    if method != "S256":
        raise InvalidRequest("code_challenge_method must be S256.")
    if len(challenge) != 43 or not CODE_CHALLENGE.match(challenge):
        raise InvalidRequest("code_challenge must be 43 base64url characters.")
    return challenge, method


def check_prompt(args: MultiDict) -> tuple[set[str], int | None]:
    prompt = set((args.get("prompt") or "").split())
    unknown = prompt - set(PROMPTS)
    if unknown:
        raise InvalidRequest("Unsupported prompt value.")
    if "none" in prompt and len(prompt) > 1:
        raise InvalidRequest("prompt=none cannot be combined with other values.")
    max_age = args.get("max_age")
    if max_age is None:
        return prompt, None
    if not max_age.isdigit() or len(max_age) > 9:
        raise InvalidRequest("max_age must be a non-negative integer.")
    return prompt, int(max_age)


def check_connection(db: Session, tenant: Tenant, client: Client, args: MultiDict) -> str | None:
    name = args.get("connection")
    if not name:
        return None
    conn = db.execute(
        select(Connection).where(Connection.tenant_id == tenant.id, Connection.name == name)
    ).scalar_one_or_none()
    if conn is None or client.id not in conn.enabled_client_ids:
        # compat §1.1: a 400 page, never a login through that connection.
        raise PageError(
            N_("Connection not available"),
            N_("The requested connection is not enabled for this application."),
        )
    if get_strategy(conn.strategy) is None:
        raise PageError(
            N_("Connection not available"),
            N_("The requested connection is not available yet on this service."),
        )
    return name


def check_audience(
    db: Session, tenant: Tenant, args: MultiDict
) -> tuple[str | None, ResourceServer | None]:
    audience = args.get("audience") or tenant.setting("default_audience")
    if not audience:
        return None, None
    api = config_cache.api(db, tenant, audience)
    if api is None:
        raise AccessDenied(f"Service not found: {audience[:200]}")
    return audience, api


def granted_scope(requested: str | None, api: ResourceServer | None) -> str:
    """OpenID scopes plus the API's own scopes; anything else is dropped, as Auth0 does."""
    allowed = set(OIDC_SCOPES) | set(api.scope_values if api else ())
    wanted = dict.fromkeys((requested or "openid").split())
    return " ".join(s for s in wanted if s in allowed)


def check_id_token_hint(db: Session, tenant: Tenant, args: MultiDict, issuer: str) -> str | None:
    """``sub`` of a valid ``id_token_hint`` (signed by this tenant, RS256), else an error."""
    hint = args.get("id_token_hint")
    if not hint:
        return None
    claims = keys.verify_own_jwt(db, tenant.id, hint, issuer)
    if claims is None:
        raise InvalidRequest("Invalid id_token_hint.")
    return claims["sub"]


def check_unsupported(args: MultiDict) -> None:
    if args.get("organization") or args.get("invitation"):
        raise InvalidRequest("organizations are not supported")


def parse(db: Session, tenant: Tenant, args: MultiDict, issuer: str) -> AuthorizeRequest:
    check_size(args)
    client = check_client(db, tenant, args)
    redirect_uri = check_redirect_uri(client, args)
    state = args.get("state") if len(args.getlist("state")) == 1 else None
    target = Target(redirect_uri, "query", state)
    try:
        target = Target(redirect_uri, check_response_mode(args, client, redirect_uri), state)
        check_no_repeats(args)
        check_request_objects(args)
        check_response_type(args, client)
        challenge, method = check_pkce(args, client)
        prompt, max_age = check_prompt(args)
        connection = check_connection(db, tenant, client, args)
        audience, api = check_audience(db, tenant, args)
        hint_sub = check_id_token_hint(db, tenant, args, issuer)
        check_unsupported(args)
    except LoginSiteError as exc:
        if isinstance(exc, PageError):
            raise
        raise RedirectError(target, exc, issuer) from exc
    return AuthorizeRequest(
        client=client,
        target=target,
        scope=granted_scope(args.get("scope"), api),
        nonce=args.get("nonce"),
        code_challenge=challenge,
        code_challenge_method=method,
        prompt=prompt,
        max_age=max_age,
        login_hint=args.get("login_hint"),
        screen_hint=args.get("screen_hint"),
        connection=connection,
        audience=audience,
        ui_locales=args.get("ui_locales"),
        hint_sub=hint_sub,
        upstream={
            name: value[:UPSTREAM_PARAM_MAX_LENGTH]
            for name in UPSTREAM_PASSED_PARAMS
            if (value := args.get(name))
        },
    )


# --- codes and responses ----------------------------------------------------------------

# A Core insert, built once: no ORM object to build and flush for a row nobody reads back.
_INSERT_CODE = AuthorizationCode.__table__.insert()


def issue_code(
    db: Session,
    tenant: Tenant,
    areq: AuthorizeRequest,
    *,
    user_pk: int,
    auth_time,
    session_sid: str | None,
    ttl_seconds: int,
) -> str:
    code = new_secret()
    now = utcnow()
    core(db).execute(
        _INSERT_CODE,
        {
            "code_hash": sha256_hex(code),
            "tenant_id": tenant.id,
            "client_pk": areq.client.id,
            "user_pk": user_pk,
            "session_sid": session_sid,
            "redirect_uri": areq.target.redirect_uri,
            "scope": areq.scope,
            "audience": areq.audience,
            "nonce": areq.nonce,
            "code_challenge": areq.code_challenge,
            "code_challenge_method": areq.code_challenge_method,
            "auth_time": auth_time,
            "created_at": now,
            "expires_at": now + timedelta(seconds=ttl_seconds),
        },
    )
    return code


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def add_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = parts.query + ("&" if parts.query else "") + urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def respond(target: Target, params: dict[str, str], issuer: str) -> Response:
    """Deliver an authorization response (success or error) in the requested mode."""
    payload = {k: v for k, v in params.items() if v is not None}
    if target.state is not None:
        payload["state"] = target.state
    payload["iss"] = issuer  # RFC 9207
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if target.response_mode == "form_post":
        body = render_template("login/form_post.html", action=target.redirect_uri, fields=payload)
        return Response(body, 200, headers)
    if target.response_mode == "web_message":
        origin = origin_of(target.redirect_uri)
        body = render_template("login/web_message.html", origin=origin, response=payload)
        headers["Content-Security-Policy"] = f"frame-ancestors {escape(origin)}"
        return Response(body, 200, headers)
    headers["Location"] = add_query(target.redirect_uri, payload)
    return Response("", 302, headers)


def error_response(exc: RedirectError) -> Response:
    return respond(
        exc.target,
        {"error": exc.error.error, "error_description": safe_description(exc.error.description)},
        exc.issuer,
    )
