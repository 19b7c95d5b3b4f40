"""OAuth 2.0 and OpenID Connect providers as connections: the one engine behind every social
preset (``social.py``), the custom ``oauth2`` strategy and the enterprise ``oidc`` strategy.

A strategy here is a :class:`Preset` (endpoints, scopes, how the provider behaves, how its
profile maps to ours: data, as Kratos' presets over its generic provider) read together with the
connection's options, which may override every endpoint (that is how tests point a preset at a
loopback provider). The login layer (``login/upstream.py``) binds the round trip to the browser
and spends the ``state``; this module sends the user upstream with ``state``, PKCE (S256) and
``nonce`` where the provider supports them, redeems the code with a bounded call
(``outbound.py``), validates the ID token (``oidc.py``) and maps the provider's profile.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import ClassVar
from urllib.parse import parse_qsl
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from login_site.connections import oidc
from login_site.connections.base import Button
from login_site.connections.base import InvalidOptions
from login_site.connections.base import LoginFailed
from login_site.connections.base import Profile
from login_site.connections.base import Step
from login_site.db import get_db
from login_site.models import Connection
from login_site.models import Identity
from login_site.models import LoginTransaction
from login_site.models.ids import new_secret
from login_site.outbound import UnsafeURL
from login_site.outbound import UpstreamError
from login_site.outbound import call
from login_site.outbound import check_url
from login_site.security.secrets import sha256_hex
from login_site.tenancy import absolute
from login_site.vault import reveal

CALLBACK_PATH = "login/callback"
# Auth0's upstream_params aliases (management-api.md §5.2): the /authorize parameters that may
# be passed on. Where they live in our stored authorize request.
UPSTREAM_ALIASES = (
    "acr_values",
    "audience",
    "client_id",
    "display",
    "id_token_hint",
    "login_hint",
    "max_age",
    "prompt",
    "resource",
    "response_mode",
    "response_type",
    "ui_locales",
)
# Parameters the engine sets itself; upstream_params may not replace them.
RESERVED_PARAMS = frozenset(
    {
        "client_id",
        "redirect_uri",
        "response_type",
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
        "scope",
    }
)
ROOT_ATTRIBUTE_MODES = ("on_each_login", "on_first_login", "never_on_login")
URL_OPTIONS = (
    "authorization_endpoint",
    "token_endpoint",
    "userinfo_endpoint",
    "emails_endpoint",
    "jwks_uri",
    "discovery_url",
    "revocation_endpoint",
)
# Auth0's custom-oauth2 option names for the same endpoints.
URL_OPTION_ALIASES = {"authorizationURL": "authorization_endpoint", "tokenURL": "token_endpoint"}
PROFILE_FIELDS = (
    "user_id",
    "email",
    "email_verified",
    "username",
    "name",
    "nickname",
    "given_name",
    "family_name",
    "picture",
    "phone_number",
)
MAX_FIELD_LENGTH = 2048
APPLE_SECRET_TTL_SECONDS = 300


class UpstreamRefused(Exception):
    """The provider answered the token request with an OAuth error (e.g. ``invalid_grant``)."""

    def __init__(self, error: str, description: str = ""):
        super().__init__(error)
        self.error = error
        self.description = description


@dataclass(frozen=True)
class Preset:
    strategy: str
    label: str
    authorization_endpoint: str = ""
    token_endpoint: str = ""
    userinfo_endpoint: str | None = None
    emails_endpoint: str | None = None
    issuer: str | None = None  # expected ``iss`` of ID tokens
    jwks_uri: str | None = None
    discovery: bool = False  # endpoints from the issuer's discovery document
    scopes: tuple[str, ...] = ()
    scope_separator: str = " "
    # Auth0's boolean scope switches in options, e.g. google-oauth2 ``{"email": true}``.
    scope_switches: Mapping[str, str] = field(default_factory=dict)
    pkce: bool = True
    id_token: bool = False  # an ID token is expected and validated
    response_mode: str | None = None  # "form_post" (Apple)
    client_auth: str = "client_secret_post"  # | "client_secret_basic" | "apple_jwt"
    token_headers: Mapping[str, str] = field(default_factory=dict)
    userinfo_params: Mapping[str, str] = field(default_factory=dict)
    extra_authorize_params: Mapping[str, str] = field(default_factory=dict)
    # Extra authorize parameters when the Token Vault is on (a refresh token is wanted).
    offline_params: Mapping[str, str] = field(default_factory=dict)
    offline_scope: str | None = None
    is_social: bool = True
    # provider JSON (merged claims, userinfo, ``emails``) -> our profile fields
    mapping: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    # Where the verified email comes from, for the docs and the dashboard.
    email_source: str = ""


@dataclass(frozen=True)
class Settings:
    """A preset read together with one connection's options."""

    preset: Preset
    client_id: str
    client_secret: str | None
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str | None
    emails_endpoint: str | None
    issuer: str | None
    jwks_uri: str | None
    scopes: tuple[str, ...]
    pkce: bool
    id_token: bool
    client_auth: str
    id_token_algs: tuple[str, ...]
    options: Mapping[str, Any]

    @property
    def vault(self) -> bool:
        return token_vault_enabled(self.options)


