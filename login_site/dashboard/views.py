"""``/dashboard``: the thin HTTP layer. Views check the admin (:mod:`auth`), parse forms,
call the Management services and render. Every change is recorded with
``events.event(name, "success", actor=<admin user_id>, tenant=..., target=...)``."""

from __future__ import annotations

import importlib
import importlib.util

from flask import Blueprint
from flask import current_app
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for

from login_site import events
from login_site.dashboard import auth
from login_site.dashboard import builtin
from login_site.dashboard import signin as signin_flow
from login_site.dashboard import tenants as tenant_forms
from login_site.dashboard.auth import NOT_FOUND
from login_site.dashboard.auth import SESSION_KEY
from login_site.dashboard.auth import acting
from login_site.dashboard.auth import is_admin
from login_site.dashboard.auth import is_admin_tenant
from login_site.dashboard.auth import require_admin
from login_site.dashboard.auth import select_tenant
from login_site.dashboard.forms import FieldError
from login_site.dashboard.forms import lines
from login_site.db import get_db
from login_site.errors import PageError
from login_site.errors import error_page
from login_site.i18n import N_
from login_site.login import flow
from login_site.management.errors import ManagementError
from login_site.models import Tenant
from login_site.models import User
from login_site.tenancy import current_tenant
from login_site.tenancy import issuer
from login_site.tenancy import normalise_host
from login_site.vault import keyring

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")

SIGNIN_COOKIE = "dashboard_signin"
MAX_NEXT_LENGTH = 1000  # the path to return to rides in a cookie
# Connection kinds in the order of the Connections page (connections/base.py kind_of).
KINDS = (
    ("database", N_("Database")),
    ("social", N_("Social")),
    ("enterprise", N_("Enterprise")),
    ("passwordless", N_("Passwordless")),
)
# Sections of the navigation: (label, endpoint, endpoint prefixes that belong to it).
NAV = (
    (N_("Applications"), "dashboard.applications", ("dashboard.application",)),
    (N_("Connections"), "dashboard.connections", ("dashboard.connection",)),
    (N_("Users"), "dashboard.users", ("dashboard.user",)),
    (N_("Logs"), "dashboard.logs", ("dashboard.log",)),
    (N_("Import/Export"), "dashboard.export", ("dashboard.export", "dashboard.import")),
    (N_("Tenants"), "dashboard.tenants", ("dashboard.tenant",)),
)


def record(name: str, **fields: object) -> None:
    """One event per change, naming the admin and the tenant worked on."""
    who = acting()
    fields = {"tenant_id": who.tenant.id, "tenant": who.tenant.name, **fields}
    events.event(name, "success", actor=who.actor, **fields)


def locks_out(conn_name: str, client) -> bool:
    """Whether disabling ``conn_name`` for ``client`` would end the admin's own way in: the
    connection this admin signed in with, on the admin tenant's Dashboard client."""
    who = acting()
    return (
        who.tenant.id == who.admin_tenant.id
        and builtin.role_of(client) == builtin.DASHBOARD
        and conn_name == who.login_session.connection
    )


LOCKOUT_MESSAGE = N_("%(conn)s stays enabled for the Dashboard: you signed in with it.")


@bp.errorhandler(ManagementError)
def _management_error(exc: ManagementError):
    """A service refusal that no form shows inline (an unknown id, say): a page."""
    title = N_("Not found") if exc.status == 404 else N_("Not possible")
    return error_page(title, exc.message, exc.status)


def safe_next(value: str | None) -> str:
    """A dashboard path to return to; anything else (other hosts, ``//``) is dropped."""
    if not value or not value.startswith("/dashboard") or len(value) > MAX_NEXT_LENGTH:
        return ""
    if any(c in value for c in "\\\r\n\t"):
        return ""
    return value.rstrip("?")


