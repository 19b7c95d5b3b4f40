from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlalchemy import Boolean
from sqlalchemy import ForeignKey
from sqlalchemy import Integer
from sqlalchemy import String
from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from login_site.db import Base
from login_site.db import UTCDateTime
from login_site.db import utcnow
from login_site.models.ids import new_id


class ResourceServer(Base):
    """An API: the ``audience`` of JWT access tokens."""

    __tablename__ = "resource_servers"
    __table_args__ = (UniqueConstraint("tenant_id", "identifier"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("rs_"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    identifier: Mapped[str] = mapped_column(String(600))
    name: Mapped[str] = mapped_column(String(255))
    scopes: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    signing_alg: Mapped[str] = mapped_column(String(16), default="RS256")
    token_lifetime: Mapped[int] = mapped_column(Integer, default=86400)
    allow_offline_access: Mapped[bool] = mapped_column(Boolean, default=False)
    skip_consent_for_verifiable_first_party_clients: Mapped[bool] = mapped_column(
        Boolean, default=True
    )
    token_dialect: Mapped[str] = mapped_column(String(32), default="access_token")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def scope_values(self) -> list[str]:
        return [s["value"] for s in self.scopes or []]


class ClientGrant(Base):
    """Which scopes of an API a client may obtain with ``client_credentials``."""

    __tablename__ = "client_grants"
    __table_args__ = (UniqueConstraint("client_pk", "audience"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("cgr_"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    client_pk: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    audience: Mapped[str] = mapped_column(String(600))
    scope: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
