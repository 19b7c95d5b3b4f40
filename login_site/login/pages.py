"""What the hosted login page shows for a client: only its enabled, implemented connections."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from login_site import config_cache
from login_site.connections.base import Button
from login_site.connections.base import get_strategy
from login_site.connections.base import kind_of
from login_site.models import Client
from login_site.models import Connection
from login_site.models import Tenant


@dataclass(frozen=True)
class Offer:
    connection: Connection
    kind: str
    button: Button


def offers(db: Session, tenant: Tenant, client: Client, only: str | None = None) -> list[Offer]:
    """Connections to show: enabled for the client and implemented (no dead buttons). Their
    rows are read-only snapshots (``config_cache``)."""
    result = []
    for conn in config_cache.enabled_connections(db, tenant, client):
        if only and conn.name != only:
            continue
        strategy = get_strategy(conn.strategy)
        if strategy is None:
            continue
        result.append(Offer(conn, kind_of(conn.strategy), strategy.button(conn)))
    return result


def database_offer(tenant: Tenant, available: list[Offer], named: str | None) -> Offer | None:
    """The one database connection the form uses: named, else default_directory, else first."""
    databases = [o for o in available if o.kind == "database"]
    if not databases:
        return None
    if named:
        for offer in databases:
            if offer.connection.name == named:
                return offer
    default = tenant.setting("default_directory")
    for offer in databases:
        if offer.connection.name == default:
            return offer
    return databases[0]
