"""``/login/callback``: the end of a round trip through an upstream identity provider.

The login layer's part (STYLE §2): the ``state`` we sent names the login transaction and carries
a secret whose hash is on it; the transaction must belong to this browser (its session cookie)
and the secret is spent by one conditional UPDATE, so a callback works once, in the browser that
started it (checklist UP-01, SC-01…SC-03). Then the strategy redeems the code (PKCE, nonce and
ID token checks are its own), and the user is found, created or — only after proving both
accounts — linked (SU-06, SC-10, SC-11). Upstream refusals and outages reach the application at
its validated redirect URI; anything we cannot trust ends on a page.
"""

from __future__ import annotations

import json

from flask import Blueprint
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask_babel import gettext as _
from sqlalchemy import update

from login_site import accounts
from login_site import token_vault
from login_site.connections import database
from login_site.connections.base import LoginFailed
from login_site.connections.base import get_strategy
from login_site.connections.oauth2 import OAuth2Strategy
from login_site.connections.oauth2 import token_vault_enabled
from login_site.db import get_db
from login_site.db import utcnow
from login_site.errors import AccessDenied
from login_site.errors import LoginSiteError
from login_site.errors import PageError
from login_site.errors import TemporarilyUnavailable
from login_site.events import event
from login_site.i18n import N_
from login_site.login import pages
from login_site.login import transaction
from login_site.login.transaction import BROWSER_KEY
from login_site.login.views import finish_login
from login_site.login.views import redirect_error
from login_site.models import Connection
from login_site.models import LoginTransaction
from login_site.oauth.authorize import RedirectError
from login_site.outbound import UpstreamError
from login_site.security.secrets import sha256_hex
from login_site.tenancy import current_tenant
from login_site.tenancy import issuer
from login_site.vault import keyring

bp = Blueprint("upstream", __name__)
bp.register_error_handler(RedirectError, redirect_error)

BAD_STATE = PageError(
    N_("This sign-in link cannot be used"),
    N_(
        "The answer from the sign-in provider does not belong to a login started in this "
        "browser, or it was already used. Go back to the application and start again."
    ),
    error="invalid_state",
)
REJECTED = PageError(
    N_("Sign-in failed"),
    N_(
        "The sign-in provider's answer could not be verified, so nobody was signed in. "
        "Go back to the application and try again."
    ),
    error="upstream_rejected",
)
# Fields a form_post callback may carry (OIDC form post; Apple adds ``user``).
CALLBACK_FIELDS = ("code", "state", "error", "error_description", "iss", "user")


@bp.route("/login/callback", methods=["GET", "POST"])
def callback():
    data = request.args if request.method == "GET" else request.form
    if request.method == "POST" and BROWSER_KEY not in session and not data.get("_same_site"):
        # A cross-site form_post arrives without our SameSite=Lax session cookie: post the same
        # fields again from our own origin, where the browser sends it.
        fields = {k: data[k] for k in CALLBACK_FIELDS if k in data}
        return render_template("login/callback_repost.html", fields=fields)
    db = get_db()
    tx, areq, conn = _spend_state(data.get("state"))
    g.ui_locales = areq.ui_locales
    target = areq.target
    if data.get("error"):
        event("login", "upstream_error", connection=conn.name, reason=data.get("error")[:64])
        raise RedirectError(target, _upstream_error(data.get("error")), issuer())
    strategy = get_strategy(conn.strategy)
    try:
        profile = strategy.complete(conn, tx, data)
    except LoginFailed as failure:
        db.rollback()
        _fail(tx, conn, failure.reason)
        raise REJECTED from failure
    except UpstreamError as exc:
        db.rollback()
        _fail(tx, conn, "upstream_unavailable" if exc.unavailable else "upstream_error")
        error = (
            TemporarilyUnavailable(_("The sign-in provider did not answer in time."))
            if exc.unavailable
            else LoginSiteError(_("The sign-in provider answered with an error."))
        )
        raise RedirectError(target, error, issuer()) from exc
    return _sign_in(tx, areq, conn, strategy, profile)


def _upstream_error(code: str) -> LoginSiteError:
    if code == "access_denied":
        return AccessDenied("The user denied access at the sign-in provider.")
    if code == "temporarily_unavailable":
        return TemporarilyUnavailable("The sign-in provider is temporarily unavailable.")
    return LoginSiteError("The sign-in provider refused the request.")


