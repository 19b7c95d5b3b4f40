"""Auth0's ``http://auth0.com/oauth/grant-type/passwordless/otp`` grant (compat §2.1):
``username`` (email or E.164 number), ``otp`` and ``realm`` (an ``email`` or ``sms``
connection enabled for the client) in exchange for tokens. Off unless the client's
``grant_types`` list it. The code must have been sent for this client through the API: a
code asked for by a hosted login page is bound to that page's transaction."""

from __future__ import annotations

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import AccessDeniedError
from authlib.oauth2.rfc6749.errors import InvalidGrantError
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from flask import g
from flask import request as flask_request

from login_site import accounts
from login_site.connections.base import PASSWORDLESS_STRATEGIES
from login_site.connections.base import LoginFailed
from login_site.connections.passwordless import WRONG_CODE
from login_site.connections.passwordless import BadIdentifier
from login_site.connections.passwordless import authenticate
from login_site.connections.passwordless import find_connection
from login_site.connections.passwordless import strategy_for
from login_site.db import get_db
from login_site.db import utcnow
from login_site.oauth import tokens
from login_site.oauth.grants import TOKEN_AUTH_METHODS
from login_site.oauth.grants import UserBlockedError
from login_site.oauth.grants import _api
from login_site.oauth.grants import _audience
from login_site.oauth.grants import _check_grant_type
from login_site.oauth.grants import _maybe_refresh
from login_site.oauth.grants import _respond

PASSWORDLESS_OTP = "http://auth0.com/oauth/grant-type/passwordless/otp"


class PasswordlessOtpGrant(grants.BaseGrant, grants.TokenEndpointMixin):
    GRANT_TYPE = PASSWORDLESS_OTP
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS

    def validate_token_request(self):
        client = self.authenticate_token_endpoint_client()
        _check_grant_type(client, self.GRANT_TYPE)
        form = self.request.form
        username, code, realm = form.get("username"), form.get("otp"), form.get("realm")
        if not username or not code:
            raise InvalidRequestError("Missing 'username' or 'otp' in request.")
        if not realm:
            raise InvalidRequestError("Missing 'realm' in request.")
        conn = find_connection(get_db(), g.tenant, client.model, realm)
        if conn is None:
            raise InvalidRequestError("the connection was not found")
        if client.model.id not in conn.enabled_client_ids:
            raise InvalidRequestError("the connection was disabled")
        if conn.strategy not in PASSWORDLESS_STRATEGIES:
            raise InvalidRequestError("specified strategy does not support requested operation")
        audience = _audience(form)
        if audience and _api(audience) is None:
            raise AccessDeniedError(f"Service not found: {audience[:200]}", status_code=403)
        wrong = InvalidGrantError(WRONG_CODE[conn.strategy], status_code=403)
        try:
            identifier = strategy_for(conn).normalise(conn, username)
            user = authenticate(get_db(), conn, identifier, code[:200], client_pk=client.model.id)
        except BadIdentifier:
            raise wrong from None
        except LoginFailed as failure:
            get_db().rollback()
            if failure.reason == "blocked":
                raise UserBlockedError() from failure
            raise wrong from None
        self.request.client = client
        self.request.user = user
        self.request.connection = conn.name
        self.request.audience = audience
        self.request.scope = " ".join(dict.fromkeys((form.get("scope") or "openid").split()))

    def create_token_response(self):
        client, user = self.request.client, self.request.user
        scope, audience = self.request.scope, self.request.audience
        now = utcnow()
        accounts.record_login(user, flask_request.remote_addr)
        raw, family = _maybe_refresh(client, user, scope, audience, None, now)
        issue = tokens.Issue(
            client=client.model,
            user=user,
            scope=scope,
            audience=audience,
            auth_time=now,
            refresh_family=family,
        )
        return _respond(self, issue, raw)
