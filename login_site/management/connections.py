"""Connections through the Management API: plain functions over a session and a tenant."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.orm import Session

from login_site.connections.base import KNOWN_STRATEGIES
from login_site.connections.base import InvalidOptions
from login_site.connections.base import get_strategy
from login_site.management import body
from login_site.management.errors import conflict
from login_site.management.errors import invalid_body
from login_site.management.errors import not_found
from login_site.models import Client
from login_site.models import Connection
from login_site.models import ConnectionClient
from login_site.models import Tenant
from login_site.vault import SECRET_OPTION_PATHS
from login_site.vault import Keyring
from login_site.vault import seal_options

NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,126}[A-Za-z0-9])?$")
CREATE_FIELDS = {"name", "strategy", "display_name", "options", "enabled_clients"}
UPDATE_FIELDS = {"display_name", "options", "enabled_clients"}
IMMUTABLE = {"name", "strategy", "id"}
MAX_CLIENT_CHANGES = 50
MAX_OPTIONS_BYTES = 64 * 1024


def _without_secrets(options: dict) -> dict:
    """Options as shown: sealed secrets are never returned."""
    shown = json.loads(json.dumps(options or {}))
    for path in SECRET_OPTION_PATHS:
        parent = shown
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
    return shown


def as_json(db: Session, conn: Connection) -> dict[str, Any]:
    pks = sorted(conn.enabled_client_ids)
    client_ids = (
        sorted(db.execute(select(Client.client_id).where(Client.id.in_(pks))).scalars())
        if pks
        else []
    )
    return {
        "id": conn.id,
        "name": conn.name,
        "display_name": conn.display_name or conn.name,
        "strategy": conn.strategy,
        "options": _without_secrets(conn.options),
        "enabled_clients": client_ids,
        "realms": [conn.name],
        "is_domain_connection": False,
    }


def find(db: Session, tenant: Tenant, connection_id: str) -> Connection:
    conn = db.execute(
        select(Connection).where(Connection.tenant_id == tenant.id, Connection.id == connection_id)
    ).scalar_one_or_none()
    if conn is None:
        raise not_found("connection")
    return conn


def listing(
    db: Session, tenant: Tenant, page: int, per_page: int, strategies: list[str], name: str | None
) -> tuple[list[Connection], int]:
    where = [Connection.tenant_id == tenant.id]
    if strategies:
        where.append(Connection.strategy.in_(strategies))
    if name:
        where.append(Connection.name == name)
    total = db.scalar(select(func.count()).select_from(Connection).where(*where)) or 0
    rows = db.execute(
        select(Connection)
        .where(*where)
        .order_by(Connection.name, Connection.id)
        .offset(page * per_page)
        .limit(per_page)
    ).scalars()
    return list(rows), total


def _client_map(db: Session, tenant: Tenant, client_ids: list[str], field) -> dict[str, str]:
    """``client_id`` -> ``Client.id`` of the tenant's clients; 400 naming the first unknown."""
    found = dict(
        db.execute(
            select(Client.client_id, Client.id).where(
                Client.tenant_id == tenant.id, Client.client_id.in_(client_ids)
            )
        ).all()
    )
    for i, client_id in enumerate(client_ids):
        if client_id not in found:
            raise invalid_body(f"'{field(i)}' is not a client of this tenant")
    return found


def _client_pks(db: Session, tenant: Tenant, client_ids: list[str]) -> list[str]:
    found = _client_map(db, tenant, client_ids, lambda i: f"enabled_clients[{i}]")
    return sorted(set(found.values()))


def _options(strategy: str, data: dict, previous: dict | None, ring: Keyring) -> dict:
    options = body.obj(data, "options") if "options" in data else {}
    if len(json.dumps(options)) > MAX_OPTIONS_BYTES:
        raise invalid_body("'options' is too large")
    implementation = get_strategy(strategy)
    if implementation is not None:
        try:
            options = implementation.validate_options(options)
        except InvalidOptions as exc:
            raise invalid_body(str(exc)[:300]) from exc
    options = json.loads(json.dumps(options))
    # [ls] GET never shows secrets, so a secret left out of a PATCH keeps its stored value.
    for path in SECRET_OPTION_PATHS:
        parent, before = options, previous or {}
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
            before = before.get(key) if isinstance(before, dict) else None
        if isinstance(parent, dict) and isinstance(before, dict):
            if path[-1] not in parent and path[-1] in before:
                parent[path[-1]] = before[path[-1]]
    return seal_options(options, previous, ring)


