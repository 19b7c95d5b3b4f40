"""From a validated authorize request and a logged-in user to the application's callback."""

from __future__ import annotations

from flask import current_app
from flask import g
from flask import request
from flask import session
from flask_login import login_user
from flask_login import logout_user

from login_site import accounts
from login_site import sessions
from login_site.db import get_db
from login_site.db import utcnow
from login_site.login.transaction import BROWSER_KEY
from login_site.models import LoginSession
from login_site.models import User
from login_site.oauth import authorize
from login_site.oauth.authorize import AuthorizeRequest
from login_site.tenancy import current_tenant
from login_site.tenancy import issuer

SESSION_KEY = "sid"


def current_login_session() -> LoginSession | None:
    """This browser's live session on the current tenant, if any (cached per request)."""
    if "login_session" not in g:
        g.login_session = sessions.load(
            get_db(), current_tenant(), session.get(SESSION_KEY), current_app.config
        )
    return g.login_session


def load_user(user_id: str) -> User | None:
    """flask-login's loader: the cookie's user counts only with a live server-side session."""
    record = current_login_session()
    if record is None or str(record.user_pk) != user_id:
        return None
    return accounts.get_user(get_db(), record.tenant_id, record.user_pk)


def establish(user: User, connection: str) -> LoginSession:
    """A new server-side session with a new id: nothing from before login survives
    in the cookie except the browser binding of pending transactions (no fixation).
    Written but not committed: the caller commits it with what the login leads to (the code,
    or the way to the consent screen), so a login costs one commit."""
    db = get_db()
    sessions.revoke(db, session.get(SESSION_KEY))
    binding = session.get(BROWSER_KEY)
    session.clear()
    if binding:
        session[BROWSER_KEY] = binding
    raw, record = sessions.start(
        db,
        current_tenant(),
        user,
        connection,
        current_app.config,
        ip=request.remote_addr,
        user_agent=request.headers.get("User-Agent"),
    )
    accounts.record_login(user, request.remote_addr)
    db.flush()
    session[SESSION_KEY] = raw
    session.permanent = False
    login_user(user)
    g.login_session = record
    return record


def end() -> None:
    db = get_db()
    sessions.revoke(db, session.get(SESSION_KEY))
    db.commit()
    logout_user()
    session.clear()
    g.login_session = None


def session_satisfies(areq: AuthorizeRequest, record: LoginSession | None) -> bool:
    if record is None or "login" in areq.prompt:
        return False
    if areq.hint_sub is not None:
        user = accounts.get_user(get_db(), record.tenant_id, record.user_pk)
        if user is None or user.user_id != areq.hint_sub:
            return False
    if areq.max_age is not None:
        age = (utcnow() - record.auth_time).total_seconds()
        if age > areq.max_age:
            return False
    return True


def finish(areq: AuthorizeRequest, record: LoginSession):
    """Issue the code and answer the application (RFC 6749 §4.1.2)."""
    db = get_db()
    code = authorize.issue_code(
        db,
        current_tenant(),
        areq,
        user_pk=record.user_pk,
        auth_time=record.auth_time,
        session_sid=record.sid,
        ttl_seconds=current_app.config["CODE_TTL_SECONDS"],
    )
    db.commit()
    return authorize.respond(areq.target, {"code": code}, issuer())
