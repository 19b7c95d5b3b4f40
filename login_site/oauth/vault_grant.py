"""Token Vault exchange (compat §2.1): a login_site refresh or access token in, the upstream
provider's access token for the same user out, for one connection with the vault on.

Off unless the client lists the grant in ``grant_types`` (403 ``unauthorized_client``). The
subject token must be live and belong to this tenant: a refresh token of the calling client
(read, not spent: Auth0 uses non-rotating refresh tokens here), or an access token issued to the
calling client or for an API the calling client holds a grant for (a backend API exchanging the
token its single-page app sent). Only that user's identity in the named connection is used
(checklist TV-02); an unknown identity, a revoked upstream grant or an undecryptable token set
answer 401 with a description that tells the application to ask the user to reconnect.
"""

from __future__ import annotations

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc6749.errors import UnauthorizedClientError
from flask import g
from sqlalchemy import select

from login_site import token_vault
from login_site.connections.base import get_strategy
from login_site.connections.oauth2 import OAuth2Strategy
from login_site.connections.oauth2 import UpstreamRefused
from login_site.connections.oauth2 import token_vault_enabled
from login_site.db import get_db
from login_site.db import utcnow
from login_site.events import event
from login_site.models import AccessToken
from login_site.models import ClientGrant
from login_site.models import Connection
from login_site.models import Identity
from login_site.models import User
from login_site.oauth import refresh
from login_site.oauth.grants import CONFIDENTIAL_AUTH_METHODS
from login_site.oauth.grants import _check_grant_type
from login_site.outbound import UpstreamError
from login_site.security.secrets import sha256_hex

_URN = "urn:auth0:params:oauth:grant-type:token-exchange"
FEDERATED_TOKEN_EXCHANGE = f"{_URN}:federated-connection-access-token"
FEDERATED_TOKEN_TYPE = "http://auth0.com/oauth/token-type/federated-connection-access-token"  # noqa: S105
REFRESH_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:refresh_token"  # noqa: S105
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105
MAX_SUBJECT_TOKEN_LENGTH = 8192


class VaultUnauthorized(OAuth2Error):
    """401: the subject token, or the user's link to the connection, cannot be used."""

    error = "invalid_grant"
    status_code = 401


