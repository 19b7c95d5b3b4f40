"""Dashboard: the selected tenant's users. Search, profile, identities, live sessions and
recent events; block, unblock, revoke sessions, mail a reset or verification link, delete.

The plain functions first (no request needed), then the thin views on the dashboard
blueprint. Writes go through :mod:`login_site.accounts`, :mod:`login_site.sessions`,
:mod:`login_site.tickets` and :mod:`login_site.mail`.
"""

from __future__ import annotations

from flask import current_app
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_babel import gettext as _
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from login_site import accounts
from login_site import audit
from login_site import mail
from login_site import tickets
from login_site.dashboard.auth import acting
from login_site.dashboard.auth import require_admin
from login_site.dashboard.views import bp
from login_site.dashboard.views import record
from login_site.db import get_db
from login_site.db import utcnow
from login_site.errors import PageError
from login_site.i18n import N_
from login_site.management import users as management_users
from login_site.management.errors import ManagementError
from login_site.models import DatabaseCredential
from login_site.models import Identity
from login_site.models import LoginSession
from login_site.models import Tenant
from login_site.models import User
from login_site.oauth import refresh
from login_site.security import bruteforce
from login_site.urls import is_loopback

PER_PAGE = 25
MAX_QUERY_CHARS = 320
RECENT_EVENTS = 20

# --- queries --------------------------------------------------------------------------------


def search_users(
    db: Session, tenant: Tenant, query: str, page: int = 0, per_page: int = PER_PAGE
) -> tuple[list[User], int]:
    """Users matching ``query``, newest first, as a page and the total. Plain text is
    looked for in email, name, username and user_id (any case); ``field:value`` terms are
    the Management API's query syntax (``email:…``, ``blocked:true``, ``AND``/``OR``) and
    raise its :class:`ManagementError` when malformed. All users for an empty query."""
    conditions = [User.tenant_id == tenant.id]
    text = query.strip()[:MAX_QUERY_CHARS]
    if ":" in text:
        conditions.append(management_users.parse_query(tenant, text))
    elif text:
        needle = text.lower()
        conditions.append(
            or_(
                *(
                    func.lower(column).contains(needle, autoescape=True)
                    for column in (User.email, User.name, User.username, User.user_id)
                )
            )
        )
    total = db.scalar(select(func.count()).select_from(User).where(*conditions)) or 0
    rows = db.scalars(
        select(User)
        .where(*conditions)
        .order_by(User.created_at.desc(), User.id.desc())
        .offset(max(page, 0) * per_page)
        .limit(per_page)
    )
    return list(rows), total


def live_sessions(db: Session, user: User) -> list[LoginSession]:
    """Sessions not revoked and not past their absolute expiry, newest first (the idle
    limit is checked at use; these may still be idle-expired)."""
    return list(
        db.scalars(
            select(LoginSession)
            .where(
                LoginSession.user_pk == user.id,
                LoginSession.revoked_at.is_(None),
                LoginSession.expires_at > utcnow(),
            )
            .order_by(LoginSession.auth_time.desc())
        )
    )