def _set_enabled(conn: Connection, pks: list[str]) -> None:
    conn.enabled = [ConnectionClient(connection_id=conn.id, client_pk=pk) for pk in pks]


def _check_common(data: dict) -> None:
    if "display_name" in data and data["display_name"] is not None:
        body.string(data, "display_name", limit=128)
    if "enabled_clients" in data:
        body.string_list(data, "enabled_clients", limit=1000)


def create(db: Session, ring: Keyring, tenant: Tenant, data: dict) -> Connection:
    body.reject_unknown(data, CREATE_FIELDS, {"id"})
    for key in ("name", "strategy"):
        if key not in data:
            raise invalid_body(f"missing required property '{key}'")
    name = body.string(data, "name", limit=128)
    if not NAME.match(name):
        raise invalid_body(
            "'name' must be letters, digits and '-', starting and ending with a letter or digit"
        )
    strategy = body.string(data, "strategy", limit=64)
    if strategy not in KNOWN_STRATEGIES:
        raise invalid_body(f"'strategy' {strategy[:64]!r} is not a known strategy")
    _check_common(data)
    taken = db.execute(
        select(Connection.id).where(Connection.tenant_id == tenant.id, Connection.name == name)
    ).first()
    if taken is not None:
        raise conflict("A connection with the same name already exists.")
    pks = _client_pks(db, tenant, data.get("enabled_clients") or [])
    conn = Connection(
        tenant_id=tenant.id,
        name=name,
        strategy=strategy,
        display_name=data.get("display_name"),
        options=_options(strategy, data, None, ring),
    )
    db.add(conn)
    db.flush()
    _set_enabled(conn, pks)
    db.flush()
    return conn


def update(db: Session, ring: Keyring, tenant: Tenant, conn: Connection, data: dict) -> Connection:
    """PATCH: ``options`` is replaced whole; ``name`` and ``strategy`` cannot change."""
    body.reject_unknown(data, UPDATE_FIELDS, IMMUTABLE)
    _check_common(data)
    if "enabled_clients" in data:
        _set_enabled(conn, _client_pks(db, tenant, data["enabled_clients"]))
    if "display_name" in data:
        conn.display_name = data["display_name"]
    if "options" in data:
        conn.options = _options(conn.strategy, data, conn.options, ring)
    db.flush()
    return conn


def enabled_clients(
    db: Session, conn: Connection, take: int, after: str | None
) -> tuple[list[str], str | None]:
    """A page of the client_ids the connection is enabled for (checkpoint paging)."""
    query = (
        select(Client.client_id)
        .join(ConnectionClient, ConnectionClient.client_pk == Client.id)
        .where(ConnectionClient.connection_id == conn.id)
        .order_by(Client.client_id)
        .limit(take + 1)
    )
    if after:
        query = query.where(Client.client_id > after)
    ids = list(db.execute(query).scalars())
    more = len(ids) > take
    ids = ids[:take]
    return ids, (ids[-1] if more and ids else None)


def change_clients(db: Session, tenant: Tenant, conn: Connection, changes: list) -> list[dict]:
    """Auth0's ``[{"client_id": "…", "status": true|false}]``: enable or disable each."""
    if not 1 <= len(changes) <= MAX_CLIENT_CHANGES:
        raise invalid_body(f"the body must list 1 to {MAX_CLIENT_CHANGES} changes")
    for i, item in enumerate(changes):
        if not isinstance(item, dict):
            raise invalid_body(f"'[{i}]' must be an object")
        for key in item:
            if key not in ("client_id", "status"):
                raise invalid_body(f"additional property '[{i}].{str(key)[:60]}' is not allowed")
        if not isinstance(item.get("client_id"), str):
            raise invalid_body(f"'[{i}].client_id' must be a string")
        if not isinstance(item.get("status"), bool):
            raise invalid_body(f"'[{i}].status' must be a boolean")
    client_ids = [item["client_id"] for item in changes]
    by_id = _client_map(db, tenant, client_ids, lambda i: f"[{i}].client_id")
    wanted = set(conn.enabled_client_ids)
    for item in changes:
        pk = by_id[item["client_id"]]
        if item["status"]:
            wanted.add(pk)
        else:
            wanted.discard(pk)
    _set_enabled(conn, sorted(wanted))
    db.flush()
    return changes
