"""Applications pages: list and create, settings, credentials, and the Connections tab.
Every rule is the Management services' (login_site/management/clients.py, connections.py)."""

from __future__ import annotations

from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for

from login_site.connections.base import get_strategy
from login_site.connections.base import kind_of
from login_site.dashboard import builtin
from login_site.dashboard.auth import acting
from login_site.dashboard.auth import require_admin
from login_site.dashboard.forms import checked
from login_site.dashboard.forms import field_error
from login_site.dashboard.forms import lines
from login_site.dashboard.views import KINDS
from login_site.dashboard.views import LOCKOUT_MESSAGE
from login_site.dashboard.views import bp
from login_site.dashboard.views import locks_out
from login_site.dashboard.views import record
from login_site.db import get_db
from login_site.management import clients
from login_site.management import connections as connection_service
from login_site.management.errors import ManagementError
from login_site.models import Client
from login_site.models import Connection
from login_site.models.client import APP_TYPES
from login_site.models.client import AUTH_METHODS
from login_site.tenant_config import GRANT_TYPES
from login_site.vault import keyring

APP_TYPE_LABELS = {
    "regular_web": "Regular web application",
    "spa": "Single-page application",
    "native": "Native application",
    "non_interactive": "Machine to machine",
}
AUTH_METHOD_LABELS = {
    "client_secret_post": "Client secret (POST body)",
    "client_secret_basic": "Client secret (HTTP Basic)",
    "none": "None (public client, PKCE)",
}
URL_FIELDS = ("callbacks", "allowed_logout_urls", "web_origins", "allowed_origins")
PER_PAGE = 100


def _client(client_id: str) -> Client:
    return clients.find(get_db(), acting().tenant, client_id)


def _target(client: Client) -> str:
    return f"client:{client.client_id}"


@bp.get("/applications")
@require_admin
def applications():
    rows, total = clients.listing(get_db(), acting().tenant, 0, PER_PAGE)
    return render_template(
        "dashboard/applications/list.html",
        rows=rows,
        total=total,
        labels=APP_TYPE_LABELS,
        role_of=builtin.role_of,
    )


@bp.route("/applications/new", methods=["GET", "POST"])
@require_admin
def application_new():
    values = {"name": "", "app_type": "regular_web"}
    error = None
    if request.method == "POST":
        values = {
            "name": request.form.get("name", "").strip(),
            "app_type": request.form.get("app_type", ""),
        }
        db = get_db()
        try:
            client, _secret = clients.create(db, keyring(), acting().tenant, dict(values))
        except ManagementError as exc:
            db.rollback()
            error = field_error(exc, "name")
        else:
            db.commit()
            record("dashboard.client_created", target=_target(client))
            flash(f"Application {client.name} created.", "success")
            return redirect(url_for("dashboard.application", client_id=client.client_id), code=303)
    return render_template(
        "dashboard/applications/new.html",
        values=values,
        error=error,
        labels=APP_TYPE_LABELS,
        app_types=APP_TYPES,
    ), (400 if error else 200)


def _settings_form() -> dict:
    form = request.form
    data: dict = {
        "name": form.get("name", "").strip(),
        "description": form.get("description", ""),
        "app_type": form.get("app_type", ""),
        "token_endpoint_auth_method": form.get("token_endpoint_auth_method", ""),
        "grant_types": [g for g in form.getlist("grant_types") if g],
        "is_first_party": not checked(form, "third_party"),
    }
    for key in URL_FIELDS:
        data[key] = lines(form.get(key))
    return data


@bp.route("/applications/<client_id>", methods=["GET", "POST"])
@require_admin
def application(client_id: str):
    client = _client(client_id)
    values = clients.as_json(client)
    error = None
    if request.method == "POST":
        data = _settings_form()
        db = get_db()
        try:
            clients.update(db, keyring(), acting().tenant, client, data)
        except ManagementError as exc:
            db.rollback()
            error = field_error(exc, "name")
            values = {**values, **data}
        else:
            db.commit()
            record("dashboard.client_updated", target=_target(client))
            flash("Settings saved.", "success")
            return redirect(url_for("dashboard.application", client_id=client_id), code=303)
    return render_template(
        "dashboard/applications/settings.html",
        client=client,
        values=values,
        error=error,
        labels=APP_TYPE_LABELS,
        app_types=APP_TYPES,
        auth_methods=AUTH_METHODS,
        auth_labels=AUTH_METHOD_LABELS,
        grant_types=sorted(GRANT_TYPES),
        role=builtin.role_of(client),
        tab="settings",
    ), (400 if error else 200)


