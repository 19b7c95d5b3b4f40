"""``login-site``: schema, configuration as code, keys, demo."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import FlaskGroup
from flask.cli import with_appcontext

from login_site import mail
from login_site import migrate
from login_site.app import create_app


@click.group(cls=FlaskGroup, create_app=create_app, add_default_commands=True)
def main() -> None:
    """Manage a login_site installation."""


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Create or upgrade the schema (alembic)."""
    migrate.upgrade(current_app.config["DATABASE_URL"], revision)
    click.echo(f"database at {revision}")


@db.command("downgrade")
@click.argument("revision")
@with_appcontext
def db_downgrade(revision: str) -> None:
    """Downgrade the schema to REVISION."""
    migrate.downgrade(current_app.config["DATABASE_URL"], revision)
    click.echo(f"database at {revision}")


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Validate and report, change nothing.")
@click.option("--allow-delete", is_flag=True, help="Delete objects missing from the file.")
@click.option(
    "--keywords",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON mapping of keyword replacements.",
)
@with_appcontext
def import_command(file: Path, dry_run: bool, allow_delete: bool, keywords: Path | None) -> None:
    """Import a tenant configuration file (Auth0 Deploy CLI style YAML)."""
    from login_site import tenant_config

    migrate.upgrade(current_app.config["DATABASE_URL"])
    try:
        report = tenant_config.import_file(
            current_app._get_current_object(),
            file,
            keywords_file=keywords,
            allow_delete=allow_delete,
            dry_run=dry_run,
        )
    except tenant_config.ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    for line in report.lines():
        click.echo(line)


@main.command("export")
@click.option("--tenant", "tenant_name", help="Tenant name (default: the only tenant).")
@click.option("--export-secrets", is_flag=True, help="Write secrets instead of placeholders.")
@click.option("--export-ids", is_flag=True, help="Write client ids.")
@with_appcontext
def export_command(tenant_name: str | None, export_secrets: bool, export_ids: bool) -> None:
    """Export a tenant as YAML on standard output."""
    from login_site import tenant_config

    try:
        text = tenant_config.export_yaml(
            current_app._get_current_object(),
            tenant_name,
            export_secrets=export_secrets,
            export_ids=export_ids,
        )
    except tenant_config.ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(text, nl=False)


@main.group()
def keys() -> None:
    """Signing keys."""


@keys.command("rotate")
@click.option("--tenant", "tenant_name", required=True)
@with_appcontext
def keys_rotate(tenant_name: str) -> None:
    """The next signing key becomes current (the old one stays published as previous) and
    a new next key is published."""
    from sqlalchemy import select

    from login_site.db import session_scope
    from login_site.management.signing_keys import rotate
    from login_site.models import Tenant
    from login_site.vault import keyring

    app = current_app._get_current_object()
    with session_scope(app) as session:
        tenant = session.execute(
            select(Tenant).where(Tenant.name == tenant_name)
        ).scalar_one_or_none()
        if tenant is None:
            click.echo(f"error: no tenant named {tenant_name}", err=True)
            sys.exit(1)
        key = rotate(session, tenant, keyring(), current_app.config)
        click.echo(f"new current key {key.kid}")


@main.group()
def management() -> None:
    """The Management API (/api/v2/)."""


@management.command("authorize")
@click.option("--tenant", "tenant_name", required=True)
@click.option("--client", "client_id", required=True, help="The application's client_id.")
@click.option("--scope", "scopes", multiple=True, help="Repeat for each; default: all scopes.")
@with_appcontext
def management_authorize(tenant_name: str, client_id: str, scopes: tuple[str, ...]) -> None:
    """Let an application get Management API tokens (client_credentials) for the tenant."""
    from sqlalchemy import select

    from login_site.db import session_scope
    from login_site.management import system_api
    from login_site.models import Client
    from login_site.models import Tenant

    with session_scope(current_app._get_current_object()) as session:
        tenant = session.execute(
            select(Tenant).where(Tenant.name == tenant_name)
        ).scalar_one_or_none()
        client = (
            session.execute(
                select(Client).where(Client.tenant_id == tenant.id, Client.client_id == client_id)
            ).scalar_one_or_none()
            if tenant is not None
            else None
        )
        if client is None:
            click.echo(f"error: no application {client_id} in tenant {tenant_name}", err=True)
            sys.exit(1)
        try:
            grants = system_api.authorize(session, tenant, client, scopes or system_api.SCOPES)
        except ValueError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        for grant in grants:
            click.echo(f"{client_id} may call {grant.audience} with {len(grant.scope)} scopes")


