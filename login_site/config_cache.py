"""Clients, APIs, client grants and each client's enabled connections as each worker last
read them, keyed by the stored ``tenants.config_version`` (STYLE: a local cache only when
keyed by a stored version).

Every token request and every ``/authorize`` needs its client, most need an API,
``client_credentials`` a client grant, and every login page and login form the connections
enabled for the client. Those rows are configuration: they change when an admin edits them,
not per request. Each change to a tenant's clients, APIs, client grants, connections (their
enabled clients included) or signing keys bumps its ``config_version`` in the same
transaction (the listeners below, for ORM flushes and bulk statements alike), so an entry
read under an older version is never served again. The version itself is read with the
tenant, through the tenant cache (at most ``TENANT_CACHE_SECONDS`` late on the other workers;
at once on the worker that wrote it): docs/architecture.md, Performance.

Callers get a fresh detached instance per lookup, built from the cached column values (JSON
columns decoded anew), so no request can change what another one sees. The instances are
read-only snapshots: code that edits a client or a connection loads it with its own query
(a snapshot's relationships, such as ``Connection.enabled``, are not loaded). Misses are not
cached (an unknown ``client_id`` costs its query every time) and the cache holds at most
``MAX_ENTRIES`` entries, so arbitrary ids cannot grow it (a client's connections are keyed by
a client that exists).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import chain
from typing import Any

from flask import Flask
from flask import current_app
from sqlalchemy import JSON
from sqlalchemy import bindparam
from sqlalchemy import event
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlalchemy.orm import lazyload
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from login_site.models import Client
from login_site.models import ClientGrant
from login_site.models import Connection
from login_site.models import ConnectionClient
from login_site.models import ResourceServer
from login_site.models import SigningKey
from login_site.models import Tenant

EXTENSION = "login_site.config_cache"
MAX_ENTRIES = 4096
# Signing keys too: a tenant's JWKS document is kept under the same version (oauth/keys.py).
_WATCHED = (Client, ResourceServer, ClientGrant, SigningKey, Connection, ConnectionClient)
_WATCHED_TABLES = frozenset(cls.__tablename__ for cls in _WATCHED)

_CLIENT = select(Client).where(
    Client.tenant_id == bindparam("tenant_id"), Client.client_id == bindparam("key")
)
_CLIENT_BY_PK = select(Client).where(
    Client.tenant_id == bindparam("tenant_id"), Client.id == bindparam("key")
)
_API = select(ResourceServer).where(
    ResourceServer.tenant_id == bindparam("tenant_id"),
    ResourceServer.identifier == bindparam("key"),
)
_GRANT = select(ClientGrant).where(
    ClientGrant.tenant_id == bindparam("tenant_id"),
    ClientGrant.client_pk == bindparam("client_pk"),
    ClientGrant.audience == bindparam("key"),
)
_ENABLED_CONNECTIONS = (
    select(Connection)
    .join(ConnectionClient, ConnectionClient.connection_id == Connection.id)
    .where(
        Connection.tenant_id == bindparam("tenant_id"),
        ConnectionClient.client_pk == bindparam("key"),
    )
    .order_by(Connection.created_at, Connection.name)
    # Enabled for this client by the join: the other clients are not read.
    .options(lazyload(Connection.enabled))
)


class _Snapshot:
    """One row's column values: plain ones as they are, JSON ones as text."""

    __slots__ = ("cls", "plain", "encoded")

    def __init__(self, row: Any):
        mapper = type(row).__mapper__
        self.cls = type(row)
        self.plain = {}
        encoded = {}
        for attr in mapper.column_attrs:
            value = getattr(row, attr.key)
            if isinstance(attr.columns[0].type, JSON):
                encoded[attr.key] = value
            else:
                self.plain[attr.key] = value
        self.encoded = json.dumps(encoded)

    def instance(self) -> Any:
        """A detached instance, as if loaded by a query: values go straight into its dict, as
        the ORM's loader puts them (a third of the cost of the constructor's events)."""
        obj = self.cls._sa_class_manager.new_instance()
        obj.__dict__.update(self.plain)
        obj.__dict__.update(json.loads(self.encoded))
        make_transient_to_detached(obj)
        return obj


