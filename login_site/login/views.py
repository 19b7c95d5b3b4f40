"""Universal login: ``/authorize`` and the hosted login page."""

from __future__ import annotations

import re

from flask import Blueprint
from flask import Response
from flask import current_app
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_babel import gettext as _

from login_site import accounts
from login_site import mail
from login_site import passwords
from login_site.api import co
from login_site.api.dbconnections import send_verification_mail
from login_site.connections.base import LoginFailed
from login_site.connections.base import get_strategy
from login_site.connections.database import SignupRejected
from login_site.connections.database import signup as database_signup
from login_site.db import get_db
from login_site.db import utcnow
from login_site.errors import AccessDenied
from login_site.errors import ConsentRequired
from login_site.errors import LoginRequired
from login_site.events import event
from login_site.login import consent
from login_site.login import flow
from login_site.login import pages
from login_site.login import transaction
from login_site.models import CrossOriginTicket
from login_site.oauth import authorize
from login_site.oauth.authorize import RedirectError
from login_site.outbound import UpstreamError
from login_site.tenancy import current_tenant
from login_site.tenancy import issuer

bp = Blueprint("login", __name__)

HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
DEFAULT_PRIMARY = "#4f46e5"


@bp.errorhandler(RedirectError)
def redirect_error(exc: RedirectError):
    """An error for the application, at its validated redirect URI."""
    event("authorize", exc.error.error, client_id=g.get("client_id"))
    return authorize.error_response(exc)


@bp.route("/authorize", methods=["GET", "POST"])
def authorize_endpoint():
    args = request.args if request.method == "GET" else request.form
    db = get_db()
    g.client_id = args.get("client_id")
    areq = authorize.parse(db, current_tenant(), args, issuer())
    g.ui_locales = areq.ui_locales
    if args.get("login_ticket"):
        return _cross_origin_login(areq, args.get("login_ticket"))
    record = flow.current_login_session()
    if flow.session_satisfies(areq, record):
        return _continue(areq, record)
    if "none" in areq.prompt:
        raise RedirectError(areq.target, LoginRequired("Login required."), issuer())
    tx_id = _new_transaction(areq)
    return redirect(
        url_for("login.login_page", state=tx_id, client=areq.client.client_id, protocol="oauth2"),
        code=302,
    )


def _new_transaction(areq, extra: dict | None = None) -> str:
    return transaction.create(
        get_db(),
        current_tenant(),
        areq,
        current_app.config["LOGIN_TRANSACTION_TTL_SECONDS"],
        extra,
    )


def _cross_origin_login(areq, raw_ticket: str):
    """``login_ticket`` from /co/authenticate: redeemed once, by the browser that got it
    (its cookie), or after the application's verification page proves the co_verifier."""
    try:
        row = co.find_ticket(raw_ticket, areq.client, areq.target.redirect_uri)
        if co.cookie_binds(row):
            return finish_login(None, areq, co.spend(row), row.connection)
        tx_id = _new_transaction(areq, {"co_ticket_hash": row.ticket_hash})
        return co.verification_page(row, areq.client, tx_id)
    except AccessDenied as exc:
        raise RedirectError(areq.target, exc, issuer()) from exc


@bp.post("/co/verify")
def co_verify():
    """The verifier relayed from the application's cross-origin verification page."""
    db = get_db()
    tx, areq = transaction.load(db, current_tenant(), request.form.get("state"))
    row = db.get(CrossOriginTicket, tx.params.get("co_ticket_hash") or "")
    try:
        if row is None or not co.verifier_binds(row, request.form.get("verifier")):
            raise AccessDenied("The cross-origin verification failed.")
        row = co.find_ticket_row(row, areq.client, areq.target.redirect_uri)
        user = co.spend(row)
    except AccessDenied as exc:
        tx.completed_at = utcnow()
        db.commit()
        raise RedirectError(areq.target, exc, issuer()) from exc
    return finish_login(tx, areq, user, row.connection)


def _continue(areq, record, tx=None):
    """After authentication: the consent screen when needed, else the code."""
    db = get_db()
    if consent.needed(db, areq.client, record.user_pk, areq.scope, areq.audience, areq.prompt):
        db.commit()  # a session just established stands, whatever the consent
        if "none" in areq.prompt:
            raise RedirectError(areq.target, ConsentRequired("Consent required."), issuer())
        tx_id = tx.id if tx is not None else _new_transaction(areq)
        return redirect(url_for("login.consent_page", state=tx_id), code=302)
    if tx is not None:
        tx.completed_at = utcnow()  # committed with the code: complete only if it was issued
    return flow.finish(areq, record)