def token_vault_enabled(options: Mapping[str, Any]) -> bool:
    for key in ("federated_connections_access_tokens", "connected_accounts"):
        value = options.get(key)
        if isinstance(value, Mapping) and value.get("active") is True:
            return True
    return False


def _scopes_of(value: Any) -> list[str]:
    if isinstance(value, str):
        return [s for s in value.replace(",", " ").split() if s]
    if isinstance(value, list | tuple):
        return [s for s in value if isinstance(s, str) and s]
    return []


def _dotted(raw: Mapping[str, Any], path: str) -> Any:
    value: Any = raw
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _as_bool(value: Any) -> bool:
    """Providers send booleans as JSON booleans or strings (Apple: ``"true"``)."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True


def _clean(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text[:MAX_FIELD_LENGTH] or None


def profile_from_fields(fields: Mapping[str, Any], raw: Mapping[str, Any]) -> Profile:
    user_id = _clean(fields.get("user_id"))
    if not user_id:
        raise LoginFailed("upstream_profile_without_id")
    email = _clean(fields.get("email"))
    return Profile(
        user_id=user_id,
        email=email.lower() if email else None,
        email_verified=bool(email) and _as_bool(fields.get("email_verified")),
        username=_clean(fields.get("username")),
        name=_clean(fields.get("name")),
        nickname=_clean(fields.get("nickname")),
        given_name=_clean(fields.get("given_name")),
        family_name=_clean(fields.get("family_name")),
        picture=_clean(fields.get("picture")),
        phone_number=_clean(fields.get("phone_number")),
        raw=dict(raw),
    )


def standard_claims(raw: Mapping[str, Any]) -> dict[str, Any]:
    """OpenID Connect standard claims (OIDC Core §5.1) as our profile fields."""
    return {
        "user_id": raw.get("sub"),
        "email": raw.get("email"),
        "email_verified": raw.get("email_verified"),
        "username": raw.get("preferred_username"),
        "name": raw.get("name"),
        "nickname": raw.get("nickname") or raw.get("preferred_username"),
        "given_name": raw.get("given_name"),
        "family_name": raw.get("family_name"),
        "picture": raw.get("picture"),
        "phone_number": raw.get("phone_number"),
    }


def pkce_pair() -> tuple[str, str]:
    verifier = new_secret(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class OAuth2Strategy:
    """Any provider speaking the authorization-code flow, described by a :class:`Preset`."""

    name: ClassVar[str]

    def __init__(self, preset: Preset):
        self.preset = preset
        self.name = preset.strategy  # type: ignore[misc]

    # --- configuration ---------------------------------------------------------------------

    def validate_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        opts = dict(options or {})
        for alias, name in URL_OPTION_ALIASES.items():
            if alias in opts and name not in opts:
                opts[name] = opts[alias]
        for key in ("client_id", "client_secret", "team_id", "kid", "app_secret", "issuer"):
            if key in opts and not isinstance(opts[key], str | dict):
                raise InvalidOptions(f"options.{key} must be a string")
        for key in URL_OPTIONS:
            if opts.get(key) is not None:
                try:
                    check_url(opts[key])
                except UnsafeURL as exc:
                    raise InvalidOptions(f"options.{key} {exc}") from exc
        if opts.get("issuer") is not None:
            try:
                check_url(opts["issuer"])
            except UnsafeURL as exc:
                raise InvalidOptions(f"options.issuer {exc}") from exc
        mode = opts.get("set_user_root_attributes")
        if mode is not None and mode not in ROOT_ATTRIBUTE_MODES:
            raise InvalidOptions(
                "options.set_user_root_attributes must be one of " + ", ".join(ROOT_ATTRIBUTE_MODES)
            )
        if "scope" in opts and not isinstance(opts["scope"], str | list):
            raise InvalidOptions("options.scope must be a string or a list of strings")
        _check_upstream_params(opts.get("upstream_params"))
        fields_map = opts.get("fields_map")
        if fields_map is not None:
            if not isinstance(fields_map, dict) or not all(
                k in PROFILE_FIELDS and isinstance(v, str) and v for k, v in fields_map.items()
            ):
                raise InvalidOptions(
                    "options.fields_map maps profile fields ("
                    + ", ".join(PROFILE_FIELDS)
                    + ") to dotted paths in the provider's profile"
                )
        self._check_required(opts)
        return opts

    def _check_required(self, opts: dict[str, Any]) -> None:
        """Options without which no login can work; checked when the connection is saved."""
        preset = self.preset
        if not preset.authorization_endpoint and not preset.discovery:
            missing = [k for k in ("authorization_endpoint", "token_endpoint") if not opts.get(k)]
            if missing:
                raise InvalidOptions(f"options.{missing[0]} is required")
        if preset.discovery and not preset.issuer and not opts.get("issuer"):
            raise InvalidOptions("options.issuer is required")

    def settings(self, conn: Connection) -> Settings:
        opts = conn.options or {}
        preset = self.preset
        client_id = opts.get("client_id") or ""
        issuer = opts.get("issuer") or preset.issuer
        endpoints = {
            "authorization_endpoint": opts.get("authorization_endpoint")
            or opts.get("authorizationURL")
            or preset.authorization_endpoint,
            "token_endpoint": opts.get("token_endpoint")
            or opts.get("tokenURL")
            or preset.token_endpoint,
            "userinfo_endpoint": opts.get("userinfo_endpoint") or preset.userinfo_endpoint,
            "emails_endpoint": opts.get("emails_endpoint") or preset.emails_endpoint,
            "jwks_uri": opts.get("jwks_uri") or preset.jwks_uri,
        }
        if preset.discovery and issuer:
            document = oidc.discover(get_db(), conn.id, issuer, opts.get("discovery_url"))
            for key in endpoints:
                if key in document and not opts.get(key):
                    endpoints[key] = document[key]
        scopes = list(preset.scopes)
        scopes += [s for switch, s in preset.scope_switches.items() if opts.get(switch) is True]
        scopes += _scopes_of(opts.get("scope")) + _scopes_of(opts.get("freeform_scopes"))
        if token_vault_enabled(opts) and preset.offline_scope:
            scopes.append(preset.offline_scope)
        return Settings(
            preset=preset,
            client_id=client_id,
            client_secret=reveal(opts.get("client_secret")) or None,
            authorization_endpoint=endpoints["authorization_endpoint"],
            token_endpoint=endpoints["token_endpoint"],
            userinfo_endpoint=endpoints["userinfo_endpoint"],
            emails_endpoint=endpoints["emails_endpoint"],
            issuer=issuer,
            jwks_uri=endpoints["jwks_uri"],
            scopes=tuple(dict.fromkeys(scopes)),
            pkce=bool(opts.get("pkce_enabled", preset.pkce)),
            id_token=preset.id_token,
            client_auth=opts.get("token_endpoint_auth_method") or preset.client_auth,
            id_token_algs=tuple(_scopes_of(opts.get("id_token_signed_response_algs")))
            or ("RS256", "ES256"),
            options=opts,
        )

    def button(self, conn: Connection) -> Button:
        # Enterprise connections are known by their own name ("Acme SSO"), social ones by the
        # provider's.
        default = self.preset.label if self.preset.is_social else conn.name
        return Button(
            label=conn.display_name or default,
            kind="redirect",
            icon=f"icons/connections/{self.preset.strategy}.svg",
        )

    # --- the round trip --------------------------------------------------------------------

    def begin(self, conn: Connection, tx: LoginTransaction) -> Step:
        """Store the secret half of ``state``, the nonce and the PKCE verifier on ``tx`` and
        send the browser upstream."""
        settings = self.settings(conn)
        secret = new_secret()
        nonce = new_secret(24) if settings.id_token else None
        verifier, challenge = pkce_pair() if settings.pkce else (None, None)
        tx.upstream_state_hash = sha256_hex(secret)
        tx.params = {
            **tx.params,
            "upstream_login": {
                "connection": conn.name,
                "nonce": nonce,
                "verifier": verifier,
                "started_at": int(time.time()),
            },
        }
        scopes = list(settings.scopes)
        scopes += _scopes_of((tx.params.get("upstream") or {}).get("connection_scope"))
        params: dict[str, str] = {
            **self.preset.extra_authorize_params,
            **_upstream_params(settings.options.get("upstream_params"), tx.params),
        }
        if settings.vault:
            params.update(self.preset.offline_params)
        params.update(
            {
                "response_type": "code",
                "client_id": settings.client_id,
                "redirect_uri": absolute(CALLBACK_PATH),
                "state": f"{tx.id}.{secret}",
            }
        )
        if scopes:
            params["scope"] = self.preset.scope_separator.join(dict.fromkeys(scopes))
        if nonce:
            params["nonce"] = nonce
        if challenge:
            params["code_challenge"] = challenge
            params["code_challenge_method"] = "S256"
        if self.preset.response_mode:
            params["response_mode"] = self.preset.response_mode
        separator = "&" if "?" in settings.authorization_endpoint else "?"
        return Step(
            kind="redirect", url=settings.authorization_endpoint + separator + urlencode(params)
        )

    def complete(self, conn: Connection, tx: LoginTransaction, data: Mapping[str, str]) -> Profile:
        """Redeem the upstream code of this round trip; :class:`LoginFailed` on any doubt,
        :class:`UpstreamError` when the provider is down or answers nonsense."""
        started = tx.params.get("upstream_login") or {}
        settings = self.settings(conn)
        code = data.get("code")
        if not code or len(code) > MAX_FIELD_LENGTH:
            raise LoginFailed("upstream_code_missing")
        returned_iss = data.get("iss")
        if returned_iss is not None and returned_iss != settings.issuer:
            raise LoginFailed("upstream_issuer_mismatch")  # RFC 9207 §2.4 mix-up defence
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": absolute(CALLBACK_PATH),
        }
        if started.get("verifier"):
            form["code_verifier"] = started["verifier"]
        try:
            tokens = self.token_request(settings, form)
        except UpstreamRefused as exc:
            raise LoginFailed("upstream_code_refused") from exc
        claims: dict[str, Any] = {}
        if settings.id_token:
            id_token = tokens.get("id_token")
            if not isinstance(id_token, str):
                raise LoginFailed("id_token_missing")
            claims = oidc.validate_id_token(
                get_db(),
                conn.id,
                id_token,
                issuer=settings.issuer or "",
                client_id=settings.client_id,
                jwks_uri=settings.jwks_uri or "",
                nonce=started.get("nonce"),
                algorithms=settings.id_token_algs,
            )
        raw = dict(claims)
        access_token = tokens.get("access_token")
        if settings.userinfo_endpoint and isinstance(access_token, str):
            userinfo = self._get_json(settings.userinfo_endpoint, access_token, settings)
            if claims and userinfo.get("sub") not in (None, claims.get("sub")):
                raise LoginFailed("userinfo_subject_mismatch")  # OIDC Core §5.3.2
            raw.update(userinfo)
        if settings.emails_endpoint and isinstance(access_token, str):
            raw["emails"] = self._get_json(settings.emails_endpoint, access_token, settings)
        if data.get("user"):  # Apple: the name, on the first authorization only
            raw["user"] = _json_object(data["user"])
        profile = self.profile(conn, raw)
        profile.upstream_tokens = _token_set(tokens)
        return profile

    def profile(self, conn: Connection, raw: Mapping[str, Any]) -> Profile:
        fields_map = (conn.options or {}).get("fields_map")
        if fields_map:
            fields = {name: _dotted(raw, path) for name, path in fields_map.items()}
        elif self.preset.mapping is not None:
            fields = self.preset.mapping(raw)
        else:
            fields = standard_claims(raw)
        return profile_from_fields(fields, raw)

    def refresh(self, conn: Connection, identity: Identity) -> Profile | None:
        return None  # refreshed at each login (set_user_root_attributes), not in between

    # --- HTTP ------------------------------------------------------------------------------

    def token_request(self, settings: Settings, form: dict[str, str]) -> dict[str, Any]:
        """One call to the token endpoint with this connection's client authentication."""
        headers = {"Accept": "application/json", **self.preset.token_headers}
        auth = None
        form = {**form}
        if settings.client_auth == "client_secret_basic" and settings.client_secret:
            auth = (settings.client_id, settings.client_secret)
        else:
            form["client_id"] = settings.client_id
            if settings.client_auth == "apple_jwt":
                form["client_secret"] = apple_client_secret(settings)
            elif settings.client_secret:
                form["client_secret"] = settings.client_secret
        answer = call("POST", settings.token_endpoint, headers=headers, data=form, auth=auth)
        if answer.status >= 500 or 300 <= answer.status < 400:
            raise UpstreamError(
                f"the provider's token endpoint answered {answer.status}",
                unavailable=answer.status in (502, 503, 504),
            )
        if answer.content_type == "application/x-www-form-urlencoded":
            body: Any = dict(parse_qsl(answer.body.decode("utf-8", "replace")))
        else:
            body = answer.json()
        if not isinstance(body, dict):
            raise UpstreamError("the provider's token response is not an object")
        if answer.status != 200 or "error" in body:
            raise UpstreamRefused(
                str(body.get("error") or "invalid_grant"), str(body.get("error_description", ""))
            )
        if not isinstance(body.get("access_token"), str):
            raise UpstreamError("the provider's token response has no access token")
        return body

    def _get_json(self, url: str, access_token: str, settings: Settings) -> Any:
        answer = call(
            "GET",
            url,
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            params=dict(self.preset.userinfo_params) or None,
        )
        if answer.status != 200:
            raise UpstreamError(
                f"the provider's profile endpoint answered {answer.status}",
                unavailable=answer.status >= 500,
            )
        return answer.json()


