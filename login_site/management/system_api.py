"""The tenant's own Management API as an API of the tenant (Auth0's system API) and the
client grants that let an application call it — what `login-site management authorize` and
the dashboard use so nobody has to write these rows by hand."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from login_site.management.auth import AUDIENCE_PATH
from login_site.models import Client
from login_site.models import ClientGrant
from login_site.models import ResourceServer
from login_site.models import Tenant
from login_site.outbound import check_url

NAME = "Management API"
SCOPES = tuple(
    f"{verb}:{thing}"
    for thing in (
        "clients",
        "connections",
        "users",
        "resource_servers",
        "client_grants",
        "signing_keys",
    )
    for verb in ("read", "create", "update", "delete")
) + (
    "read:client_keys",
    "update:client_keys",
    "update:users_app_metadata",
    "create:user_tickets",
)


def identifiers(tenant: Tenant) -> list[str]:
    """``https://{host}/api/v2/`` for every host (Auth0's audience, which SDKs hard-code), and
    the ``http`` alias for loopback hosts, where the demo and tests run without TLS."""
    result = []
    for host in sorted(h.host for h in tenant.hosts):
        result.append(f"https://{host}/{AUDIENCE_PATH}")
        try:
            result.append(check_url(f"http://{host}/{AUDIENCE_PATH}"))  # loopback only
        except ValueError:
            continue
    return result


def ensure(db: Session, tenant: Tenant) -> list[ResourceServer]:
    """The system API rows of ``tenant`` (created when missing, scopes completed)."""
    rows = []
    for identifier in identifiers(tenant):
        api = db.execute(
            select(ResourceServer).where(
                ResourceServer.tenant_id == tenant.id, ResourceServer.identifier == identifier
            )
        ).scalar_one_or_none()
        if api is None:
            api = ResourceServer(tenant_id=tenant.id, identifier=identifier, name=NAME)
            db.add(api)
        known = set(api.scope_values)
        api.scopes = [*(api.scopes or []), *({"value": s} for s in SCOPES if s not in known)]
        rows.append(api)
    db.flush()
    return rows


def authorize(
    db: Session, tenant: Tenant, client: Client, scopes: tuple[str, ...] = SCOPES
) -> list[ClientGrant]:
    """Let ``client`` get Management API tokens with ``scopes`` (client_credentials)."""
    unknown = set(scopes) - set(SCOPES)
    if unknown:
        raise ValueError(f"unknown scopes: {', '.join(sorted(unknown))}")
    if "client_credentials" not in (client.grant_types or []):
        client.grant_types = [*(client.grant_types or []), "client_credentials"]
    grants = []
    for api in ensure(db, tenant):
        grant = db.execute(
            select(ClientGrant).where(
                ClientGrant.client_pk == client.id, ClientGrant.audience == api.identifier
            )
        ).scalar_one_or_none()
        if grant is None:
            grant = ClientGrant(tenant_id=tenant.id, client_pk=client.id, audience=api.identifier)
            db.add(grant)
        grant.scope = sorted(set(grant.scope or []) | set(scopes))
        grants.append(grant)
    db.flush()
    return grants