@bp.context_processor
def _layout():
    who = g.get("dashboard")
    nav = []
    for label, endpoint, prefixes in NAV:
        if endpoint in current_app.view_functions:
            active = (request.endpoint or "").startswith(prefixes)
            nav.append({"label": label, "url": url_for(endpoint), "active": active})
    return {
        "acting": who,
        "nav": nav,
        "all_tenants": auth.tenants(get_db()) if who is not None else [],
        "is_admin_tenant": is_admin_tenant,
    }


# --- sign-in -----------------------------------------------------------------------------


@bp.get("/signin")
def signin():
    """Start the dashboard's own login: our ``/authorize`` with the built-in client."""
    tenant = g.get("tenant")
    if not is_admin_tenant(tenant):
        raise NOT_FOUND
    db = get_db()
    callback_url = url_for("dashboard.callback", _external=True)
    try:
        client = builtin.ensure(db, keyring(), tenant, builtin.DASHBOARD, callback_url)
    except ManagementError as exc:
        db.rollback()
        raise PageError(
            N_("The dashboard cannot sign in here"),
            N_("This address cannot receive the sign-in (use https on public hosts)."),
        ) from exc
    db.commit()
    pending = signin_flow.new_pending(
        tenant, client, callback_url, next_url=safe_next(request.args.get("next"))
    )
    response = redirect(signin_flow.authorize_url(issuer(), pending), code=302)
    set_pending_cookie(response, SIGNIN_COOKIE, "signin", pending)
    return response


def set_pending_cookie(response, name: str, purpose: str, pending) -> None:
    """A pending login (state, PKCE verifier, nonce) in a signed cookie on /dashboard."""
    response.set_cookie(
        name,
        signin_flow.seal(current_app.secret_key, purpose, pending),
        max_age=signin_flow.PENDING_TTL_SECONDS,
        path=signin_flow.COOKIE_PATH,
        secure=request.is_secure,
        httponly=True,
        samesite="Lax",
    )


SIGNIN_FAILED = PageError(
    N_("Sign-in failed"),
    N_("This sign-in link is expired or was already used. Open the dashboard again."),
    error="access_denied",
)


@bp.get("/callback")
def callback():
    """The end of the dashboard's login: state, code (spent once), PKCE, nonce, and the
    login session the code was issued for must be this browser's current one."""
    tenant = g.get("tenant")
    if not is_admin_tenant(tenant):
        raise NOT_FOUND
    pending = signin_flow.unseal(
        current_app.secret_key,
        "signin",
        request.cookies.get(SIGNIN_COOKIE),
        request.args.get("state"),
    )
    if pending is None or pending.tenant_id != tenant.id:
        raise SIGNIN_FAILED
    db = get_db()
    client = builtin.find(db, tenant, builtin.DASHBOARD)
    if client is None or client.client_id != pending.client_id or request.args.get("error"):
        raise SIGNIN_FAILED
    code = signin_flow.redeem(db, tenant, client, request.args.get("code"), pending)
    login = flow.current_login_session()
    if code is None or login is None or code.session_sid != login.sid:
        raise SIGNIN_FAILED
    session[SESSION_KEY] = login.sid
    user = db.get(User, login.user_pk)
    events.event(
        "dashboard.signin",
        "success" if is_admin(user) else "denied",
        actor=user.user_id if user else None,
    )
    response = redirect(pending.next or url_for("dashboard.index"), code=303)
    response.delete_cookie(SIGNIN_COOKIE, path=signin_flow.COOKIE_PATH)
    return response


@bp.post("/signout")
def signout():
    if not is_admin_tenant(g.get("tenant")):
        raise NOT_FOUND
    found = flow.current_login_session()
    if found is not None:
        events.event("dashboard.signout", "success", user_pk=found.user_pk)
    flow.end()
    return render_template("dashboard/signed_out.html", tenant=current_tenant())


# --- shell -------------------------------------------------------------------------------


