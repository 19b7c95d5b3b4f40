"""Token-endpoint grants. authlib does the protocol checks and client authentication;
each grant adds only storage and policy (STYLE: canaille's provider.py, authlib's hooks)."""

from __future__ import annotations

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import AccessDeniedError
from authlib.oauth2.rfc6749.errors import InvalidGrantError
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6749.errors import InvalidScopeError
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc6749.errors import UnauthorizedClientError
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from flask import current_app
from flask import g
from flask import request as flask_request
from sqlalchemy import Row
from sqlalchemy import bindparam
from sqlalchemy import select
from sqlalchemy import update

from login_site import config_cache
from login_site.connections.base import LoginFailed
from login_site.connections.database import authenticate as database_authenticate
from login_site.db import core
from login_site.db import get_db
from login_site.db import returns_updated_rows
from login_site.db import utcnow
from login_site.errors import TooManyAttempts
from login_site.models import AccessToken
from login_site.models import AuthorizationCode
from login_site.models import Connection
from login_site.models import ResourceServer
from login_site.models import User
from login_site.oauth import refresh
from login_site.oauth import tokens
from login_site.security.secrets import same
from login_site.security.secrets import sha256_hex
from login_site.tenancy import issuer
from login_site.vault import keyring

TOKEN_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
CONFIDENTIAL_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
PASSWORD_REALM = "http://auth0.com/oauth/grant-type/password-realm"  # noqa: S105 - a URI


class UserBlockedError(OAuth2Error):
    """Auth0's answer for a blocked user (compat §2.1; spa-js logs the user out on it)."""

    error = "unauthorized"
    description = "user is blocked"
    status_code = 401


class InvalidCodeGrantError(InvalidGrantError):
    description = "Invalid authorization code."


def _respond(grant, issue: tokens.Issue, refresh_token: str | None = None):
    body = tokens.token_response(
        get_db(),
        g.tenant,
        keyring(),
        issuer=issuer(),
        config=current_app.config,
        issue=issue,
        refresh_token=refresh_token,
    )
    get_db().commit()
    return 200, body, grant.TOKEN_RESPONSE_HEADER


def _check_grant_type(client, grant_type: str) -> None:
    if not client.check_grant_type(grant_type):
        raise UnauthorizedClientError(f"Grant type '{grant_type}' not allowed for the client.")


def _maybe_refresh(client, user, scope, audience, sid, auth_time) -> tuple[str | None, str | None]:
    """A new refresh-token family when offline access was granted, else (None, None)."""
    if not refresh.allowed(get_db(), g.tenant, client.model, scope, audience):
        return None, None
    return refresh.issue(
        get_db(),
        g.tenant,
        client.model,
        user,
        scope=scope,
        audience=audience,
        sid=sid,
        auth_time=auth_time,
    )


# Spending a code (docs/architecture.md, Prebuilt statements: built once). One conditional
# UPDATE decides between parallel redemptions; the row lock it takes makes a concurrent
# replay wait until the winner's tokens are committed, so the replay revokes them.
_CODES = AuthorizationCode.__table__
_USERS = User.__table__
_CODE_COLUMNS = (
    _CODES.c.code_hash,
    _CODES.c.user_pk,
    _CODES.c.session_sid,
    _CODES.c.redirect_uri,
    _CODES.c.scope,
    _CODES.c.audience,
    _CODES.c.nonce,
    _CODES.c.code_challenge,
    _CODES.c.code_challenge_method,
    _CODES.c.auth_time,
)
# What the token response needs of the user (tokens.Issue takes such a row).
_USER_COLUMNS = (
    _USERS.c.id,
    _USERS.c.blocked,
    *(_USERS.c[name] for name in tokens.USER_CLAIM_COLUMNS),
)
_SPEND = tokens.spend_once(_CODES, "code_hash")
# PostgreSQL: spend the code and read it with its user in one statement (UPDATE ... FROM).
_SPEND_WITH_USER = _SPEND.where(
    _USERS.c.id == _CODES.c.user_pk, _USERS.c.tenant_id == _CODES.c.tenant_id
).returning(*_CODE_COLUMNS, *_USER_COLUMNS)
# SQLite's RETURNING cannot name a joined table: the code, then its user.
_SPEND_RETURNING = _SPEND.returning(*_CODE_COLUMNS)
_CODE = select(*_CODE_COLUMNS).where(_CODES.c.code_hash == bindparam("hash"))
_USER = select(*_USER_COLUMNS).where(
    _USERS.c.id == bindparam("pk"), _USERS.c.tenant_id == bindparam("tenant")
)


