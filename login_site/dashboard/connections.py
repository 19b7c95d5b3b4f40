"""Connections pages: by kind, create and edit with the strategy's options, the
Applications tab, and "Try", a real login through the connection with the tenant's built-in
``Dashboard Try`` client whose result (the user's claims) the dashboard shows.

Every rule is the Management services' (login_site/management/connections.py) and the
strategy's own ``validate_options``."""

from __future__ import annotations

import json
import re

from flask import current_app
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from login_site import accounts
from login_site.connections.base import DATABASE_STRATEGIES
from login_site.connections.base import ENTERPRISE_STRATEGIES
from login_site.connections.base import PASSWORDLESS_STRATEGIES
from login_site.connections.base import SOCIAL_STRATEGIES
from login_site.connections.base import get_strategy
from login_site.connections.base import kind_of
from login_site.dashboard import builtin
from login_site.dashboard import signin as signin_flow
from login_site.dashboard.auth import acting
from login_site.dashboard.auth import require_admin
from login_site.dashboard.forms import FieldError
from login_site.dashboard.forms import checked
from login_site.dashboard.forms import field_error
from login_site.dashboard.forms import integer
from login_site.dashboard.forms import json_object
from login_site.dashboard.views import KINDS
from login_site.dashboard.views import LOCKOUT_MESSAGE
from login_site.dashboard.views import bp
from login_site.dashboard.views import locks_out
from login_site.dashboard.views import record
from login_site.dashboard.views import set_pending_cookie
from login_site.db import get_db
from login_site.errors import PageError
from login_site.i18n import N_
from login_site.management import clients as client_service
from login_site.management import connections as connection_service
from login_site.management.errors import ManagementError
from login_site.models import Connection
from login_site.models import LoginSession
from login_site.models import Tenant
from login_site.oauth.tokens import user_claims
from login_site.passwords import POLICY_LEVELS
from login_site.vault import keyring

STRATEGIES_BY_KIND = {
    "database": DATABASE_STRATEGIES,
    "social": SOCIAL_STRATEGIES,
    "enterprise": ENTERPRISE_STRATEGIES,
    "passwordless": PASSWORDLESS_STRATEGIES,
}
TRY_COOKIE = "dashboard_try"
MAX_CHANGES = connection_service.MAX_CLIENT_CHANGES
# Database connection options with a real form field: option key -> input name.
DATABASE_FIELDS = {
    "passwordPolicy": "passwordPolicy",
    "password_complexity_options": "min_length",
    "password_history": "history_size",
    "password_dictionary": "dictionary",
    "password_no_personal_info": "no_personal_info",
    "brute_force_protection": "brute_force_protection",
    "disable_signup": "disable_signup",
    "requires_username": "requires_username",
    "disable_self_service_change_password": "disable_self_service_change_password",
}
# (option, label, hint, value when the option is absent: what the login code assumes)
DATABASE_FLAGS = (
    (
        "brute_force_protection",
        N_("Brute-force protection"),
        N_("Block logins to an account from an IP after 10 failures in a row."),
        True,
    ),
    ("disable_signup", N_("Disable sign-ups"), N_("Only admins and imports create users."), False),
    ("requires_username", N_("Requires username"), N_("Users also choose a username."), False),
    (
        "disable_self_service_change_password",
        N_("Disable password reset"),
        N_('No "Forgot password?" link on the login page.'),
        False,
    ),
)
_OPTION_ERROR = re.compile(r"options\.([A-Za-z_]+)")


def _connection(connection_id: str) -> Connection:
    return connection_service.find(get_db(), acting().tenant, connection_id)


def _kind(value: str | None) -> str:
    return value if value in STRATEGIES_BY_KIND else "database"


def shown_options(conn: Connection | None) -> dict:
    """Options as the page shows them: stored secrets left out (they are kept on save)."""
    if conn is None:
        return {}
    return connection_service.as_json(get_db(), conn)["options"]


