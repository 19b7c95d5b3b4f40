from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlalchemy import ForeignKey
from sqlalchemy import Integer
from sqlalchemy import String
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship

from login_site.db import Base
from login_site.db import UTCDateTime
from login_site.db import utcnow
from login_site.models.ids import new_id


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ten_"))
    name: Mapped[str] = mapped_column(String(64), unique=True)
    friendly_name: Mapped[str] = mapped_column(String(255), default="")
    # Auth0 tenant settings: default_directory, allowed_logout_urls, session_lifetime,
    # idle_session_lifetime, enabled_locales, default_audience, support_email, picture_url,
    # branding {logo_url, colors.primary}, signing_keys.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Bumped in the same transaction as every change to this tenant's clients, APIs or client
    # grants: the stored version that keys each worker's copy of them (config_cache.py).
    config_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    hosts: Mapped[list[TenantHost]] = relationship(
        back_populates="tenant", cascade="all, delete-orphan", order_by="TenantHost.host"
    )

    def setting(self, key: str, default: Any = None) -> Any:
        return (self.settings or {}).get(key, default)


class TenantHost(Base):
    """A request ``Host`` value (``host[:port]``, lower-case) that selects a tenant."""

    __tablename__ = "tenant_hosts"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)

    tenant: Mapped[Tenant] = relationship(back_populates="hosts")