@main.group()
def vault() -> None:
    """Token Vault encryption keys."""


@vault.command("rotate")
@click.option(
    "--new-data-keys",
    is_flag=True,
    help="Also give every tenant a new data key and re-encrypt its token sets with it.",
)
@with_appcontext
def vault_rotate(new_data_keys: bool) -> None:
    """Re-wrap the tenants' data keys under the first key of ENCRYPTION_KEYS (put the new
    master key first, keep the old ones after it until this has run)."""
    from login_site import token_vault
    from login_site.db import session_scope
    from login_site.vault import keyring

    with session_scope(current_app._get_current_object()) as session:
        counts = token_vault.rotate(session, keyring(), new_data_keys=new_data_keys)
    click.echo(", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()))


@main.group()
def events() -> None:
    """Stored security events."""


@events.command("prune")
@click.option("--days", type=click.IntRange(min=1), required=True, help="Keep this many days.")
@with_appcontext
def events_prune(days: int) -> None:
    """Delete security events older than DAYS days."""
    from login_site import audit
    from login_site.db import session_scope

    with session_scope(current_app._get_current_object()) as session:
        removed = audit.prune(session, days)
    click.echo(f"{removed} event(s) deleted")


@main.command("demo")
@click.option("--port", default=5000, show_default=True, help="Port of login_site.")
@click.option("--rp-port", default=8765, show_default=True, help="Port of the demo application.")
def demo_command(port: int, rp_port: int) -> None:
    """Run the demo tenant and a demo application on localhost (embedded default config)."""
    # No app context from the group: the demo builds its own app, after creating the schema.
    from login_site import admin as admin_setup
    from login_site.demo import run_demo

    url, email, password = admin_setup.seed_demo(create_app(), port)
    click.echo(f"Dashboard {url} as {email} / {password}")
    run_demo(port=port, rp_port=rp_port, echo=click.echo)


@main.group()
def admin() -> None:
    """Dashboard administrators (docs/dashboard.md)."""


@admin.command("create")
@click.option("--email", required=True, help="The administrator's email address.")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Checked against the admin connection's password policy (prompted when absent).",
)
@click.option("--host", help="A host of the admin tenant, e.g. admin.example.com (first time).")
@with_appcontext
def admin_create(email: str, password: str, host: str | None) -> None:
    """Create the admin tenant if missing, and an administrator in it (an existing user of
    that email gets the admin role and this password)."""
    from login_site import admin as admin_setup
    from login_site.db import session_scope
    from login_site.vault import keyring

    migrate.upgrade(current_app.config["DATABASE_URL"])
    try:
        with session_scope(current_app._get_current_object()) as session:
            tenant = admin_setup.ensure_admin_tenant(session, keyring(), host)
            user = admin_setup.create_admin(session, keyring(), tenant, email, password)
            user_id, hosts = user.user_id, [row.host for row in tenant.hosts]
    except admin_setup.AdminError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"administrator {user_id} in tenant {tenant.name}")
    for host_name in hosts:
        click.echo(f"dashboard: {admin_setup.dashboard_url(host_name)}")


@main.command("worker")
@click.option("--once", is_flag=True, help="One delivery pass, then exit.")
@click.option(
    "--interval",
    default=mail.WORKER_INTERVAL_SECONDS,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between delivery passes.",
)
@with_appcontext
def worker_command(once: bool, interval: float) -> None:
    """Deliver queued mail: what the immediate attempt could not send, with backoff."""
    sent = mail.work(current_app._get_current_object(), interval_seconds=interval, once=once)
    click.echo(f"{sent} mail(s) sent")


if __name__ == "__main__":
    main()
