"""What we keep about upstream identity providers: their published metadata (discovery and
JWKS, shared by every worker) and, for Token Vault connections, the user's upstream tokens
encrypted with a per-tenant data key (checklist TV-01)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlalchemy import ForeignKey
from sqlalchemy import Integer
from sqlalchemy import LargeBinary
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from login_site.db import Base
from login_site.db import UTCDateTime
from login_site.db import utcnow


class UpstreamMetadata(Base):
    """An upstream provider's discovery document and JWKS as last fetched, per connection."""

    __tablename__ = "upstream_metadata"

    connection_id: Mapped[str] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    source: Mapped[str] = mapped_column(Text)  # discovery or jwks URL the row was read from
    discovery: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TenantDataKey(Base):
    """A tenant's AES-256-GCM data key, stored wrapped by the master keyring (Fernet)."""

    __tablename__ = "tenant_data_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    wrapped_key: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UpstreamToken(Base):
    """One identity's upstream token set (Auth0's Token Vault "tokenset")."""

    __tablename__ = "upstream_tokens"
    __table_args__ = (UniqueConstraint("identity_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id", ondelete="CASCADE"))
    connection_id: Mapped[str] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), index=True
    )
    key_id: Mapped[str] = mapped_column(ForeignKey("tenant_data_keys.id"), index=True)
    # AES-GCM nonce + ciphertext of {"access_token", "refresh_token"}; the row id is the AAD.
    nonce: Mapped[bytes] = mapped_column(LargeBinary(12))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    scope: Mapped[str | None] = mapped_column(Text, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Bumped at every write; parallel exchanges wait for a change instead of refreshing again.
    version: Mapped[int] = mapped_column(Integer, default=1)
    refreshing_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