class ConfigCache:
    def __init__(self, max_entries: int = MAX_ENTRIES):
        self.max_entries = max_entries
        self._entries: dict[tuple, tuple[int, tuple[_Snapshot, ...]]] = {}

    def get(self, db: Session, tenant: Tenant, statement, key: tuple, params: dict) -> Any:
        """The one row ``statement`` finds, or None (not kept)."""
        snapshots = self._snapshots(db, tenant, statement, key, params, every=False)
        return snapshots[0].instance() if snapshots else None

    def get_all(self, db: Session, tenant: Tenant, statement, key: tuple, params: dict) -> list:
        """Every row ``statement`` finds, in its order (none is kept too)."""
        return [s.instance() for s in self._snapshots(db, tenant, statement, key, params, True)]

    def _snapshots(self, db, tenant, statement, key, params, every: bool) -> tuple[_Snapshot, ...]:
        version = tenant.config_version
        entry = self._entries.get(key)
        if entry is not None and entry[0] == version:
            return entry[1]
        result = db.execute(statement, {"tenant_id": tenant.id, **params}).scalars()
        rows = result.all() if every else [r for r in (result.one_or_none(),) if r is not None]
        if not rows and not every:
            return ()
        if len(self._entries) >= self.max_entries:
            self._entries = {}
        snapshots = tuple(_Snapshot(row) for row in rows)
        self._entries[key] = (version, snapshots)
        return snapshots

    def clear(self) -> None:
        self._entries = {}


def _cache() -> ConfigCache:
    return current_app.extensions[EXTENSION]


def client(db: Session, tenant: Tenant, client_id: str) -> Client | None:
    """The tenant's application with this ``client_id``, or None."""
    return _cache().get(db, tenant, _CLIENT, ("client", tenant.id, client_id), {"key": client_id})


def client_by_pk(db: Session, tenant: Tenant, pk: str) -> Client | None:
    """The tenant's application with this internal id (``Client.id``), or None."""
    return _cache().get(db, tenant, _CLIENT_BY_PK, ("client_pk", tenant.id, pk), {"key": pk})


def api(db: Session, tenant: Tenant, identifier: str) -> ResourceServer | None:
    """The tenant's API (resource server) with this identifier (audience), or None."""
    return _cache().get(db, tenant, _API, ("api", tenant.id, identifier), {"key": identifier})


def client_grant(db: Session, tenant: Tenant, client: Client, audience: str) -> ClientGrant | None:
    """The client grant of ``client`` for the API ``audience``, or None."""
    return _cache().get(
        db,
        tenant,
        _GRANT,
        ("grant", tenant.id, client.id, audience),
        {"key": audience, "client_pk": client.id},
    )


def enabled_connections(db: Session, tenant: Tenant, client: Client) -> list[Connection]:
    """The tenant's connections enabled for ``client``, oldest first."""
    return _cache().get_all(
        db, tenant, _ENABLED_CONNECTIONS, ("connections", tenant.id, client.id), {"key": client.id}
    )


def _bump(session: Session, tenant_ids: set[str] | None) -> None:
    """``config_version + 1`` for these tenants (all of them when None), in the session's
    transaction. An ORM statement, so the tenant cache forgets them too (tenancy.py)."""
    statement = update(Tenant).values(config_version=Tenant.config_version + 1)
    if tenant_ids is not None:
        statement = statement.where(Tenant.id.in_(sorted(tenant_ids)))
    session.execute(statement, execution_options={"synchronize_session": False})


def _tenants_of(session: Session, rows: list) -> set[str] | None:
    """The tenants these watched rows belong to; None (every tenant) when one of them cannot
    be told without a query."""
    tenant_ids = set()
    for row in rows:
        if isinstance(row, ConnectionClient):  # no tenant column: its connection's
            row = session.identity_map.get(identity_key(Connection, row.connection_id))
            if row is None:
                return None
        if row.tenant_id:
            tenant_ids.add(row.tenant_id)
    return tenant_ids


def _bump_on_flush(session: Session, _flush_context) -> None:
    rows = [
        o for o in chain(session.new, session.dirty, session.deleted) if isinstance(o, _WATCHED)
    ]
    if not rows:
        return
    tenant_ids = _tenants_of(session, rows)
    if tenant_ids is None or tenant_ids:
        _bump(session, tenant_ids)


def _bump_on_statement() -> Callable:
    def bump(state) -> None:
        if state.is_select:
            return
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) in _WATCHED_TABLES:
            # A bulk insert/update/delete names no single tenant: every tenant's copies go.
            _bump(state.session, None)

    return bump


def init_app(app: Flask) -> None:
    """After ``db.init_app`` and ``tenancy.init_app``."""
    app.extensions[EXTENSION] = ConfigCache()
    maker = app.extensions["login_site.sessionmaker"]
    event.listen(maker, "after_flush", _bump_on_flush)
    event.listen(maker, "do_orm_execute", _bump_on_statement())