@bp.get("/consent")
def consent_page():
    tx, areq, record = _consent_context(request.args.get("state"))
    items = consent.describe(get_db(), current_tenant(), areq.scope, areq.audience)
    return render_template(
        "login/consent.html", tenant=current_tenant(), client=areq.client, state=tx.id, items=items
    )


@bp.post("/consent")
def consent_submit():
    tx, areq, record = _consent_context(request.form.get("state"))
    db = get_db()
    tx.completed_at = utcnow()
    if request.form.get("decision") != "allow":
        db.commit()
        event("consent", "denied", client_id=areq.client.client_id)
        raise RedirectError(areq.target, AccessDenied("The user denied access."), issuer())
    consent.remember(db, current_tenant(), areq.client, record.user_pk, areq.scope, areq.audience)
    db.commit()
    event("consent", "granted", client_id=areq.client.client_id)
    return flow.finish(areq, record)


def _consent_context(tx_id):
    tx, areq = transaction.load(get_db(), current_tenant(), tx_id)
    g.ui_locales = areq.ui_locales
    record = flow.current_login_session()
    if record is None:
        raise transaction.EXPIRED
    return tx, areq, record


def _render(
    tx,
    areq,
    *,
    screen: str,
    error: str | None = None,
    status: int = 200,
    identifier: str | None = None,
    email: str | None = None,
    username: str | None = None,
    rules=None,
):
    db = get_db()
    tenant = current_tenant()
    available = pages.offers(db, tenant, areq.client, only=areq.connection)
    database = pages.database_offer(tenant, available, areq.connection)
    options = database.connection.options if database else {}
    signup_allowed = bool(database) and not options.get("disable_signup")
    if screen == "signup" and not signup_allowed:
        screen = "login"
    body = render_template(
        "login/login.html",
        tenant=tenant,
        client=areq.client,
        state=tx.id,
        screen=screen,
        database=database,
        others=[o for o in available if o.kind != "database"],
        has_any=bool(available),
        requires_username=bool(options.get("requires_username")),
        signup_allowed=signup_allowed,
        forgot_allowed=bool(database) and not options.get("disable_self_service_change_password"),
        policy=[(r, _describe(r)) for r in passwords.policy_rules(options, "")],
        error=error,
        failed_rules=[_describe(r) for r in rules or []],
        identifier=identifier if identifier is not None else (areq.login_hint or ""),
        email=email if email is not None else (areq.login_hint or ""),
        username=username or "",
    )
    return body, status


def _describe(rule: passwords.Rule) -> str:
    """A policy rule in the page's language."""
    return _(rule.message) % rule.format if rule.format else _(rule.message)


@bp.post("/login/start")
def start_connection():
    """A non-database connection's button: the strategy's first step (a redirect upstream,
    or a page of its own), for a connection the login page offered to this client."""
    db, tenant = get_db(), current_tenant()
    tx, areq = transaction.load(db, tenant, request.form.get("state"))
    g.ui_locales = areq.ui_locales
    offer = next(
        (
            o
            for o in pages.offers(db, tenant, areq.client, only=areq.connection)
            if o.connection.name == request.form.get("connection")
        ),
        None,
    )
    if offer is None or offer.kind == "database":
        return _render(
            tx,
            areq,
            screen="login",
            status=400,
            error=_("This sign-in method is not available for this application."),
        )
    return _begin(tx, areq, offer)


def _begin(tx, areq, offer, code: int = 303):
    """The first step of a non-database connection: upstream, or its own page."""
    db, tenant = get_db(), current_tenant()
    try:
        step = get_strategy(offer.connection.strategy).begin(offer.connection, tx)
    except UpstreamError:
        db.rollback()
        event("login", "failure", reason="upstream_unavailable", connection=offer.connection.name)
        return _render(
            tx,
            areq,
            screen="login",
            status=503,
            error=_("This sign-in provider cannot be reached right now. Try again in a moment."),
        )
    db.commit()
    if step.kind == "redirect":
        return redirect(step.url, code=code)
    return render_template(
        step.template,
        tenant=tenant,
        client=areq.client,
        state=tx.id,
        connection=offer.connection,
        **step.context,
    )


