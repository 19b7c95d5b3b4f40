"""The request's ``Host`` picks the tenant; the issuer is ``{scheme}://{host}/``."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain

from flask import Flask
from flask import current_app
from flask import g
from flask import request
from sqlalchemy import bindparam
from sqlalchemy import event
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from login_site.db import get_db
from login_site.errors import PageError
from login_site.i18n import N_
from login_site.models import Tenant
from login_site.models import TenantHost

# Paths served on any host (assets, health); everything else needs a tenant.
TENANTLESS_PREFIXES = ("/static/", "/healthz")
CACHE = "login_site.tenant_cache"
# How long a worker may answer for a tenant as it read it (docs/architecture.md, Performance).
TENANT_CACHE_SECONDS = 1.0
_TENANT_TABLES = frozenset({Tenant.__tablename__, TenantHost.__tablename__})
_COLUMNS = tuple(attr.key for attr in Tenant.__mapper__.column_attrs)


def normalise_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


_TENANT_BY_HOST = select(Tenant).join(TenantHost).where(TenantHost.host == bindparam("host"))


def tenant_for_host(db, host: str) -> Tenant | None:
    return db.execute(_TENANT_BY_HOST, {"host": normalise_host(host)}).scalar_one_or_none()


@dataclass(frozen=True)
class _Entry:
    expires_at: float  # TenantCache.clock
    tenant: Tenant  # detached, never attached to a session: merged into each request's
    settings_json: str  # parsed anew for every request: nobody shares one dict


class TenantCache:
    """Tenants by host, read from the database at most once a second per worker.

    Every request needs its tenant, and this saves the query on all but the first request
    of each second. The entries are not keyed by a stored version, which STYLE asks of a
    local cache; this one is an exception because reading a tenant at most
    TENANT_CACHE_SECONDS late is harmless: its settings are configuration that other workers
    already apply only from their next request on, and a deleted tenant's clients, users
    and keys are gone at once (cascade), so a stale entry can serve nothing of it. A change
    written by this process (ORM flush or bulk statement on ``tenants`` or
    ``tenant_hosts``) empties the cache at once. Only hosts that exist are kept, so the
    cache is bounded by the configured hosts whatever ``Host`` headers arrive."""

    def __init__(
        self, seconds: float = TENANT_CACHE_SECONDS, clock: Callable[[], float] = time.monotonic
    ):
        self.seconds = seconds
        self.clock = clock
        self._entries: dict[str, _Entry] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def lookup(self, db: Session, host: str) -> Tenant | None:
        host = normalise_host(host)
        entry = self._entries.get(host)
        if entry is not None and entry.expires_at > self.clock():
            return _attach(db, entry)
        generation = self._generation
        tenant = tenant_for_host(db, host)
        if tenant is not None:
            detached = Tenant(**{key: getattr(tenant, key) for key in _COLUMNS})
            make_transient_to_detached(detached)
            entry = _Entry(
                expires_at=self.clock() + self.seconds,
                tenant=detached,
                settings_json=json.dumps(tenant.settings or {}),
            )
            with self._lock:
                if generation == self._generation:  # nothing was written meanwhile
                    self._entries[host] = entry
        return tenant

    def peek(self, host: str) -> Tenant | None:
        """The tenant :meth:`lookup` would find at ``host`` without a query, else None: the
        cached detached instance itself, for reading its columns only (``settings``
        excepted, which only :meth:`lookup` gives each request a copy of)."""
        entry = self._entries.get(normalise_host(host))
        if entry is not None and entry.expires_at > self.clock():
            return entry.tenant
        return None

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries = {}


def _attach(db: Session, entry: _Entry) -> Tenant:
    """The cached tenant as a persistent, unmodified instance of this request's session,
    without a query (as if loaded by one), with a settings dict of its own."""
    tenant = db.merge(entry.tenant, load=False)
    set_committed_value(tenant, "settings", json.loads(entry.settings_json))
    return tenant


_CHANGED = "login_site.tenants_changed"


def _forget_on_flush(cache: TenantCache):
    """Emptied at the flush and again at the commit: a request of this process that read
    the old row in between cannot keep it."""

    def forget(session: Session, _flush_context) -> None:
        for obj in chain(session.new, session.dirty, session.deleted):
            if isinstance(obj, Tenant | TenantHost):
                session.info[_CHANGED] = True
                cache.clear()
                return

    return forget


def _forget_on_commit(cache: TenantCache):
    def forget(session: Session) -> None:
        if session.info.pop(_CHANGED, False):
            cache.clear()

    return forget


def _forget_on_statement(cache: TenantCache):
    def forget(state) -> None:
        if state.is_select:
            return
        table = getattr(state.statement, "table", None)
        if table is None or getattr(table, "name", None) in _TENANT_TABLES:
            state.session.info[_CHANGED] = True
            cache.clear()

    return forget


def current_tenant() -> Tenant:
    return g.tenant


def issuer() -> str:
    """Issuer of the current tenant, spelled with the host the client used."""
    return issuer_of(request.scheme, request.host)


def issuer_of(scheme: str, host: str) -> str:
    return f"{scheme}://{normalise_host(host)}/"


def absolute(path: str) -> str:
    return issuer() + path.lstrip("/")


def init_app(app: Flask) -> None:
    """After ``db.init_app``: the cache listens to the app's sessions."""
    cache = TenantCache()
    app.extensions[CACHE] = cache
    maker = app.extensions["login_site.sessionmaker"]
    event.listen(maker, "after_flush", _forget_on_flush(cache))
    event.listen(maker, "do_orm_execute", _forget_on_statement(cache))
    event.listen(maker, "after_commit", _forget_on_commit(cache))

    @app.before_request
    def _select_tenant():
        if request.path.startswith(TENANTLESS_PREFIXES):
            return None
        tenant = current_app.extensions[CACHE].lookup(get_db(), request.host)
        if tenant is None:
            raise PageError(
                N_("Not found"),
                N_("There is no login service at this address."),
                status=404,
                error="not_found",
            )
        g.tenant = tenant
        return None
