"""Self-service pages on the hosted login: verify email, forgot and reset password,
change password when logged in. Links carry a single-use ticket (login_site.tickets)."""

from __future__ import annotations

from flask import Blueprint
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_babel import gettext as _
from sqlalchemy import select

from login_site import mail
from login_site import passwords
from login_site import tickets
from login_site.api.dbconnections import send_reset_mail
from login_site.api.dbconnections import send_verification_mail
from login_site.connections import database
from login_site.db import get_db
from login_site.events import event
from login_site.i18n import N_
from login_site.login import flow
from login_site.login import pages
from login_site.login import transaction
from login_site.models import Connection
from login_site.models import DatabaseCredential
from login_site.models import User
from login_site.oauth.authorize import add_query
from login_site.security import bruteforce
from login_site.tenancy import current_tenant

bp = Blueprint("selfservice", __name__)

INVALID_LINK = N_("This link is invalid or has expired. Ask for a new one.")


def _page(template: str, status: int = 200, **context):
    return render_template(template, tenant=current_tenant(), **context), status


def _logged_in():
    """(session, user) of the browser's live session, or (None, None)."""
    record = flow.current_login_session()
    return (record, get_db().get(User, record.user_pk)) if record else (None, None)


def _log_in_first(message: str):
    return _page("selfservice/message.html", 401, title=N_("Log in first"), message=message)


def _database_connection(user: User) -> Connection | None:
    for identity in user.identities:
        credential = get_db().get(DatabaseCredential, identity.id)
        if credential is not None:
            return get_db().get(Connection, credential.connection_id)
    return None


def _policy(conn: Connection):
    rules = passwords.policy_rules(conn.options or {}, "")
    return [(r, _(r.message) % r.format if r.format else _(r.message)) for r in rules]


# --- email verification -------------------------------------------------------------------


@bp.get("/verify_email")
def verify_email():
    db, tenant = get_db(), current_tenant()
    raw = request.args.get("ticket")
    try:
        ticket = tickets.spend(db, tenant.id, raw, "verify_email")
    except tickets.TicketInvalid:
        db.rollback()
        used = tickets.was_used(db, tenant.id, raw, "verify_email")
        if used and (user := db.get(User, used.user_pk)) is not None and user.email_verified:
            return _page(
                "selfservice/message.html",
                title=N_("Email already verified"),
                message=N_("Your email address was already verified. You can log in."),
            )
        return _page(
            "selfservice/message.html", 400, title=N_("Link not valid"), message=INVALID_LINK
        )
    user = db.get(User, ticket.user_pk)
    user.email_verified = True
    db.commit()
    event("verify_email", "success", user_id=user.user_id)
    return _page(
        "selfservice/message.html",
        title=N_("Email verified"),
        message=N_("Thank you, your email address is verified. You can close this page."),
    )


# --- reset password -----------------------------------------------------------------------


@bp.get("/reset_password")
def reset_password_form():
    db, tenant = get_db(), current_tenant()
    raw = request.args.get("ticket")
    try:
        ticket = tickets.peek(db, tenant.id, raw, "reset_password")
    except tickets.TicketInvalid:
        return _page(
            "selfservice/message.html", 400, title=N_("Link not valid"), message=INVALID_LINK
        )
    user = db.get(User, ticket.user_pk)
    conn = _database_connection(user)
    return _page(
        "selfservice/reset_password.html",
        ticket=raw,
        email=user.email,
        policy=_policy(conn) if conn else [],
    )


@bp.post("/reset_password")
def reset_password_submit():
    db, tenant = get_db(), current_tenant()
    raw = request.form.get("ticket")
    password = request.form.get("password", "")
    try:
        ticket = tickets.spend(db, tenant.id, raw, "reset_password")
    except tickets.TicketInvalid:
        db.rollback()
        return _page(
            "selfservice/message.html", 400, title=N_("Link not valid"), message=INVALID_LINK
        )
    user = db.get(User, ticket.user_pk)
    conn = _database_connection(user)
    error, rules = _set_password(conn, user, password, request.form.get("confirm", ""))
    if error is not None:
        db.rollback()  # the ticket is not spent by a rejected password
        return _page(
            "selfservice/reset_password.html",
            400,
            ticket=raw,
            email=user.email,
            policy=_policy(conn),
            error=error,
            failed_rules=rules,
        )
    if ticket.marks_email_verified:
        user.email_verified = True  # the mailbox owner proved control of the address
    _unblock(user)
    mail.enqueue(
        db, tenant, to=user.email, template="password_changed", kind="password_changed", context={}
    )
    db.commit()
    mail.deliver_after_commit()
    event("reset_password", "success", user_id=user.user_id)
    if ticket.result_url:  # validated like a redirect URI when the ticket was made
        params = {"success": "true", "message": "You can now login to the application"}
        if ticket.result_with_email:
            params["email"] = user.email or ""
        return redirect(add_query(ticket.result_url, params), code=303)
    return _page(
        "selfservice/message.html",
        title=N_("Password changed"),
        message=N_("Your password was changed. Go back to the application and log in."),
    )