@bp.get("/login")
def login_page():
    db = get_db()
    tx, areq = transaction.load(db, current_tenant(), request.args.get("state"))
    g.ui_locales = areq.ui_locales
    if areq.connection and not request.args.get("screen"):
        # /authorize?connection=<social or enterprise>: straight to the provider (Auth0's
        # behaviour), no page in between.
        offers = pages.offers(db, current_tenant(), areq.client, only=areq.connection)
        offer = offers[0] if offers else None
        if offer is not None and offer.button.kind == "redirect":
            return _begin(tx, areq, offer, code=302)
    screen = request.args.get("screen") or ("signup" if areq.screen_hint == "signup" else "login")
    return _render(tx, areq, screen="signup" if screen == "signup" else "login")


@bp.get("/branding.css")
def branding():
    """The tenant's colours as CSS variables (a file, so the CSP needs no inline styles)."""
    colours = (current_tenant().setting("branding") or {}).get("colors") or {}
    primary = colours.get("primary", "")
    if not HEX_COLOUR.match(primary or ""):
        primary = DEFAULT_PRIMARY
    css = f":root {{ --primary: {primary}; }}\n"
    return Response(
        css, 200, {"Content-Type": "text/css; charset=utf-8", "Cache-Control": "public, max-age=60"}
    )


@bp.post("/login")
def login_submit():
    db = get_db()
    tenant = current_tenant()
    tx, areq = transaction.load(db, tenant, request.form.get("state"))
    g.ui_locales = areq.ui_locales
    available = pages.offers(db, tenant, areq.client, only=areq.connection)
    database = pages.database_offer(tenant, available, areq.connection)
    if database is None or request.form.get("connection") != database.connection.name:
        return _render(
            tx,
            areq,
            screen="login",
            status=400,
            error=_("This sign-in method is not available for this application."),
        )
    conn = database.connection
    if request.form.get("action") == "signup":
        return _signup(tx, areq, conn)
    identifier = request.form.get("username", "")
    try:
        profile = get_strategy(conn.strategy).complete(conn, tx, request.form)
    except LoginFailed as failure:
        db.rollback()
        event(
            "login",
            "failure",
            reason=failure.reason,
            connection=conn.name,
            client_id=areq.client.client_id,
        )
        status, message = 400, _("Wrong email or password.")
        if failure.reason == "blocked":
            message = _("Your account is blocked. Contact the administrator.")
        elif failure.reason == "too_many_attempts":
            # The same words for every identifier, known or not (mail goes to owners only).
            status = 429
            message = _(
                "Your account has been blocked after multiple consecutive login attempts. "
                "If this account exists, we have emailed its owner a link to unblock it; "
                "resetting the password unblocks it too."
            )
        return _render(
            tx, areq, screen="login", status=status, error=message, identifier=identifier
        )
    user = profile.local_user or accounts.user_for_identity(db, conn, profile.user_id)
    return finish_login(tx, areq, user, conn.name)


def _signup(tx, areq, conn):
    db = get_db()
    email = request.form.get("email", "")
    username = request.form.get("username") or None
    try:
        user = database_signup(
            db,
            current_tenant(),
            conn,
            email=email,
            password=request.form.get("password", ""),
            username=username,
        )
    except SignupRejected as exc:
        db.rollback()
        event("signup", "rejected", reason=exc.code, connection=conn.name)
        return _render(
            tx,
            areq,
            screen="signup",
            status=400,
            error=_(exc.message),
            email=email,
            username=username,
            rules=exc.rules,
        )
    except accounts.UserExists:
        db.rollback()
        event("signup", "exists", connection=conn.name)
        return _render(
            tx,
            areq,
            screen="signup",
            status=400,
            email=email,
            username=username,
            error=_("We could not create this account. If you already have one, log in."),
        )
    send_verification_mail(user, areq.client)
    db.commit()
    mail.deliver_after_commit()
    event("signup", "success", user_id=user.user_id, connection=conn.name)
    return finish_login(tx, areq, user, conn.name)


def finish_login(tx, areq, user, connection_name: str):
    """After any strategy authenticated ``user``: a new session, consent if needed, the code.
    ``tx`` is the login transaction (``None`` when there is none, e.g. a login ticket)."""
    record = flow.establish(user, connection_name)
    event(
        "login",
        "success",
        user_id=user.user_id,
        connection=connection_name,
        client_id=areq.client.client_id,
    )
    return _continue(areq, record, tx)
