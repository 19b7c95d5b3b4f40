"""The admin tenant and its administrators (``login-site admin create``, the demo).

The admin tenant is an ordinary tenant with the setting ``admin: true``: its users sign in
to the dashboard through its own hosted login, and those whose ``app_metadata.roles``
holds ``"admin"`` may use it (login_site/dashboard/auth.py). It gets a database connection
without public sign-up and the dashboard's built-in client, made with the same Management
services as any other connection and client.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from login_site import accounts
from login_site.connections.database import SignupRejected
from login_site.connections.database import change_password
from login_site.connections.database import check_password
from login_site.dashboard import builtin
from login_site.dashboard.auth import ADMIN_ROLE
from login_site.dashboard.auth import ADMIN_SETTING
from login_site.dashboard.auth import is_admin_tenant
from login_site.management import connections
from login_site.management import errors as management_errors
from login_site.models import Connection
from login_site.models import Tenant
from login_site.models import TenantHost
from login_site.models import User
from login_site.oauth import keys
from login_site.passwords import describe
from login_site.passwords import hash_password
from login_site.passwords import verify_password
from login_site.tenancy import normalise_host
from login_site.tenant_config import HOST
from login_site.urls import is_loopback
from login_site.vault import Keyring

TENANT_NAME = "admin"
CONNECTION_NAME = "admin-users"
# Stricter than a tenant's default: admins are few and powerful.
CONNECTION_OPTIONS = {
    "passwordPolicy": "good",
    "password_complexity_options": {"min_length": 12},
    "password_dictionary": {"enable": True},
    "password_no_personal_info": {"enable": True},
    "password_history": {"enable": True, "size": 5},
    "brute_force_protection": True,
    "disable_signup": True,
}
DEMO_EMAIL = "admin@example.test"
DEMO_SECRETS_FILE = "demo-admin.json"


class AdminError(ValueError):
    """A readable reason the admin tenant or user could not be set up (nothing written)."""


def admin_tenant(db: Session) -> Tenant | None:
    for tenant in db.execute(select(Tenant).order_by(Tenant.created_at)).scalars():
        if is_admin_tenant(tenant):
            return tenant
    return None


def dashboard_callback(host: str) -> str:
    """The dashboard's callback on ``host``: http on loopback hosts, https elsewhere."""
    hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    scheme = "http" if is_loopback(hostname.strip("[]")) else "https"
    return f"{scheme}://{host}/dashboard/callback"


def _free_tenant_name(db: Session) -> str:
    taken = set(db.execute(select(Tenant.name)).scalars())
    name, n = TENANT_NAME, 2
    while name in taken:
        name, n = f"{TENANT_NAME}-{n}", n + 1
    return name


def _add_host(db: Session, tenant: Tenant, host: str) -> None:
    host = normalise_host(host)
    if not HOST.match(host):
        raise AdminError(f"{host!r} is not a host[:port] value")
    row = db.get(TenantHost, host)
    if row is not None and row.tenant_id != tenant.id:
        raise AdminError(f"{host} already belongs to another tenant")
    if row is None:
        db.add(TenantHost(host=host, tenant_id=tenant.id))
        db.flush()


def _connection(db: Session, ring: Keyring, tenant: Tenant) -> Connection:
    conn = db.execute(
        select(Connection).where(
            Connection.tenant_id == tenant.id, Connection.name == CONNECTION_NAME
        )
    ).scalar_one_or_none()
    if conn is None:
        conn = connections.create(
            db,
            ring,
            tenant,
            {"name": CONNECTION_NAME, "strategy": "auth0", "options": dict(CONNECTION_OPTIONS)},
        )
    return conn


def ensure_admin_tenant(db: Session, ring: Keyring, host: str | None = None) -> Tenant:
    """The admin tenant (created if missing, with ``host``), its connection and its
    dashboard client enabled on it. The caller commits."""
    tenant = admin_tenant(db)
    if tenant is None:
        if not host:
            raise AdminError("there is no admin tenant yet: give the host it answers on")
        tenant = Tenant(
            name=_free_tenant_name(db),
            friendly_name="login_site administration",
            settings={ADMIN_SETTING: True, "default_directory": CONNECTION_NAME},
        )
        db.add(tenant)
        db.flush()
        keys.ensure_signing_keys(db, tenant, ring)
    if host:
        _add_host(db, tenant, host)
    db.refresh(tenant)
    conn = _connection(db, ring, tenant)
    try:
        client = None
        for row in tenant.hosts:
            client = builtin.ensure(
                db, ring, tenant, builtin.DASHBOARD, dashboard_callback(row.host)
            )
    except management_errors.ManagementError as exc:
        raise AdminError(exc.message) from exc
    if client is not None and client.id not in conn.enabled_client_ids:
        connections.change_clients(
            db, tenant, conn, [{"client_id": client.client_id, "status": True}]
        )
    return tenant


def create_admin(db: Session, ring: Keyring, tenant: Tenant, email: str, password: str) -> User:
    """An administrator with this email and password (the connection's password policy
    applies), or the existing user of that email given the admin role and this password."""
    conn = _connection(db, ring, tenant)
    email = (email or "").strip()
    if not accounts.valid_email(email):
        raise AdminError("enter a valid email address")
    credential = accounts.find_credential(db, conn, email)
    try:
        if credential is None:
            check_password(conn, tenant, password, personal=[email])
            user = accounts.create_database_user(
                db,
                tenant,
                conn,
                accounts.SignupData(
                    email=email,
                    password_hash=hash_password(password),
                    email_verified=True,
                    app_metadata={"roles": [ADMIN_ROLE]},
                ),
            )
        else:
            user = credential.identity.user
            if not verify_password(credential.password_hash, password):
                change_password(db, tenant, conn, user, password)
            grant_admin_role(user)
    except SignupRejected as exc:
        details = "; ".join(describe(rule) for rule in exc.rules)
        message = f"{exc.message.rstrip('.')}: {details}" if details else exc.message
        raise AdminError(message) from exc
    db.flush()
    return user


def grant_admin_role(user: User) -> None:
    metadata = dict(user.app_metadata or {})
    roles = [r for r in metadata.get("roles") or [] if isinstance(r, str)]
    if ADMIN_ROLE not in roles:
        metadata["roles"] = [*roles, ADMIN_ROLE]
        user.app_metadata = metadata


def demo_password(instance_path: Path) -> str:
    """The demo admin's password: generated once into the instance folder (0600)."""
    from login_site.demo import new_password

    path = Path(instance_path) / DEMO_SECRETS_FILE
    if path.exists():
        return json.loads(path.read_text())["DEMO_ADMIN_PASSWORD"]
    path.parent.mkdir(parents=True, exist_ok=True)
    password = new_password() + new_password()[-6:]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"DEMO_ADMIN_PASSWORD": password}, fh)
    return password


def dashboard_url(host: str) -> str:
    return dashboard_callback(host).removesuffix("callback")


def seed_demo(app, port: int) -> tuple[str, str, str]:
    """The demo's admin tenant on ``admin.localhost:PORT`` and its admin; returns the
    dashboard URL, the email and the password (generated once into the instance folder)."""
    from login_site import migrate
    from login_site.db import session_scope
    from login_site.vault import keyring

    migrate.upgrade(app.config["DATABASE_URL"])
    password = demo_password(Path(app.instance_path))
    host = f"admin.localhost:{port}"
    with app.app_context(), session_scope(app) as db:
        ring = keyring()
        tenant = ensure_admin_tenant(db, ring, host)
        create_admin(db, ring, tenant, DEMO_EMAIL, password)
    return dashboard_url(host), DEMO_EMAIL, password
