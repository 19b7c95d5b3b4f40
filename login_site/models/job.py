"""Management API jobs: verification mails and user exports (management-api.md §7)."""

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
from login_site.models.ids import new_id

JOB_TYPES = ("verification_email", "users_export")
JOB_STATES = ("pending", "completed", "failed")


class Job(Base):
    """One job. A verification mail is pending until its outbox row is sent; an export is
    produced at once and kept on the row (``export``) until ``expires_at``."""

    __tablename__ = "management_jobs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("job_"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    # verification_email: the mail in the outbox (NULL once the outbox row is gone).
    outbox_id: Mapped[int | None] = mapped_column(
        ForeignKey("mail_outbox.id", ondelete="SET NULL"), nullable=True
    )
    # users_export: what was asked for, and the file while it lasts.
    connection_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    format: Mapped[str | None] = mapped_column(String(8), nullable=True)
    fields: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    export: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
