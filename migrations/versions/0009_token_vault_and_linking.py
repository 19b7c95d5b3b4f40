"""token vault, upstream metadata, upstream state on login transactions

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 01:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import login_site.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(table: str, column: str, target: str, ondelete: str | None = "CASCADE"):
    ref_table, ref_column = target.split(".")
    return sa.ForeignKeyConstraint(
        [column],
        [target],
        name=op.f(f"fk_{table}_{column}_{ref_table}"),
        ondelete=ondelete,
    )


def upgrade() -> None:
    op.create_table(
        "upstream_metadata",
        sa.Column("connection_id", sa.String(length=40), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("discovery", sa.JSON(), nullable=True),
        sa.Column("jwks", sa.JSON(), nullable=True),
        sa.Column("fetched_at", login_site.db.UTCDateTime(timezone=True), nullable=False),
        _fk("upstream_metadata", "connection_id", "connections.id"),
        sa.PrimaryKeyConstraint("connection_id", name=op.f("pk_upstream_metadata")),
    )
    op.create_table(
        "tenant_data_keys",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("wrapped_key", sa.Text(), nullable=False),
        sa.Column("created_at", login_site.db.UTCDateTime(timezone=True), nullable=False),
        _fk("tenant_data_keys", "tenant_id", "tenants.id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant_data_keys")),
    )
    with op.batch_alter_table("tenant_data_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tenant_data_keys_tenant_id"), ["tenant_id"], unique=False
        )
    op.create_table(
        "upstream_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("identity_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.String(length=40), nullable=False),
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("nonce", sa.LargeBinary(length=12), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=True),
        sa.Column("expires_at", login_site.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("refreshing_until", login_site.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", login_site.db.UTCDateTime(timezone=True), nullable=False),
        _fk("upstream_tokens", "connection_id", "connections.id"),
        _fk("upstream_tokens", "identity_id", "identities.id"),
        _fk("upstream_tokens", "key_id", "tenant_data_keys.id", ondelete=None),
        _fk("upstream_tokens", "tenant_id", "tenants.id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upstream_tokens")),
        sa.UniqueConstraint("identity_id", name=op.f("uq_upstream_tokens_identity_id")),
    )
    with op.batch_alter_table("upstream_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_upstream_tokens_connection_id"), ["connection_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_upstream_tokens_key_id"), ["key_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_upstream_tokens_tenant_id"), ["tenant_id"], unique=False
        )
    with op.batch_alter_table("login_transactions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("upstream_state_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("login_transactions", schema=None) as batch_op:
        batch_op.drop_column("upstream_state_hash")
    op.drop_table("upstream_tokens")
    op.drop_table("tenant_data_keys")
    op.drop_table("upstream_metadata")
