"""signing_keys.current_since: when a key became current (a next key is made ahead of it)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-23 07:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import login_site.db

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("signing_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("current_since", login_site.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("signing_keys", schema=None) as batch_op:
        batch_op.drop_column("current_since")