def _json_object(text: str) -> dict[str, Any]:
    import json

    try:
        value = json.loads(text[:MAX_FIELD_LENGTH])
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _token_set(tokens: Mapping[str, Any]) -> dict[str, Any]:
    """The upstream tokens worth keeping (Token Vault); the ID token is not kept."""
    kept: dict[str, Any] = {"access_token": tokens["access_token"]}
    if isinstance(tokens.get("refresh_token"), str):
        kept["refresh_token"] = tokens["refresh_token"]
    expires_in = tokens.get("expires_in")
    if isinstance(expires_in, str) and expires_in.isdigit():
        expires_in = int(expires_in)
    if isinstance(expires_in, int | float):
        kept["expires_at"] = int(time.time()) + int(expires_in)
    if isinstance(tokens.get("scope"), str):
        kept["scope"] = tokens["scope"]
    return kept


def _check_upstream_params(value: Any) -> None:
    if value is None:
        return
    problem = 'options.upstream_params maps parameter names to {"value": …} or {"alias": …}'
    if not isinstance(value, dict):
        raise InvalidOptions(problem)
    for name, spec in value.items():
        if not isinstance(name, str) or not isinstance(spec, dict) or len(spec) != 1:
            raise InvalidOptions(problem)
        if name in RESERVED_PARAMS:
            raise InvalidOptions(f"options.upstream_params may not set {name}")
        if "value" in spec and not isinstance(spec["value"], str):
            raise InvalidOptions(f"options.upstream_params.{name}.value must be a string")
        if "alias" in spec and spec["alias"] not in UPSTREAM_ALIASES:
            aliases = ", ".join(UPSTREAM_ALIASES)
            raise InvalidOptions(f"options.upstream_params.{name}.alias must be one of {aliases}")
        if not {"value", "alias"} & set(spec):
            raise InvalidOptions(problem)


