from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlalchemy import ForeignKey
from sqlalchemy import String
from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship

from login_site.db import Base
from login_site.db import UTCDateTime
from login_site.db import utcnow
from login_site.models.ids import new_id


class Connection(Base):
    """A source of users. ``options`` is validated by the strategy on write."""

    __tablename__ = "connections"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("con_"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    strategy: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    enabled: Mapped[list[ConnectionClient]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def enabled_client_ids(self) -> set[str]:
        """Internal ids (``Client.id``) of the clients this connection is enabled for."""
        return {row.client_pk for row in self.enabled}

    def option(self, key: str, default: Any = None) -> Any:
        return (self.options or {}).get(key, default)


class ConnectionClient(Base):
    """Connection ``enabled_clients``: one row per (connection, client)."""

    __tablename__ = "connection_clients"

    connection_id: Mapped[str] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    client_pk: Mapped[str] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True, index=True
    )
