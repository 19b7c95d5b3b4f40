"""Creating tenants and changing their name, hosts and branding from the dashboard.

The rules for names and hosts are the configuration importer's (one place for each fact);
a new tenant gets a signing key and, as in Auth0, a database connection to start with.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from login_site.dashboard.forms import FieldError
from login_site.login.views import HEX_COLOUR
from login_site.management import connections
from login_site.models import Tenant
from login_site.models import TenantHost
from login_site.oauth import keys
from login_site.tenancy import normalise_host
from login_site.tenant_config import HOST
from login_site.tenant_config import TENANT_NAME
from login_site.urls import redirect_uri_problem
from login_site.vault import Keyring

DEFAULT_DATABASE = "Username-Password-Authentication"
DEFAULT_DATABASE_OPTIONS = {"passwordPolicy": "good", "brute_force_protection": True}
MAX_HOSTS = 20


@dataclass(frozen=True)
class TenantForm:
    """What the tenant form holds, checked (:func:`read`)."""

    friendly_name: str
    hosts: list[str]
    primary: str
    logo_url: str


def read(friendly_name: str, hosts: list[str], primary: str, logo_url: str) -> TenantForm:
    friendly_name = (friendly_name or "").strip()
    if not friendly_name or len(friendly_name) > 255:
        raise FieldError("friendly_name", "Enter a display name of at most 255 characters.")
    normalised = []
    for i, host in enumerate(hosts):
        host = normalise_host(host)
        if not HOST.match(host):
            raise FieldError("hosts", f"Line {i + 1}: not a host[:port] value.")
        if host not in normalised:
            normalised.append(host)
    if not normalised:
        raise FieldError("hosts", "Enter at least one host name the tenant answers on.")
    if len(normalised) > MAX_HOSTS:
        raise FieldError("hosts", f"At most {MAX_HOSTS} hosts.")
    primary = (primary or "").strip()
    if primary and not HEX_COLOUR.match(primary):
        raise FieldError("primary", "Enter a colour as #rrggbb.")
    logo_url = (logo_url or "").strip()
    if logo_url:
        problem = redirect_uri_problem(logo_url)
        if problem is None and urlsplit(logo_url).scheme != "https":
            problem = "must use https"
        if problem:
            raise FieldError("logo_url", f"The logo URL {problem}.")
    return TenantForm(friendly_name, normalised, primary, logo_url)


def _hosts_free(db: Session, hosts: list[str], tenant_id: str | None) -> None:
    for host in hosts:
        row = db.get(TenantHost, host)
        if row is not None and row.tenant_id != tenant_id:
            raise FieldError("hosts", f"{host} already belongs to another tenant.")


def _branding(settings: dict, form: TenantForm) -> dict:
    branding = dict(settings.get("branding") or {})
    colours = dict(branding.get("colors") or {})
    if form.primary:
        colours["primary"] = form.primary
    else:
        colours.pop("primary", None)
    branding["colors"] = colours
    if form.logo_url:
        branding["logo_url"] = form.logo_url
    else:
        branding.pop("logo_url", None)
    return {k: v for k, v in branding.items() if v}


def create(db: Session, ring: Keyring, name: str, form: TenantForm) -> Tenant:
    name = (name or "").strip()
    if not TENANT_NAME.match(name):
        raise FieldError(
            "name", "Use 1-63 lower-case letters, digits and dashes; start with a letter or digit."
        )
    if db.execute(select(Tenant.id).where(Tenant.name == name)).first() is not None:
        raise FieldError("name", "A tenant with this name already exists.")
    _hosts_free(db, form.hosts, None)
    settings: dict = {"default_directory": DEFAULT_DATABASE}
    branding = _branding({}, form)
    if branding:
        settings["branding"] = branding
    tenant = Tenant(name=name, friendly_name=form.friendly_name, settings=settings)
    db.add(tenant)
    db.flush()
    for host in form.hosts:
        db.add(TenantHost(host=host, tenant_id=tenant.id))
    keys.ensure_signing_keys(db, tenant, ring)
    connections.create(
        db,
        ring,
        tenant,
        {"name": DEFAULT_DATABASE, "strategy": "auth0", "options": dict(DEFAULT_DATABASE_OPTIONS)},
    )
    db.flush()
    return tenant


def update(db: Session, tenant: Tenant, form: TenantForm, *, keep_host: str | None) -> Tenant:
    """New display name, hosts and branding. ``keep_host`` (the host the dashboard is
    using) cannot be removed from its own tenant: the admin would lock themselves out."""
    if keep_host and tenant.id == (db.get(TenantHost, keep_host) or TenantHost()).tenant_id:
        if keep_host not in form.hosts:
            raise FieldError("hosts", f"{keep_host} is the host of this dashboard: keep it.")
    _hosts_free(db, form.hosts, tenant.id)
    tenant.friendly_name = form.friendly_name
    settings = dict(tenant.settings or {})
    branding = _branding(settings, form)
    if branding:
        settings["branding"] = branding
    else:
        settings.pop("branding", None)
    tenant.settings = settings
    for row in list(tenant.hosts):
        if row.host not in form.hosts:
            db.delete(row)
    db.flush()
    present = {row.host for row in tenant.hosts}
    for host in form.hosts:
        if host not in present:
            db.add(TenantHost(host=host, tenant_id=tenant.id))
    db.flush()
    db.refresh(tenant)
    return tenant
