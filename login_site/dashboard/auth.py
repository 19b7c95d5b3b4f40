"""Who may use the dashboard, and on which tenant they are working.

The dashboard is served only on the admin tenant's hosts; elsewhere it does not exist
(404). A visitor counts as signed in to it when this host's login session (the cookie the
hosted login sets) is the one that went through the dashboard's own sign-in (its sid is
kept in the Flask session by :mod:`login_site.dashboard.signin`), and the user has the
admin role. Pages use :func:`require_admin` and then :func:`acting`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for
from sqlalchemy import select

from login_site import accounts
from login_site.db import get_db
from login_site.errors import PageError
from login_site.i18n import N_
from login_site.login import flow
from login_site.models import LoginSession
from login_site.models import Tenant
from login_site.models import User
from login_site.tenancy import current_tenant

ADMIN_SETTING = "admin"  # tenant setting: this tenant's users may be dashboard admins
ADMIN_ROLE = "admin"  # in the user's app_metadata.roles
SESSION_KEY = "dashboard_sid"  # sid of the login session the dashboard sign-in accepted
TENANT_KEY = "dashboard_tenant"  # id of the tenant the admin is working on

NOT_FOUND = PageError(
    N_("Not found"), N_("There is no page at this address."), status=404, error="not_found"
)
FORBIDDEN = PageError(
    N_("Not an administrator"),
    N_("You are signed in, but this account may not use the dashboard."),
    status=403,
    error="access_denied",
)


@dataclass(frozen=True)
class Acting:
    """The signed-in admin, their login session, and the tenant they are working on."""

    admin: User
    login_session: LoginSession
    admin_tenant: Tenant
    tenant: Tenant

    @property
    def actor(self) -> str:
        """The ``actor`` of events: the admin's ``user_id``."""
        return self.admin.user_id


def is_admin_tenant(tenant: Tenant | None) -> bool:
    return tenant is not None and tenant.setting(ADMIN_SETTING) is True


def is_admin(user: User | None) -> bool:
    if user is None or user.blocked:
        return False
    roles = (user.app_metadata or {}).get("roles") or []
    return isinstance(roles, list) and ADMIN_ROLE in roles


def tenants(db) -> list[Tenant]:
    """Every tenant an admin may work on (all of them), by name."""
    return list(db.execute(select(Tenant).order_by(Tenant.name)).scalars())


def _selected_tenant(db, admin_tenant: Tenant) -> Tenant:
    chosen = session.get(TENANT_KEY)
    tenant = db.get(Tenant, chosen) if isinstance(chosen, str) else None
    if tenant is not None:
        return tenant
    # Default: the first ordinary tenant, else the admin tenant itself.
    others = [t for t in tenants(db) if not is_admin_tenant(t)]
    return others[0] if others else admin_tenant


def select_tenant(tenant: Tenant) -> None:
    session[TENANT_KEY] = tenant.id
    g.pop("dashboard", None)


def signed_in_admin() -> tuple[User, LoginSession] | None:
    """The signed-in dashboard user and session on this host, if any (admin or not)."""
    record = flow.current_login_session()
    if record is None or session.get(SESSION_KEY) != record.sid:
        return None
    user = accounts.get_user(get_db(), record.tenant_id, record.user_pk)
    if user is None:
        return None
    return user, record


def acting() -> Acting:
    """The acting admin and the selected tenant; only inside :func:`require_admin` views."""
    if "dashboard" not in g:
        found = signed_in_admin()
        if found is None or not is_admin(found[0]):
            raise FORBIDDEN
        admin_tenant = current_tenant()
        g.dashboard = Acting(
            admin=found[0],
            login_session=found[1],
            admin_tenant=admin_tenant,
            tenant=_selected_tenant(get_db(), admin_tenant),
        )
    return g.dashboard


def require_admin(view: Callable[..., Any]) -> Callable[..., Any]:
    """404 off the admin tenant's hosts; sign-in when not signed in (GET) or a 403 page
    (other methods, and users without the admin role)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not is_admin_tenant(g.get("tenant")):
            raise NOT_FOUND
        found = signed_in_admin()
        if found is None:
            if request.method in ("GET", "HEAD"):
                return redirect(url_for("dashboard.signin", next=request.full_path), code=302)
            raise PageError(
                N_("Signed out"),
                N_("Your dashboard session has ended. Sign in again and retry."),
                status=401,
                error="login_required",
            )
        if not is_admin(found[0]):
            page = render_template("dashboard/forbidden.html", tenant=g.tenant, user=found[0])
            return page, 403
        acting()
        return view(*args, **kwargs)

    return wrapper