def database_options(form: MultiDict, base: dict) -> dict:
    """The database form's fields over ``base`` (other options are kept as they are)."""
    options = dict(base)
    options["passwordPolicy"] = form.get("passwordPolicy") or "good"
    complexity = dict(options.get("password_complexity_options") or {})
    min_length = integer(form, "min_length", 1, 128)
    if min_length is None:
        complexity.pop("min_length", None)
    else:
        complexity["min_length"] = min_length
    options["password_complexity_options"] = complexity
    size = integer(form, "history_size", 1, 24) or 5
    options["password_history"] = {"enable": checked(form, "history"), "size": size}
    dictionary = dict(options.get("password_dictionary") or {})
    dictionary["enable"] = checked(form, "dictionary")
    options["password_dictionary"] = dictionary
    options["password_no_personal_info"] = {"enable": checked(form, "no_personal_info")}
    for key, _label, _hint, _default in DATABASE_FLAGS:
        options[key] = checked(form, key)
    return options


def _options_from(form: MultiDict, strategy: str, conn: Connection | None) -> dict:
    if kind_of(strategy) == "database":
        return database_options(form, shown_options(conn))
    return json_object(form, "options")


def _option_error(exc: ManagementError, strategy: str) -> FieldError:
    match = _OPTION_ERROR.search(exc.message)
    if match is None:
        return field_error(exc, "name")
    text = exc.message.split("Payload validation error: ", 1)[-1]
    if kind_of(strategy) == "database":
        return FieldError(DATABASE_FIELDS.get(match.group(1), "name"), text)
    return FieldError("options", text)


def _page_values(conn: Connection | None, strategy: str) -> dict:
    options = shown_options(conn)
    return {
        "display_name": (conn.display_name if conn else "") or "",
        "options": options,
        "options_json": json.dumps(options, indent=2, sort_keys=True),
        "strategy": strategy,
    }


def _form_values(form: MultiDict, strategy: str, options: dict | None) -> dict:
    return {
        "name": form.get("name", ""),
        "display_name": form.get("display_name", ""),
        "options": options or {},
        "options_json": form.get("options", ""),
        "strategy": strategy,
    }


@bp.get("/connections")
@require_admin
def connections():
    kind = _kind(request.args.get("kind"))
    rows, _total = connection_service.listing(get_db(), acting().tenant, 0, 1000, [], None)
    counts = {k: sum(1 for c in rows if kind_of(c.strategy) == k) for k, _label in KINDS}
    return render_template(
        "dashboard/connections/list.html",
        kind=kind,
        kinds=KINDS,
        counts=counts,
        rows=[c for c in rows if kind_of(c.strategy) == kind],
        implemented=lambda c: get_strategy(c.strategy) is not None,
    )


@bp.route("/connections/new", methods=["GET", "POST"])
@require_admin
def connection_new():
    form = request.form if request.method == "POST" else request.args
    kind = _kind(form.get("kind"))
    strategies = STRATEGIES_BY_KIND[kind]
    strategy = form.get("strategy") if form.get("strategy") in strategies else strategies[0]
    values = {**_page_values(None, strategy), "name": ""}
    if kind == "database":
        values["options"] = {"passwordPolicy": "good", "brute_force_protection": True}
    error = None
    if request.method == "POST":
        db = get_db()
        options = None
        try:
            options = _options_from(request.form, strategy, None)
            data = {"name": request.form.get("name", "").strip(), "strategy": strategy}
            if request.form.get("display_name", "").strip():
                data["display_name"] = request.form["display_name"].strip()
            data["options"] = options
            conn = connection_service.create(db, keyring(), acting().tenant, data)
        except FieldError as exc:
            error = exc
        except ManagementError as exc:
            db.rollback()
            error = _option_error(exc, strategy)
        else:
            db.commit()
            record("dashboard.connection_created", target=f"connection:{conn.id}")
            flash(f"Connection {conn.name} created. Enable it for applications here.", "success")
            return redirect(
                url_for("dashboard.connection_applications", connection_id=conn.id), code=303
            )
        values = _form_values(request.form, strategy, options)
    return render_template(
        "dashboard/connections/new.html",
        kind=kind,
        kinds=dict(KINDS),
        strategies=strategies,
        values=values,
        error=error,
        implemented=lambda s: get_strategy(s) is not None,
        policy_levels=POLICY_LEVELS,
        flags=DATABASE_FLAGS,
    ), (400 if error else 200)