def _spend_state(state: str | None) -> tuple[LoginTransaction, object, Connection]:
    """The transaction this ``state`` names, once, in the browser that started it."""
    db, tenant = get_db(), current_tenant()
    tx_id, _sep, secret = (state or "").partition(".")
    if not tx_id or not secret or len(secret) > 128:
        raise BAD_STATE
    try:
        tx, areq = transaction.load(db, tenant, tx_id)
    except PageError as exc:
        raise BAD_STATE from exc
    spent = db.execute(
        update(LoginTransaction)
        .where(
            LoginTransaction.id == tx.id,
            LoginTransaction.upstream_state_hash == sha256_hex(secret),
            LoginTransaction.completed_at.is_(None),
        )
        .values(upstream_state_hash=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.commit()  # spent even if what follows fails
    if spent != 1:
        raise BAD_STATE
    started = tx.params.get("upstream_login") or {}
    offer = _offer(tenant, areq, started.get("connection"), proving=bool(started.get("proving")))
    if offer is None or not isinstance(get_strategy(offer.connection.strategy), OAuth2Strategy):
        # Disabled for this application since the login started (checklist SC-17).
        raise RedirectError(
            areq.target,
            AccessDenied("This connection is not enabled for the application."),
            issuer(),
        )
    return tx, areq, offer.connection


def _offer(tenant, areq, name: str | None, *, proving: bool = False):
    """The connection ``name`` if the login page may still offer it to this client (any of
    the client's connections when it only proves who owns an existing account)."""
    only = None if proving else areq.connection
    available = pages.offers(get_db(), tenant, areq.client, only=only)
    return next((o for o in available if o.connection.name == name), None)


def _fail(tx: LoginTransaction, conn: Connection, reason: str) -> None:
    event("login", "failure", connection=conn.name, reason=reason)


def _sign_in(tx, areq, conn: Connection, strategy: OAuth2Strategy, profile):
    """Find, create or link the user of ``profile``, then finish the login."""
    db, tenant = get_db(), current_tenant()
    is_social = strategy.preset.is_social
    key = accounts.upstream_key(conn, profile.user_id, is_social=is_social)
    mode = (conn.options or {}).get("set_user_root_attributes") or "on_each_login"
    identity = accounts.find_upstream_identity(db, conn, key)
    if (tx.params.get("upstream_login") or {}).get("proving"):
        return _link_proven(tx, areq, identity)
    if identity is not None:
        user = identity.user
        accounts.sync_upstream_profile(user, identity, profile, mode)
    else:
        owner = accounts.verified_email_owner(db, tenant, profile.email)
        if owner is not None and profile.email_verified:
            return _offer_link(tx, areq, conn, owner, profile)
        try:
            user = accounts.create_upstream_user(db, tenant, conn, key, profile, is_social)
        except accounts.UserExists:
            db.rollback()  # a parallel first login created it: use theirs
            identity = accounts.find_upstream_identity(db, conn, key)
            if identity is None:
                raise REJECTED from None
            user = identity.user
        identity = accounts.find_upstream_identity(db, conn, key)
    return _finish(tx, areq, conn, user, identity, profile)


def _finish(tx, areq, conn, user, identity, profile):
    db = get_db()
    if user.blocked:
        db.rollback()
        event("login", "failure", reason="blocked", user_id=user.user_id, connection=conn.name)
        raise RedirectError(areq.target, AccessDenied("user is blocked"), issuer())
    if token_vault_enabled(conn.options or {}) and profile.upstream_tokens:
        token_vault.store(db, user.tenant_id, identity, conn, profile.upstream_tokens)
    db.flush()
    return finish_login(tx, areq, user, conn.name)


# --- linking an upstream account to an existing one ------------------------------------------


def _offer_link(tx, areq, conn: Connection, owner, profile):
    """The provider vouches for an address that a user of this tenant has verified too. Never
    link on that alone (pre-account-takeover): the person proves the existing account first,
    or keeps the new one separate."""
    db = get_db()
    pending = {
        "connection": conn.name,
        "owner_pk": owner.id,
        "profile": _pending_profile(profile),
        "tokens": _sealed(profile.upstream_tokens),
    }
    db.execute(
        update(LoginTransaction)
        .where(LoginTransaction.id == tx.id)
        .values(params={**tx.params, "pending_link": pending})
        .execution_options(synchronize_session=False)
    )
    db.commit()
    return _link_page(tx.id, conn, owner)


def _owner_connections(areq, owner) -> tuple[bool, list]:
    """How the owner can prove the existing account here: a password (a database identity),
    and the provider connections of their identities that this client offers."""
    db = get_db()
    names = {
        c.name: c.strategy
        for i in owner.identities
        if (c := db.get(Connection, i.connection_id)) is not None
    }
    has_password = "auth0" in names.values()
    providers = [
        o
        for o in pages.offers(db, current_tenant(), areq.client)
        if o.connection.name in names
        and isinstance(get_strategy(o.connection.strategy), OAuth2Strategy)
    ]
    return has_password, providers


def _link_page(tx_id: str, conn: Connection, owner, *, status: int = 200, error: str | None = None):
    db = get_db()
    tx, areq = transaction.load(db, current_tenant(), tx_id)
    has_password, providers = _owner_connections(areq, owner)
    return (
        render_template(
            "login/link_account.html",
            tenant=current_tenant(),
            state=tx_id,
            provider=conn.display_name or get_strategy(conn.strategy).preset.label,
            email=owner.email,
            has_password=has_password,
            providers=providers,
            error=error,
        ),
        status,
        {"Cache-Control": "no-store"},
    )


@bp.post("/login/link")
def link_submit():
    """The answer to the linking page: the existing account's password (then link), or
    "keep them separate" (then a new user)."""
    db, tenant = get_db(), current_tenant()
    tx, areq = transaction.load(db, tenant, request.form.get("state"))
    g.ui_locales = areq.ui_locales
    pending = tx.params.get("pending_link")
    if not pending:
        raise transaction.EXPIRED
    offer = _offer(tenant, areq, pending["connection"])
    conn = offer.connection if offer is not None else None
    owner = accounts.get_user(db, tenant.id, pending["owner_pk"])
    if conn is None or owner is None:
        raise transaction.EXPIRED
    if request.form.get("action") == "prove":
        return _prove_with_provider(tx, areq, owner, request.form.get("connection"))
    profile = _pending_profile_of(conn, pending)
    if request.form.get("action") == "separate":
        is_social = get_strategy(conn.strategy).preset.is_social
        key = accounts.upstream_key(conn, profile.user_id, is_social=is_social)
        user = accounts.create_upstream_user(db, tenant, conn, key, profile, is_social)
        identity = accounts.find_upstream_identity(db, conn, key)
        _clear_pending(tx)
        return _finish(tx, areq, conn, user, identity, profile)
    user = _prove_owner(owner, request.form.get("password", ""))
    if user is None:
        db.rollback()
        event("link", "failure", user_id=owner.user_id, connection=conn.name)
        return _link_page(
            tx.id, conn, owner, status=400, error=_("Wrong password for the existing account.")
        )
    return _link(tx, areq, conn, owner, profile)


def _prove_with_provider(tx, areq, owner, name: str | None):
    """Send the person to the provider the existing account logs in with; the callback links
    only if that login comes back as this very owner (``_link_proven``)."""
    db = get_db()
    _, providers = _owner_connections(areq, owner)
    offer = next((o for o in providers if o.connection.name == name), None)
    if offer is None:
        raise transaction.EXPIRED
    step = get_strategy(offer.connection.strategy).begin(offer.connection, tx)
    tx.params = {
        **tx.params,
        "upstream_login": {**tx.params["upstream_login"], "proving": True},
    }
    db.commit()
    return redirect(step.url, code=303)


def _link_proven(tx, areq, identity):
    """The end of a proving round trip: link the pending account if the person just logged
    in as the owner it was offered to; anything else links nothing."""
    tenant = current_tenant()
    pending = tx.params.get("pending_link") or {}
    if identity is None or identity.user_pk != pending.get("owner_pk"):
        event("link", "failure", reason="not_the_owner")
        raise REJECTED
    offer = _offer(tenant, areq, pending.get("connection"))
    if offer is None:
        raise RedirectError(
            areq.target,
            AccessDenied("This connection is not enabled for the application."),
            issuer(),
        )
    conn = offer.connection
    return _link(tx, areq, conn, identity.user, _pending_profile_of(conn, pending))


def _pending_profile_of(conn: Connection, pending: dict):
    """The upstream profile (and its sealed tokens) waiting on the transaction."""
    profile = get_strategy(conn.strategy).profile(conn, pending["profile"]["raw"])
    if pending.get("tokens"):
        profile.upstream_tokens = json.loads(keyring().decrypt(pending["tokens"]))
    return profile


def _link(tx, areq, conn: Connection, owner, profile):
    """Add the pending upstream account to ``owner``, who just proved the existing account."""
    db = get_db()
    strategy = get_strategy(conn.strategy)
    key = accounts.upstream_key(conn, profile.user_id, is_social=strategy.preset.is_social)
    try:
        linked = accounts.add_upstream_identity(
            db, owner, conn, key, profile, strategy.preset.is_social
        )
    except accounts.UserExists:
        db.rollback()
        raise REJECTED from None
    _clear_pending(tx)
    event("link", "success", user_id=owner.user_id, connection=conn.name)
    return _finish(tx, areq, conn, owner, linked, profile)


def _prove_owner(owner, password: str):
    """``owner`` if ``password`` is the password of one of their database identities."""
    db = get_db()
    for identity in owner.identities:
        conn = db.get(Connection, identity.connection_id)
        if conn is None or conn.strategy != "auth0" or not owner.email:
            continue
        try:
            user = database.authenticate(db, conn, owner.email, password)
        except LoginFailed:
            continue
        if user.id == owner.id:
            return owner
    return None


def _clear_pending(tx) -> None:
    params = {k: v for k, v in tx.params.items() if k != "pending_link"}
    get_db().execute(
        update(LoginTransaction)
        .where(LoginTransaction.id == tx.id)
        .values(params=params)
        .execution_options(synchronize_session=False)
    )


def _sealed(tokens: dict) -> str | None:
    """Upstream tokens waiting on the transaction for the linking answer: encrypted."""
    return keyring().encrypt(json.dumps(tokens)) if tokens else None


def _pending_profile(profile) -> dict:
    return {"raw": profile.raw, "at": utcnow().isoformat()}
