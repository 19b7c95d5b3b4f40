"""management jobs

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 01:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import login_site.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "management_jobs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=True),
        sa.Column("connection_id", sa.String(length=40), nullable=True),
        sa.Column("format", sa.String(length=8), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=True),
        sa.Column("export", sa.Text(), nullable=True),
        sa.Column("created_at", login_site.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", login_site.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", login_site.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["mail_outbox.id"],
            name=op.f("fk_management_jobs_outbox_id_mail_outbox"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_management_jobs_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_management_jobs")),
    )
    with op.batch_alter_table("management_jobs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_management_jobs_tenant_id"), ["tenant_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("management_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_management_jobs_tenant_id"))
    op.drop_table("management_jobs")
