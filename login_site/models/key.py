from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlalchemy import ForeignKey
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from login_site.db import Base
from login_site.db import UTCDateTime
from login_site.db import utcnow

KEY_STATES = ("next", "current", "previous", "revoked")


class SigningKey(Base):
    """A tenant's RS256 key. The private key is a PEM encrypted by the vault keyring."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    alg: Mapped[str] = mapped_column(String(16), default="RS256")
    state: Mapped[str] = mapped_column(String(16), default="current")
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    private_pem_enc: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When it became current (None while it is the next key; keys made before this column
    # existed: their created_at).
    current_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