def _spend_code(db, params: dict) -> tuple[Row | None, Row | None]:
    """(code, its user) if this request spent the code, else (None, None). Not committed:
    the caller commits the spend with the tokens it produced, or alone on failure."""
    conn = core(db)
    if db.get_bind().dialect.name == "postgresql":
        row = conn.execute(_SPEND_WITH_USER, params).one_or_none()
        return row, row
    if returns_updated_rows(db):
        row = conn.execute(_SPEND_RETURNING, params).one_or_none()
    else:
        row = conn.execute(_CODE, params).one() if conn.execute(_SPEND, params).rowcount else None
    if row is None:
        return None, None
    user = conn.execute(_USER, {"pk": row.user_pk, "tenant": params["tenant"]})
    return row, user.one_or_none()


class CodeAdapter:
    """authlib's view of a spent code (``row``) and its user (``user``: a row with
    ``_USER_COLUMNS``, None if the user is gone)."""

    def __init__(self, row: Row, user: Row | None):
        self.row = row
        self.user = user
        self.code_challenge = row.code_challenge
        self.code_challenge_method = row.code_challenge_method

    def get_redirect_uri(self):
        return self.row.redirect_uri

    def get_scope(self):
        return self.row.scope


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    spent: CodeAdapter | None = None  # the code this request spent (one grant per request)

    def save_authorization_code(self, code, request):  # pragma: no cover - we issue codes
        raise NotImplementedError("codes are issued by login_site.oauth.authorize")

    def validate_token_request(self):
        try:
            super().validate_token_request()  # with the hooks (StrictCodeChallenge)
        except OAuth2Error:
            if self.spent is not None:  # a wrong redirect_uri or verifier spends the code too
                get_db().commit()
            raise

    def query_authorization_code(self, code, client):
        """Spend the code with one conditional UPDATE: only one request can win. That
        UPDATE also reads the code (RETURNING), and its user where the database can."""
        db = get_db()
        code_hash = sha256_hex(code)
        params = {
            "hash": code_hash,
            "tenant": g.tenant.id,
            "client": client.model.id,
            "now": utcnow(),
        }
        row, user = _spend_code(db, params)
        if row is not None:
            self.spent = CodeAdapter(row, user)
            return self.spent
        found = db.get(AuthorizationCode, code_hash)
        if found is not None and found.used_at is not None and found.client_pk == client.model.id:
            revoke_code_products(db, code_hash)
        db.commit()
        return None

    def delete_authorization_code(self, authorization_code):
        """Already spent in :meth:`query_authorization_code`."""

    def authenticate_user(self, authorization_code):
        user = authorization_code.user
        return None if user is None or user.blocked else user

    def create_token_response(self):
        code = self.request.authorization_code.row
        user = self.authenticate_user(self.request.authorization_code)
        if user is None:
            get_db().commit()  # the code stays spent
            raise InvalidCodeGrantError()
        self.request.user = user
        client = self.request.client
        raw, family = _maybe_refresh(
            client, user, code.scope, code.audience, code.session_sid, code.auth_time
        )
        issue = tokens.Issue(
            client=client.model,
            user=user,
            scope=code.scope,
            audience=code.audience,
            auth_time=code.auth_time,
            sid=code.session_sid,
            nonce=code.nonce,
            code_hash=code.code_hash,
            refresh_family=family,
        )
        return _respond(self, issue, raw)


