"""The request's ``Host`` picks the tenant; the issuer is ``{scheme}://{host}/``."""

from __future__ import annotations

from flask import Flask
from flask import g
from flask import request
from sqlalchemy import select

from login_site.db import get_db
from login_site.errors import PageError
from login_site.i18n import N_
from login_site.models import Tenant
from login_site.models import TenantHost

# Paths served on any host (assets, health); everything else needs a tenant.
TENANTLESS_PREFIXES = ("/static/", "/healthz")


def normalise_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def tenant_for_host(db, host: str) -> Tenant | None:
    row = db.execute(
        select(Tenant).join(TenantHost).where(TenantHost.host == normalise_host(host))
    ).scalar_one_or_none()
    return row


def current_tenant() -> Tenant:
    return g.tenant


def issuer() -> str:
    """Issuer of the current tenant, spelled with the host the client used."""
    return f"{request.scheme}://{normalise_host(request.host)}/"


def absolute(path: str) -> str:
    return issuer() + path.lstrip("/")


def init_app(app: Flask) -> None:
    @app.before_request
    def _select_tenant():
        if request.path.startswith(TENANTLESS_PREFIXES):
            return None
        tenant = tenant_for_host(get_db(), request.host)
        if tenant is None:
            raise PageError(
                N_("Not found"),
                N_("There is no login service at this address."),
                status=404,
                error="not_found",
            )
        g.tenant = tenant
        return None