class FederatedTokenExchangeGrant(grants.BaseGrant, grants.TokenEndpointMixin):
    GRANT_TYPE = FEDERATED_TOKEN_EXCHANGE
    TOKEN_ENDPOINT_AUTH_METHODS = CONFIDENTIAL_AUTH_METHODS

    def validate_token_request(self):
        client = self.authenticate_token_endpoint_client()
        try:
            _check_grant_type(client, self.GRANT_TYPE)
        except UnauthorizedClientError as exc:
            exc.status_code = 403  # compat §2.1: the client may not use the grant
            raise
        form = self.request.form
        subject, subject_type = form.get("subject_token"), form.get("subject_token_type")
        requested = form.get("requested_token_type")
        name = form.get("connection")
        if not subject or not subject_type or not name:
            raise InvalidRequestError(
                "Missing 'subject_token', 'subject_token_type' or 'connection' in request."
            )
        if requested not in (None, "", FEDERATED_TOKEN_TYPE):
            raise InvalidRequestError(f"requested_token_type must be {FEDERATED_TOKEN_TYPE}")
        if len(subject) > MAX_SUBJECT_TOKEN_LENGTH:
            raise VaultUnauthorized("Invalid subject token.")
        db = get_db()
        user_pk = _subject_user(db, client.model, subject, subject_type)
        user = db.get(User, user_pk) if user_pk is not None else None
        if user is None or user.blocked:
            raise VaultUnauthorized("Invalid subject token.")
        conn = db.execute(
            select(Connection).where(Connection.tenant_id == g.tenant.id, Connection.name == name)
        ).scalar_one_or_none()
        strategy = get_strategy(conn.strategy) if conn is not None else None
        if (
            conn is None
            or not isinstance(strategy, OAuth2Strategy)
            or not token_vault_enabled(conn.options or {})
        ):
            raise InvalidRequestError(f"Token Vault is not enabled for the connection '{name}'.")
        identity = _identity(db, user, conn, form.get("login_hint"))
        if identity is None:
            raise VaultUnauthorized(f"The user has no identity in the connection '{name}'.")
        self.request.client = client
        self.request.user = user
        self.request.connection = conn
        self.request.identity = identity

    def create_token_response(self):
        db = get_db()
        conn, identity = self.request.connection, self.request.identity
        strategy: OAuth2Strategy = get_strategy(conn.strategy)
        settings = strategy.settings(conn)

        def refresher(refresh_token: str) -> dict:
            return strategy.token_request(
                settings, {"grant_type": "refresh_token", "refresh_token": refresh_token}
            )

        client_id = self.request.client.model.client_id
        try:
            tokens = token_vault.current_token(db, conn, identity, refresher)
        except UpstreamRefused as exc:
            event("token_exchange", "failure", client_id=client_id, reason="upstream_refused")
            raise VaultUnauthorized(_reconnect(conn.name)) from exc
        except token_vault.VaultError as exc:
            event("token_exchange", "failure", client_id=client_id, reason=str(exc)[:80])
            raise VaultUnauthorized(_reconnect(conn.name) if exc.reconnect else str(exc)) from exc
        except UpstreamError as exc:
            event("token_exchange", "failure", client_id=client_id, reason="upstream_unavailable")
            error = OAuth2Error("The identity provider could not be reached; try again later.")
            error.error, error.status_code = "temporarily_unavailable", 503
            raise error from exc
        event(
            "token_exchange",
            "success",
            client_id=client_id,
            user_id=self.request.user.user_id,
            connection=conn.name,
        )
        body = {
            "access_token": tokens.access_token,
            "issued_token_type": FEDERATED_TOKEN_TYPE,
            "token_type": "Bearer",
        }
        if tokens.scope:
            body["scope"] = tokens.scope
        expires_in = tokens.expires_in()
        if expires_in is not None:
            body["expires_in"] = expires_in
        return 200, body, self.TOKEN_RESPONSE_HEADER


def _reconnect(name: str) -> str:
    return (
        f"The user's authorization at the '{name}' connection is no longer valid; "
        f"ask the user to log in with '{name}' again to reconnect it."
    )


def _subject_user(db, client, subject: str, subject_type: str | None) -> int | None:
    if subject_type == REFRESH_TOKEN_TYPE:
        row = refresh.find(db, g.tenant, client, subject)
        return row.user_pk if row is not None else None
    if subject_type == ACCESS_TOKEN_TYPE:
        record = db.get(AccessToken, sha256_hex(subject))
        if (
            record is None
            or record.tenant_id != g.tenant.id
            or record.revoked_at is not None
            or record.expires_at <= utcnow()
        ):
            return None
        if record.client_pk != client.id and not _holds_grant(db, client, record.audience):
            return None
        return record.user_pk
    raise InvalidRequestError(
        f"subject_token_type must be {REFRESH_TOKEN_TYPE} or {ACCESS_TOKEN_TYPE}"
    )


def _holds_grant(db, client, audience: str | None) -> bool:
    if not audience:
        return False
    return (
        db.execute(
            select(ClientGrant.id).where(
                ClientGrant.tenant_id == client.tenant_id,
                ClientGrant.client_pk == client.id,
                ClientGrant.audience == audience,
            )
        ).first()
        is not None
    )


def _identity(db, user: User, conn: Connection, login_hint: str | None) -> Identity | None:
    identities = [i for i in user.identities if i.connection_id == conn.id]
    if login_hint:
        identities = [
            i for i in identities if login_hint in (i.user_id, (i.profile_data or {}).get("email"))
        ]
    return identities[0] if len(identities) == 1 else None