def _credentials(client: Client, *, secret: str | None = None, rotated: bool = False):
    return render_template(
        "dashboard/applications/credentials.html",
        client=client,
        secret=secret,
        rotated=rotated,
        labels=APP_TYPE_LABELS,
        auth_labels=AUTH_METHOD_LABELS,
        role=builtin.role_of(client),
        tab="credentials",
    )


@bp.get("/applications/<client_id>/credentials")
@require_admin
def application_credentials(client_id: str):
    return _credentials(_client(client_id))


@bp.post("/applications/<client_id>/credentials/reveal")
@require_admin
def application_reveal(client_id: str):
    """The secret is shown only in the answer to a POST (CSRF-checked), never in a URL."""
    client = _client(client_id)
    if client.client_secret_enc is None:
        return _credentials(client)
    record("dashboard.client_secret_revealed", target=_target(client))
    return _credentials(client, secret=keyring().decrypt(client.client_secret_enc))


@bp.post("/applications/<client_id>/credentials/rotate")
@require_admin
def application_rotate(client_id: str):
    client = _client(client_id)
    db = get_db()
    secret = clients.rotate_secret(db, keyring(), client)
    db.commit()
    record("dashboard.client_secret_rotated", target=_target(client))
    return _credentials(client, secret=secret, rotated=True)


def connection_rows() -> list[tuple[str, list[Connection]]]:
    """The tenant's connections grouped by kind, in the order of the Connections page."""
    rows, _total = connection_service.listing(get_db(), acting().tenant, 0, 1000, [], None)
    return [(kind, [c for c in rows if kind_of(c.strategy) == kind]) for kind, _label in KINDS]


@bp.route("/applications/<client_id>/connections", methods=["GET", "POST"])
@require_admin
def application_connections(client_id: str):
    """One checkbox per connection; saving enables or disables each one that changed
    (``connections.change_clients``, as ``PATCH /api/v2/connections/{id}/clients``)."""
    client = _client(client_id)
    db = get_db()
    if request.method == "POST":
        wanted = set(request.form.getlist("enabled"))
        shown = set(request.form.getlist("shown"))
        changed = []
        for conn in connection_service.listing(db, acting().tenant, 0, 1000, [], None)[0]:
            if conn.id not in shown:
                continue  # created after the page was shown: left as it is
            status = conn.id in wanted
            if not status and locks_out(conn.name, client):
                flash(LOCKOUT_MESSAGE % {"conn": conn.name}, "error")
                continue
            if status != (client.id in conn.enabled_client_ids):
                connection_service.change_clients(
                    db, acting().tenant, conn, [{"client_id": client.client_id, "status": status}]
                )
                changed.append((conn, status))
        db.commit()
        for conn, status in changed:
            record(
                "dashboard.connection_client_" + ("enabled" if status else "disabled"),
                target=f"connection:{conn.id}",
                client_id=client.client_id,
            )
        flash("Connections saved." if changed else "Nothing changed.", "success")
        return redirect(url_for("dashboard.application_connections", client_id=client_id), code=303)
    return render_template(
        "dashboard/applications/connections.html",
        client=client,
        groups=connection_rows(),
        labels=APP_TYPE_LABELS,
        kinds=dict(KINDS),
        implemented=lambda c: get_strategy(c.strategy) is not None,
        role=builtin.role_of(client),
        tab="connections",
    )


@bp.post("/applications/<client_id>/delete")
@require_admin
def application_delete(client_id: str):
    client = _client(client_id)
    who = acting()
    if builtin.role_of(client) == builtin.DASHBOARD and who.tenant.id == who.admin_tenant.id:
        flash("The dashboard signs in with this application: it cannot be deleted.", "error")
        return redirect(url_for("dashboard.application", client_id=client_id), code=303)
    db = get_db()
    name, target = client.name, _target(client)
    db.delete(client)
    db.commit()
    record("dashboard.client_deleted", target=target)
    flash(f"Application {name} deleted.", "success")
    return redirect(url_for("dashboard.applications"), code=303)