def _upstream_params(spec: Any, authorize: Mapping[str, Any]) -> dict[str, str]:
    """Auth0's ``upstream_params``: static values and aliases of /authorize parameters."""
    if not isinstance(spec, dict):
        return {}
    passed = authorize.get("upstream") or {}
    params: dict[str, str] = {}
    for name, rule in spec.items():
        if name in RESERVED_PARAMS or not isinstance(rule, dict):
            continue
        if isinstance(rule.get("value"), str):
            params[name] = rule["value"]
        elif rule.get("alias") in UPSTREAM_ALIASES:
            alias = rule["alias"]
            value = authorize.get(alias, passed.get(alias))
            if isinstance(value, list):
                value = " ".join(value)
            if value not in (None, "", []):
                params[name] = str(value)
    return params


def apple_client_secret(settings: Settings) -> str:
    """Sign in with Apple's client secret: a short-lived ES256 JWT signed with the team's key
    (options ``team_id``, ``kid``, ``app_secret`` = the .p8 private key)."""
    opts = settings.options
    try:
        key = ECKey.import_key(reveal(opts.get("app_secret")) or "")
    except (JoseError, ValueError, TypeError) as exc:
        raise UpstreamError("options.app_secret is not an EC private key") from exc
    now = int(time.time())
    claims = {
        "iss": opts.get("team_id") or "",
        "sub": settings.client_id,
        "aud": settings.issuer or "https://appleid.apple.com",
        "iat": now,
        "exp": now + APPLE_SECRET_TTL_SECONDS,
    }
    return jwt.encode({"alg": "ES256", "kid": opts.get("kid") or ""}, claims, key)
