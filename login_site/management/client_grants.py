"""Client grants through the Management API: which scopes of an API a client may obtain with
``client_credentials``. One per (client, API); both must belong to the tenant."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from login_site.management import body
from login_site.management import clients
from login_site.management.errors import ManagementError
from login_site.management.errors import conflict
from login_site.management.errors import invalid_body
from login_site.models import Client
from login_site.models import ClientGrant
from login_site.models import ResourceServer
from login_site.models import Tenant

CREATE_FIELDS = {"client_id", "audience", "scope"}
UPDATE_FIELDS = {"scope"}
READ_ONLY = {"id", "client_id", "audience"}
EXISTS = "A client grant for this client and audience already exists."


def as_json(grant: ClientGrant, client_id: str) -> dict[str, Any]:
    return {
        "id": grant.id,
        "client_id": client_id,
        "audience": grant.audience,
        "scope": list(grant.scope or []),
    }


def _query(tenant: Tenant):
    return (
        select(ClientGrant, Client.client_id)
        .join(Client, Client.id == ClientGrant.client_pk)
        .where(ClientGrant.tenant_id == tenant.id, Client.tenant_id == tenant.id)
    )


def find(db: Session, tenant: Tenant, grant_id: str) -> tuple[ClientGrant, str]:
    """The grant and its client's ``client_id``."""
    row = db.execute(_query(tenant).where(ClientGrant.id == grant_id)).first()
    if row is None:
        raise ManagementError(404, "The client grant does not exist.", "inexistent_client_grant")
    return row[0], row[1]


def listing(
    db: Session,
    tenant: Tenant,
    page: int,
    per_page: int,
    audience: str | None,
    client_id: str | None,
) -> tuple[list[tuple[ClientGrant, str]], int]:
    query = _query(tenant)
    if audience:
        query = query.where(ClientGrant.audience == audience)
    if client_id:
        query = query.where(Client.client_id == client_id)
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.execute(
        query.order_by(ClientGrant.created_at, ClientGrant.id)
        .offset(page * per_page)
        .limit(per_page)
    ).all()
    return [(row[0], row[1]) for row in rows], total


def _scope(data: dict, api: ResourceServer) -> list[str]:
    """The granted scopes: each one a scope the API defines."""
    scope = body.string_list(data, "scope", limit=1000)
    defined = set(api.scope_values)
    for i, value in enumerate(scope):
        if value not in defined:
            raise invalid_body(f"'scope[{i}]' is not a scope of the API {api.identifier[:200]!r}")
    return list(dict.fromkeys(scope))


def _api(db: Session, tenant: Tenant, audience: str) -> ResourceServer:
    api = db.execute(
        select(ResourceServer).where(
            ResourceServer.tenant_id == tenant.id, ResourceServer.identifier == audience
        )
    ).scalar_one_or_none()
    if api is None:
        raise ManagementError(
            404, "No resource server found for this audience.", "inexistent_resource_server"
        )
    return api


def create(db: Session, tenant: Tenant, data: dict) -> tuple[ClientGrant, str]:
    body.reject_unknown(data, CREATE_FIELDS, {"id"})
    for key in ("client_id", "audience", "scope"):
        if key not in data:
            raise invalid_body(f"missing required property '{key}'")
    client_id = body.string(data, "client_id", empty=False)
    audience = body.string(data, "audience", limit=600, empty=False)
    client = clients.find(db, tenant, client_id)
    api = _api(db, tenant, audience)
    scope = _scope(data, api)
    taken = db.execute(
        select(ClientGrant.id).where(
            ClientGrant.client_pk == client.id, ClientGrant.audience == audience
        )
    ).first()
    if taken is not None:
        raise conflict(EXISTS)
    grant = ClientGrant(tenant_id=tenant.id, client_pk=client.id, audience=audience, scope=scope)
    db.add(grant)
    try:
        db.flush()
    except IntegrityError as exc:
        # A parallel creation won: the unique (client, audience) constraint settled it.
        db.rollback()
        raise conflict(EXISTS) from exc
    return grant, client.client_id


def update(db: Session, tenant: Tenant, grant: ClientGrant, data: dict) -> ClientGrant:
    """PATCH: ``scope`` is replaced; client and audience cannot change."""
    body.reject_unknown(data, UPDATE_FIELDS, READ_ONLY)
    if "scope" in data:
        grant.scope = _scope(data, _api(db, tenant, grant.audience))
    db.flush()
    return grant
