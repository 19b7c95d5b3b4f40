"""Passwordless codes and magic links, and the identifier each passwordless identity owns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlalchemy import ForeignKey
from sqlalchemy import Integer
from sqlalchemy import String
from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from login_site.db import Base
from login_site.db import UTCDateTime
from login_site.db import utcnow


class PasswordlessCode(Base):
    """One code or magic link sent to an email address or phone number.

    Only an HMAC of the secret is stored. ``live_key`` is set while the code is the newest
    one for its (connection, identifier) and is unique, so at most one code is live at a
    time: a new code clears the old one's key. ``attempts`` counts the attempt slots taken
    by one conditional UPDATE each; ``used_at`` is set by one conditional UPDATE.
    """

    __tablename__ = "passwordless_codes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[str] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), index=True
    )
    client_pk: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    identifier: Mapped[str] = mapped_column(String(320))  # normalised email or E.164 number
    live_key: Mapped[str | None] = mapped_column(String(400), nullable=True, unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    send: Mapped[str] = mapped_column(String(8))  # "code" | "link"
    # The hosted page's login transaction that asked for it (bound to that browser) ...
    tx_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # ... or, for a magic link asked for through the API, the validated authorize request.
    auth_params: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PasswordlessIdentity(Base):
    """The email address or phone number of a passwordless identity, unique per connection:
    the unique key settles two first logins of one identifier (the loser's insert fails)."""

    __tablename__ = "passwordless_identities"
    __table_args__ = (UniqueConstraint("connection_id", "identifier"),)

    identity_id: Mapped[int] = mapped_column(
        ForeignKey("identities.id", ondelete="CASCADE"), primary_key=True
    )
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    identifier: Mapped[str] = mapped_column(String(320))