@bp.get("/")
@require_admin
def index():
    return redirect(url_for("dashboard.applications"), code=302)


@bp.post("/tenant")
@require_admin
def switch_tenant():
    """The tenant switcher (a form: works without JavaScript)."""
    tenant = get_db().get(Tenant, request.form.get("tenant", ""))
    if tenant is None:
        raise PageError(N_("Unknown tenant"), N_("That tenant does not exist."), status=404)
    select_tenant(tenant)
    return redirect(safe_next(request.form.get("next")) or url_for("dashboard.index"), code=303)


def _tenant_form(values: dict[str, str]) -> tenant_forms.TenantForm:
    return tenant_forms.read(
        values["friendly_name"], lines(values["hosts"]), values["primary"], values["logo_url"]
    )


@bp.route("/tenants", methods=["GET", "POST"])
@require_admin
def tenants():
    """Every tenant, and the form that creates one (then selected)."""
    values = {"name": "", "friendly_name": "", "hosts": "", "primary": "", "logo_url": ""}
    error = None
    if request.method == "POST":
        values = {k: request.form.get(k, "") for k in values}
        db = get_db()
        try:
            form = tenant_forms.read(
                values["friendly_name"],
                lines(values["hosts"]),
                values["primary"],
                values["logo_url"],
            )
            tenant = tenant_forms.create(db, keyring(), values["name"], form)
        except (FieldError, ManagementError) as exc:
            db.rollback()
            error = exc if isinstance(exc, FieldError) else FieldError("name", exc.message)
        else:
            db.commit()
            select_tenant(tenant)
            record("dashboard.tenant_created", target=f"tenant:{tenant.name}")
            flash(f"Tenant {tenant.friendly_name} created and selected.", "success")
            return redirect(url_for("dashboard.applications"), code=303)
    return render_template("dashboard/tenants/list.html", values=values, error=error), (
        400 if error else 200
    )


@bp.route("/tenants/<tenant_id>", methods=["GET", "POST"])
@require_admin
def tenant_settings(tenant_id: str):
    db = get_db()
    tenant = db.get(Tenant, tenant_id)
    if tenant is None:
        raise PageError(N_("Unknown tenant"), N_("That tenant does not exist."), status=404)
    branding = tenant.setting("branding") or {}
    values = {
        "friendly_name": tenant.friendly_name,
        "hosts": "\n".join(h.host for h in tenant.hosts),
        "primary": (branding.get("colors") or {}).get("primary", ""),
        "logo_url": branding.get("logo_url", ""),
    }
    error = None
    if request.method == "POST":
        values = {k: request.form.get(k, "") for k in values}
        try:
            form = tenant_forms.read(
                values["friendly_name"],
                lines(values["hosts"]),
                values["primary"],
                values["logo_url"],
            )
            tenant_forms.update(db, tenant, form, keep_host=normalise_host(request.host))
        except FieldError as exc:
            db.rollback()
            error = exc
        else:
            db.commit()
            record("dashboard.tenant_updated", target=f"tenant:{tenant.name}", tenant_id=tenant.id)
            flash("Tenant settings saved.", "success")
            return redirect(url_for("dashboard.tenant_settings", tenant_id=tenant.id), code=303)
    return render_template(
        "dashboard/tenants/settings.html", tenant=tenant, values=values, error=error
    ), (400 if error else 200)


# --- pages in other modules --------------------------------------------------------------
# Applications and Connections: applications.py and connections.py. Users, Logs and
# Import/Export (another module each) add their views to ``bp`` too: endpoints
# dashboard.users, dashboard.user, dashboard.logs, dashboard.export and
# dashboard.import_preview. Imported here, after ``bp`` exists, when present.
for _module in ("applications", "connections", "users", "logs", "transfer"):
    if importlib.util.find_spec(f"login_site.dashboard.{_module}") is not None:
        importlib.import_module(f"login_site.dashboard.{_module}")
