"""Short-lived protocol state: login transactions, sessions, codes, access tokens.

Bearer values (codes, session ids, tokens) are stored as SHA-256 hashes only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlalchemy import ForeignKey
from sqlalchemy import Integer
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from login_site.db import Base
from login_site.db import UTCDateTime
from login_site.db import utcnow


class LoginTransaction(Base):
    """A validated ``/authorize`` request waiting for the user to log in (Dex's AuthRequest)."""

    __tablename__ = "login_transactions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    client_pk: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    # Validated authorize parameters (redirect_uri, response_mode, scope, state, nonce, ...)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Browser binding: hash of a random value kept in this browser's session cookie
    browser_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # SHA-256 of the secret half of the upstream ``state`` while a social/enterprise login is
    # under way; spent (set to NULL) by one conditional UPDATE at the callback (checklist UP-01).
    upstream_state_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class LoginSession(Base):
    """A user's SSO session on one tenant; the cookie holds only the id."""

    __tablename__ = "login_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    sid: Mapped[str] = mapped_column(String(64), unique=True)  # public id, the ID token's `sid`
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_pk: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    connection: Mapped[str] = mapped_column(String(128))
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(Text, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuthorizationCode(Base):
    """Single use: spent by one conditional UPDATE on ``used_at``."""

    __tablename__ = "authorization_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    client_pk: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    user_pk: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    session_sid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text, default="")
    audience: Mapped[str | None] = mapped_column(String(600), nullable=True)
    nonce: Mapped[str | None] = mapped_column(Text, nullable=True)
    code_challenge: Mapped[str | None] = mapped_column(String(128), nullable=True)
    code_challenge_method: Mapped[str | None] = mapped_column(String(16), nullable=True)
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AccessToken(Base):
    """Opaque access tokens (the ``/userinfo`` kind) and the record of JWT ones."""

    __tablename__ = "access_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    client_pk: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    user_pk: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True
    )
    jti: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    scope: Mapped[str] = mapped_column(Text, default="")
    audience: Mapped[str | None] = mapped_column(String(600), nullable=True)
    code_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lifetime_seconds: Mapped[int] = mapped_column(Integer, default=86400)
    session_sid: Mapped[str | None] = mapped_column(Text, nullable=True)
    refresh_family: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)


class RefreshToken(Base):
    """One refresh token of a family. Rotation spends it with a conditional UPDATE on
    ``used_at``; presenting a spent token again revokes the whole family (RFC 9700 §4.14.2)."""

    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    client_pk: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    user_pk: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(Text, default="")
    audience: Mapped[str | None] = mapped_column(String(600), nullable=True)
    session_sid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)  # absolute, inherited by the family
    idle_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Consent(Base):
    """Scopes a user granted to a third-party client, remembered for the next login."""

    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("user_pk", "client_pk", "audience_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_pk: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    client_pk: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    audience_key: Mapped[str] = mapped_column(String(600), default="")
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CrossOriginTicket(Base):
    """``/co/authenticate``'s ``login_ticket``: single use, seconds long, bound to the
    client, the calling origin, this browser (cookie) and the ``co_verifier``."""

    __tablename__ = "co_tickets"

    ticket_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    client_pk: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    user_pk: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    connection: Mapped[str] = mapped_column(String(128))
    origin: Mapped[str] = mapped_column(String(255))
    co_id: Mapped[str] = mapped_column(String(64))
    verifier_hash: Mapped[str] = mapped_column(String(64))
    browser_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
