"""password-change ticket options: verification, result URL

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 02:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("user_tickets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "marks_email_verified", sa.Boolean(), nullable=False, server_default=sa.true()
            )
        )
        batch_op.add_column(sa.Column("result_url", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("result_with_email", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("user_tickets", schema=None) as batch_op:
        batch_op.drop_column("result_with_email")
        batch_op.drop_column("result_url")
        batch_op.drop_column("marks_email_verified")