def revoke_sessions(db: Session, user: User) -> int:
    """End every login session of the user and the refresh tokens out there (the caller
    commits). Returns how many live sessions ended."""
    ended = db.execute(
        update(LoginSession)
        .where(LoginSession.user_pk == user.id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    ).rowcount
    refresh.revoke_for_user(db, user.id)
    return ended or 0


def database_credential(db: Session, user: User) -> DatabaseCredential | None:
    """The user's password login, if one of their identities has one."""
    return db.scalar(
        select(DatabaseCredential)
        .join(Identity, Identity.id == DatabaseCredential.identity_id)
        .where(Identity.user_pk == user.id)
    )


# --- mails ----------------------------------------------------------------------------------


def tenant_url(tenant: Tenant, path: str) -> str:
    """An absolute URL on the tenant's own first host: links in mails sent from the
    dashboard must lead to the user's tenant, not to the dashboard's host. http only on
    loopback hosts, as for registered callbacks."""
    if not tenant.hosts:
        raise ValueError("the tenant has no host")
    host = tenant.hosts[0].host
    hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    scheme = "http" if is_loopback(hostname.strip("[]")) else "https"
    return f"{scheme}://{host}/{path.lstrip('/')}"


def send_password_reset(db: Session, tenant: Tenant, user: User) -> bool:
    """Queue a reset link (older ones die), as the hosted "forgot password" does; the
    caller commits, then delivers. False when the user has no password or no email."""
    if not user.email or database_credential(db, user) is None:
        return False
    raw = tickets.issue(
        db,
        user,
        "reset_password",
        lifetime_seconds=current_app.config["RESET_TICKET_TTL_SECONDS"],
    )
    mail.enqueue(
        db,
        tenant,
        to=user.email,
        template="reset_password",
        kind="reset_password",
        context={
            "link": tenant_url(tenant, f"reset_password?ticket={raw}"),
            "expires_minutes": current_app.config["RESET_TICKET_TTL_SECONDS"] // 60,
        },
    )
    return True


def send_verification(db: Session, tenant: Tenant, user: User) -> bool:
    """Queue a verification link (older ones die); False without an unverified email."""
    if not user.email or user.email_verified:
        return False
    raw = tickets.issue(
        db,
        user,
        "verify_email",
        lifetime_seconds=current_app.config["VERIFY_TICKET_TTL_SECONDS"],
    )
    mail.enqueue(
        db,
        tenant,
        to=user.email,
        template="verify_email",
        kind="verify_email",
        context={
            "link": tenant_url(tenant, f"verify_email?ticket={raw}"),
            "application_name": tenant.friendly_name or tenant.name,
        },
    )
    return True


# --- views ----------------------------------------------------------------------------------


def _page_number(value: str | None) -> int:
    try:
        return max(int(value or 0), 0) if len(value or "") < 7 else 0
    except ValueError:
        return 0


def _selected_user(user_id: str) -> tuple[Tenant, User]:
    """The selected tenant and its user ``user_id`` (a 404 page in any other tenant). Events of
    the shared code called next are filed under that tenant."""
    tenant = acting().tenant
    g.audit_tenant = tenant
    return tenant, management_users.find(get_db(), tenant, user_id)


def _back_to(user: User):
    return redirect(url_for("dashboard.user", user_id=user.user_id), code=303)


@bp.get("/users")
@require_admin
def users():
    tenant = acting().tenant
    query = request.args.get("q", "")[:MAX_QUERY_CHARS]
    page = _page_number(request.args.get("page"))
    try:
        rows, total = search_users(get_db(), tenant, query, page)
    except ManagementError as exc:
        body = render_template(
            "dashboard/users/list.html", users=[], total=0, query=query, page=0, error=exc.message
        )
        return body, 400
    return render_template(
        "dashboard/users/list.html",
        users=rows,
        total=total,
        query=query,
        page=page,
        has_next=(page + 1) * PER_PAGE < total,
    )


@bp.get("/users/<path:user_id>")
@require_admin
def user(user_id: str):
    tenant, found = _selected_user(user_id)
    db = get_db()
    return render_template(
        "dashboard/users/detail.html",
        user=found,
        connections=management_users.connection_names(db, tenant),
        sessions=live_sessions(db, found),
        events=audit.for_user(db, tenant.id, found.user_id, RECENT_EVENTS),
        has_password=database_credential(db, found) is not None,
    )


@bp.post("/users/<path:user_id>/block")
@require_admin
def user_block(user_id: str):
    found = _selected_user(user_id)[1]
    db = get_db()
    accounts.block_user(db, found)
    db.commit()
    record("dashboard.user_blocked", target=f"user:{found.user_id}", user_id=found.user_id)
    flash(_("The user is blocked: logins fail and their sessions ended."))
    return _back_to(found)


@bp.post("/users/<path:user_id>/unblock")
@require_admin
def user_unblock(user_id: str):
    found = _selected_user(user_id)[1]
    db = get_db()
    accounts.unblock_user(found)
    cleared = bruteforce.unblock_user(db, found)  # brute-force blocks from every IP too
    db.commit()
    record(
        "dashboard.user_unblocked",
        target=f"user:{found.user_id}",
        user_id=found.user_id,
        brute_force_rows=cleared,
    )
    flash(_("The user is unblocked."))
    return _back_to(found)


@bp.post("/users/<path:user_id>/revoke-sessions")
@require_admin
def user_revoke_sessions(user_id: str):
    found = _selected_user(user_id)[1]
    db = get_db()
    ended = revoke_sessions(db, found)
    db.commit()
    record(
        "dashboard.user_sessions_revoked",
        target=f"user:{found.user_id}",
        user_id=found.user_id,
        ended=ended,
    )
    flash(_("Sessions and refresh tokens revoked."))
    return _back_to(found)


@bp.post("/users/<path:user_id>/reset-password")
@require_admin
def user_send_reset(user_id: str):
    tenant, found = _selected_user(user_id)
    db = get_db()
    if not send_password_reset(db, tenant, found):
        flash(_("This user has no password login with an email address."), "error")
        return _back_to(found)
    db.commit()
    mail.deliver_after_commit()
    record("dashboard.password_reset_sent", target=f"user:{found.user_id}", user_id=found.user_id)
    flash(_("A password reset link was sent."))
    return _back_to(found)


@bp.post("/users/<path:user_id>/verify-email")
@require_admin
def user_send_verification(user_id: str):
    tenant, found = _selected_user(user_id)
    db = get_db()
    if not send_verification(db, tenant, found):
        flash(_("This user has no unverified email address."), "error")
        return _back_to(found)
    db.commit()
    mail.deliver_after_commit()
    record("dashboard.verification_sent", target=f"user:{found.user_id}", user_id=found.user_id)
    flash(_("A verification link was sent."))
    return _back_to(found)


@bp.route("/users/<path:user_id>/delete", methods=["GET", "POST"])
@require_admin
def user_delete(user_id: str):
    """GET: a confirmation page (nothing changes). POST: delete."""
    found = _selected_user(user_id)[1]
    if request.method == "GET":
        return render_template("dashboard/users/delete.html", user=found)
    if request.form.get("confirm") != found.user_id:
        raise PageError(
            N_("Not deleted"),
            N_("The confirmation did not name this user. Nothing was deleted."),
        )
    db = get_db()
    accounts.delete_user(db, found)
    db.commit()
    record("dashboard.user_deleted", target=f"user:{user_id}", user_id=user_id)
    flash(_("The user was deleted."))
    return redirect(url_for("dashboard.users"), code=303)