@bp.route("/connections/<connection_id>", methods=["GET", "POST"])
@require_admin
def connection(connection_id: str):
    conn = _connection(connection_id)
    values = _page_values(conn, conn.strategy)
    error = None
    if request.method == "POST":
        db = get_db()
        options = None
        try:
            options = _options_from(request.form, conn.strategy, conn)
            display_name = request.form.get("display_name", "").strip() or None
            connection_service.update(
                db,
                keyring(),
                acting().tenant,
                conn,
                {"display_name": display_name, "options": options},
            )
        except FieldError as exc:
            error = exc
        except ManagementError as exc:
            db.rollback()
            error = _option_error(exc, conn.strategy)
        else:
            db.commit()
            record("dashboard.connection_updated", target=f"connection:{conn.id}")
            flash("Connection saved.", "success")
            return redirect(url_for("dashboard.connection", connection_id=conn.id), code=303)
        values = {**_form_values(request.form, conn.strategy, options), "name": conn.name}
    return render_template(
        "dashboard/connections/settings.html",
        conn=conn,
        kind=kind_of(conn.strategy),
        kinds=dict(KINDS),
        values=values,
        error=error,
        available=get_strategy(conn.strategy) is not None,
        policy_levels=POLICY_LEVELS,
        flags=DATABASE_FLAGS,
        tab="settings",
    ), (400 if error else 200)


@bp.route("/connections/<connection_id>/applications", methods=["GET", "POST"])
@require_admin
def connection_applications(connection_id: str):
    """One checkbox per application, as the application's own Connections tab."""
    conn = _connection(connection_id)
    db = get_db()
    rows, _total = client_service.listing(db, acting().tenant, 0, 1000)
    if request.method == "POST":
        wanted = set(request.form.getlist("enabled"))
        shown = set(request.form.getlist("shown"))
        kept = [c for c in rows if c.client_id not in wanted and locks_out(conn.name, c)]
        for client in kept:
            flash(LOCKOUT_MESSAGE % {"conn": conn.name}, "error")
            wanted.add(client.client_id)
        changes = [
            {"client_id": c.client_id, "status": c.client_id in wanted}
            for c in rows
            if c.client_id in shown and (c.client_id in wanted) != (c.id in conn.enabled_client_ids)
        ]
        for start in range(0, len(changes), MAX_CHANGES):
            connection_service.change_clients(
                db, acting().tenant, conn, changes[start : start + MAX_CHANGES]
            )
        db.commit()
        for item in changes:
            record(
                "dashboard.connection_client_" + ("enabled" if item["status"] else "disabled"),
                target=f"connection:{conn.id}",
                client_id=item["client_id"],
            )
        flash("Applications saved." if changes else "Nothing changed.", "success")
        return redirect(
            url_for("dashboard.connection_applications", connection_id=conn.id), code=303
        )
    return render_template(
        "dashboard/connections/applications.html",
        conn=conn,
        kind=kind_of(conn.strategy),
        kinds=dict(KINDS),
        rows=rows,
        role_of=builtin.role_of,
        available=get_strategy(conn.strategy) is not None,
        tab="applications",
    )


@bp.post("/connections/<connection_id>/delete")
@require_admin
def connection_delete(connection_id: str):
    conn = _connection(connection_id)
    who = acting()
    if who.tenant.id == who.admin_tenant.id and conn.id == _admin_connection_id(who.admin):
        flash("You signed in with this connection: it cannot be deleted from here.", "error")
        return redirect(url_for("dashboard.connection", connection_id=conn.id), code=303)
    db = get_db()
    kind, name, target = kind_of(conn.strategy), conn.name, f"connection:{conn.id}"
    db.delete(conn)
    db.commit()
    record("dashboard.connection_deleted", target=target)
    flash(f"Connection {name} deleted.", "success")
    return redirect(url_for("dashboard.connections", kind=kind), code=303)


def _admin_connection_id(user) -> str | None:
    identity = next(iter(user.identities), None)
    return identity.connection_id if identity else None