def revoke_code_products(db, code_hash: str) -> None:
    """A replayed code revokes what it produced (RFC 6749 §4.1.2): its access tokens
    and the refresh-token families issued with them."""
    now = utcnow()
    families = db.execute(
        select(AccessToken.refresh_family).where(
            AccessToken.code_hash == code_hash, AccessToken.refresh_family.is_not(None)
        )
    ).scalars()
    for family in set(families):
        refresh.revoke_family(db, family)
    db.execute(
        update(AccessToken)
        .where(AccessToken.code_hash == code_hash, AccessToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def _s256_matches(verifier: str, challenge: str) -> bool:
    """RFC 7636 §4.6, compared in constant time (authlib's comparison uses ``==``)."""
    return same(create_s256_code_challenge(verifier), challenge)


class StrictCodeChallenge(CodeChallenge):
    """S256 only; a verifier for a code issued without a challenge is an invalid grant."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    CODE_CHALLENGE_METHODS = {"S256": _s256_matches}

    def validate_code_verifier(self, grant, result):
        verifier = grant.request.form.get("code_verifier")
        code = grant.request.authorization_code
        if verifier and not code.code_challenge:
            raise InvalidGrantError("A code_verifier was sent for a code issued without PKCE.")
        return super().validate_code_verifier(grant, result)


class RefreshTokenGrant(grants.BaseGrant, grants.TokenEndpointMixin):
    """Rotation with reuse detection (RFC 9700 §4.14.2); scope may only narrow."""

    GRANT_TYPE = "refresh_token"
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS

    def validate_token_request(self):
        client = self.authenticate_token_endpoint_client()
        _check_grant_type(client, self.GRANT_TYPE)
        raw = self.request.form.get("refresh_token")
        if not raw:
            raise InvalidRequestError("Missing 'refresh_token' in request.")
        self.request.client = client
        self.request.refresh_token = raw

    def create_token_response(self):
        """The token is spent first (with its user read and its successor written in the
        same round trip where the database allows); a refusal after that rolls the spend
        back, except for a blocked user, whose family is revoked."""
        client = self.request.client
        db = get_db()
        token, new_raw = refresh.redeem(db, g.tenant, client.model, self.request.refresh_token)
        if token.blocked:
            refresh.revoke_family(db, token.family_id)
            db.commit()
            raise InvalidGrantError("user is blocked")
        scope = self.request.form.get("scope") or token.scope
        if not set(scope.split()) <= set(token.scope.split()):
            db.rollback()  # the token stays unspent
            raise InvalidScopeError("The requested scope exceeds the granted scope.")
        api = _api(token.audience) if token.audience else None  # cached (config_cache)
        issue = tokens.Issue(
            client=client.model,
            user=token,  # the token's row carries its user's id and claim columns
            scope=scope,
            audience=token.audience,
            auth_time=token.auth_time,
            sid=token.session_sid,
            refresh_family=token.family_id,
            token_lifetime=api.token_lifetime if api else None,
        )
        return _respond(self, issue, new_raw)


def _audience(form) -> str | None:
    return form.get("audience") or g.tenant.setting("default_audience")


def _api(audience: str) -> ResourceServer | None:
    return config_cache.api(get_db(), g.tenant, audience)


class ClientCredentialsGrant(grants.BaseGrant, grants.TokenEndpointMixin):
    """Machine tokens: only for an API the client has a client grant for, within its scopes."""

    GRANT_TYPE = "client_credentials"
    TOKEN_ENDPOINT_AUTH_METHODS = CONFIDENTIAL_AUTH_METHODS

    def validate_token_request(self):
        client = self.authenticate_token_endpoint_client()
        _check_grant_type(client, self.GRANT_TYPE)
        audience = _audience(self.request.form)
        if not audience:
            raise InvalidRequestError("Missing 'audience' in request and no default audience.")
        grant = config_cache.client_grant(get_db(), g.tenant, client.model, audience)
        api = _api(audience) if grant is not None else None
        if api is None:
            raise AccessDeniedError(
                # Auth0's text, with ' for " (RFC 6749 §5.2 forbids " in descriptions).
                f"Client is not authorized to access '{audience[:200]}'. You need to create a "
                "'client-grant' associated to this API.",
                status_code=403,
            )
        requested = self.request.form.get("scope")
        granted = list(grant.scope or [])
        if requested:
            extra = [s for s in requested.split() if s not in granted]
            if extra:
                raise AccessDeniedError(
                    f"Client has not been granted scopes: {' '.join(extra)[:200]}",
                    status_code=403,
                )
            scope = " ".join(dict.fromkeys(requested.split()))
        else:
            scope = " ".join(granted)
        self.request.client = client
        self.request.scope = scope
        self.request.audience = audience
        self.request.token_lifetime = api.token_lifetime

    def create_token_response(self):
        issue = tokens.Issue(
            client=self.request.client.model,
            user=None,
            scope=self.request.scope,
            audience=self.request.audience,
            token_lifetime=self.request.token_lifetime,
        )
        return _respond(self, issue)


class PasswordGrant(grants.BaseGrant, grants.TokenEndpointMixin):
    """Resource-owner password (``password``, default directory) and Auth0's
    ``password-realm`` (realm = a database connection enabled for the client).
    Off unless the client's ``grant_types`` list it."""

    GRANT_TYPE = "password"
    GRANT_TYPES = ("password", PASSWORD_REALM)
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS

    @classmethod
    def check_token_endpoint(cls, request):
        return request.payload.grant_type in cls.GRANT_TYPES and request.method == "POST"

    def validate_token_request(self):
        grant_type = self.request.payload.grant_type
        client = self.authenticate_token_endpoint_client()
        _check_grant_type(client, grant_type)
        form = self.request.form
        username, password = form.get("username"), form.get("password")
        if not username or not password:
            raise InvalidRequestError("Missing 'username' or 'password' in request.")
        realm = form.get("realm") if grant_type == PASSWORD_REALM else None
        name = realm or g.tenant.setting("default_directory")
        if not name:
            raise InvalidRequestError("No realm given and no default directory configured.")
        conn = (
            get_db()
            .execute(
                select(Connection).where(
                    Connection.tenant_id == g.tenant.id, Connection.name == name
                )
            )
            .scalar_one_or_none()
        )
        if conn is None:
            raise InvalidRequestError("the connection was not found")
        if client.model.id not in conn.enabled_client_ids:
            raise InvalidRequestError("the connection was disabled")
        if conn.strategy != "auth0":
            raise InvalidRequestError("specified strategy does not support requested operation")
        audience = _audience(form)
        api = _api(audience) if audience else None
        if audience and api is None:
            raise AccessDeniedError(f"Service not found: {audience[:200]}", status_code=403)
        try:
            user = database_authenticate(
                get_db(), conn, username, password, ip=flask_request.remote_addr
            )
        except LoginFailed as failure:
            get_db().rollback()
            if failure.reason == "blocked":
                raise UserBlockedError() from failure
            if failure.reason == "too_many_attempts":
                raise TooManyAttempts() from failure  # 429 (compat §0.7)
            raise InvalidGrantError("Wrong email or password.") from failure
        self.request.client = client
        self.request.user = user
        self.request.audience = audience
        self.request.token_lifetime = api.token_lifetime if api else None
        self.request.scope = " ".join(dict.fromkeys((form.get("scope") or "openid").split()))

    def create_token_response(self):
        client, user = self.request.client, self.request.user
        scope, audience = self.request.scope, self.request.audience
        now = utcnow()
        raw, family = _maybe_refresh(client, user, scope, audience, None, now)
        issue = tokens.Issue(
            client=client.model,
            user=user,
            scope=scope,
            audience=audience,
            auth_time=now,
            refresh_family=family,
            token_lifetime=self.request.token_lifetime,
        )
        return _respond(self, issue, raw)