def _set_password(conn, user, password: str, confirm: str) -> tuple[str | None, list[str]]:
    """(error, failed rule texts) or (None, []) once the new password is set."""
    if password != confirm:
        return _("The two passwords do not match."), []
    try:
        database.change_password(get_db(), current_tenant(), conn, user, password)
    except database.SignupRejected as exc:
        rules = [_(r.message) % r.format if r.format else _(r.message) for r in exc.rules]
        return _(exc.message), rules
    return None, []


def _unblock(user: User) -> None:
    """A password reset lifts brute-force blocks (Auth0)."""
    bruteforce.unblock_user(get_db(), user)


# --- forgot password (from the login page) ------------------------------------------------


@bp.route("/forgot_password", methods=["GET", "POST"])
def forgot_password():
    db, tenant = get_db(), current_tenant()
    tx, areq = transaction.load(db, tenant, request.values.get("state"))
    g.ui_locales = areq.ui_locales
    available = pages.offers(db, tenant, areq.client, only=areq.connection)
    offer = pages.database_offer(tenant, available, areq.connection)
    if offer is None or (offer.connection.options or {}).get(
        "disable_self_service_change_password"
    ):
        return _page(
            "selfservice/message.html",
            400,
            title=N_("Not available"),
            message=N_("Password reset is not available for this application."),
        )
    if request.method == "POST":
        email = request.form.get("email", "").strip()[:320]
        if email:
            send_reset_mail(offer.connection, email, areq.client)
        return _page(
            "selfservice/message.html",
            title=N_("Check your email"),
            message=N_(
                "If an account exists for this address, we have sent a link to reset the password."
            ),
            back=url_for("login.login_page", state=tx.id),
        )
    return _page(
        "selfservice/forgot_password.html",
        state=tx.id,
        email=areq.login_hint or "",
        back=url_for("login.login_page", state=tx.id),
    )


# --- change password while logged in ------------------------------------------------------


@bp.route("/account/password", methods=["GET", "POST"])
def change_password():
    db, tenant = get_db(), current_tenant()
    record, user = _logged_in()
    if user is None:
        return _log_in_first(N_("Log in through your application to change your password."))
    conn = db.execute(
        select(Connection).where(
            Connection.tenant_id == tenant.id, Connection.name == record.connection
        )
    ).scalar_one()
    if request.method == "GET":
        return _page("selfservice/change_password.html", policy=_policy(conn))
    error, rules = None, []
    try:
        database.authenticate(db, conn, user.email or "", request.form.get("current", ""))
    except database.LoginFailed:
        error = _("Your current password is not correct.")
    if error is None:
        error, rules = _set_password(
            conn, user, request.form.get("password", ""), request.form.get("confirm", "")
        )
    if error is not None:
        db.rollback()
        return _page(
            "selfservice/change_password.html",
            400,
            policy=_policy(conn),
            error=error,
            failed_rules=rules,
        )
    mail.enqueue(
        db, tenant, to=user.email, template="password_changed", kind="password_changed", context={}
    )
    db.commit()
    mail.deliver_after_commit()
    flow.end()
    event("change_password", "success", user_id=user.user_id)
    return _page(
        "selfservice/message.html",
        title=N_("Password changed"),
        message=N_("Your password was changed and you were logged out everywhere."),
    )


# --- verification email on demand ---------------------------------------------------------


@bp.route("/account/verify_email", methods=["GET", "POST"])
def resend_verification():
    """A logged-in user asks for a new verification link (the old ones die)."""
    db = get_db()
    _, user = _logged_in()
    if user is None:
        return _log_in_first(N_("Log in through your application to verify your email."))
    if user.email_verified or not user.email:
        return _page(
            "selfservice/message.html",
            title=N_("Email already verified"),
            message=N_("Your email address was already verified. You can log in."),
        )
    if request.method == "GET":
        return _page("selfservice/resend_verification.html", email=user.email)
    send_verification_mail(user, None)
    db.commit()
    mail.deliver_after_commit()
    event("verify_email", "sent", user_id=user.user_id)
    return _page(
        "selfservice/message.html",
        title=N_("Check your email"),
        message=N_("We sent you a new link to verify your email address."),
    )