# --- Try --------------------------------------------------------------------------------


def _port(host: str) -> str:
    return host.rsplit(":", 1)[1] if re.search(r":\d+$", host) else ""


def login_host(tenant: Tenant, request_host: str) -> str | None:
    """The tenant host the admin's browser can reach: one on the dashboard's own port."""
    hosts = [row.host for row in tenant.hosts]
    same_port = [h for h in hosts if _port(h) == _port(request_host)]
    return (same_port or hosts or [None])[0]


@bp.post("/connections/<connection_id>/try")
@require_admin
def connection_try(connection_id: str):
    """Log in through this connection, as a user would, with the tenant's try client."""
    conn = _connection(connection_id)
    tenant = acting().tenant
    back = redirect(url_for("dashboard.connection", connection_id=conn.id), code=303)
    if get_strategy(conn.strategy) is None:
        flash("This strategy is stored but not available yet: there is nothing to try.", "error")
        return back
    host = login_host(tenant, request.host)
    if host is None:
        flash("This tenant has no host name: add one in the tenant settings.", "error")
        return back
    db = get_db()
    callback_url = url_for("dashboard.try_callback", _external=True)
    try:
        client = builtin.ensure(db, keyring(), tenant, builtin.TRY, callback_url)
        enable = client.id not in conn.enabled_client_ids
        if enable:
            changes = [{"client_id": client.client_id, "status": True}]
            connection_service.change_clients(db, tenant, conn, changes)
    except ManagementError as exc:
        db.rollback()
        flash(f"The try client could not be set up: {exc.message}", "error")
        return back
    db.commit()
    if enable:
        record(
            "dashboard.connection_client_enabled",
            target=f"connection:{conn.id}",
            client_id=client.client_id,
        )
    pending = signin_flow.new_pending(tenant, client, callback_url, connection=conn.name)
    url = signin_flow.authorize_url(f"{request.scheme}://{host}/", pending, prompt="login")
    response = redirect(url, code=303)
    set_pending_cookie(response, TRY_COOKIE, "try", pending)
    return response


TRY_FAILED = PageError(
    N_("Try failed"),
    N_("This try is expired or was already used. Start it again from the connection."),
    error="access_denied",
)


@bp.get("/try/callback")
@require_admin
def try_callback():
    """The end of a try: the code is spent here (PKCE checked) and the user's claims shown."""
    pending = signin_flow.unseal(
        current_app.secret_key, "try", request.cookies.get(TRY_COOKIE), request.args.get("state")
    )
    if pending is None:
        raise TRY_FAILED
    db = get_db()
    tenant = db.get(Tenant, pending.tenant_id)
    client = builtin.find(db, tenant, builtin.TRY) if tenant is not None else None
    if client is None or client.client_id != pending.client_id:
        raise TRY_FAILED
    conn = db.execute(
        select(Connection).where(
            Connection.tenant_id == tenant.id, Connection.name == pending.connection
        )
    ).scalar_one_or_none()
    context = {"tenant": tenant, "conn": conn, "connection_name": pending.connection}
    if request.args.get("error"):
        response = render_template(
            "dashboard/connections/try.html",
            error=request.args.get("error", "")[:100],
            error_description=request.args.get("error_description", "")[:400],
            **context,
        )
    else:
        code = signin_flow.redeem(db, tenant, client, request.args.get("code"), pending)
        user = accounts.get_user(db, tenant.id, code.user_pk) if code is not None else None
        if user is None:
            raise TRY_FAILED
        login = db.execute(
            select(LoginSession).where(LoginSession.sid == code.session_sid)
        ).scalar_one_or_none()
        claims = user_claims(user, code.scope)
        response = render_template(
            "dashboard/connections/try.html",
            user=user,
            claims_json=json.dumps(claims, indent=2, sort_keys=True),
            used_connection=login.connection if login else pending.connection,
            identities=[(i.provider, i.user_id, i.connection_id) for i in user.identities],
            **context,
        )
    out = current_app.make_response(response)
    out.delete_cookie(TRY_COOKIE, path=signin_flow.COOKIE_PATH)
    return out
