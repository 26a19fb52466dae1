"""Webhooks and their delivery attempts (SPEC section 15).

Revision ID: 0006_webhooks
Revises: 0005_console_sessions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_webhooks"
down_revision = "0005_console_sessions"
branch_labels = None
depends_on = None


def _seq() -> sa.Column[int]:
    return sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    )


def upgrade() -> None:
    op.create_table(
        "webhooks",
        _seq(),
        sa.Column("id", sa.String(length=64), nullable=False, unique=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("types", sa.JSON(), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.String(length=40), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("first_attempt_at", sa.String(length=40), nullable=True),
        sa.Column("next_attempt_at", sa.String(length=40), nullable=True),
        sa.Column("failing_since", sa.String(length=40), nullable=True),
        sa.Column("last_success_at", sa.String(length=40), nullable=True),
        sa.Column("disabled_at", sa.String(length=40), nullable=True),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_expires_at", sa.String(length=40), nullable=True),
    )
    op.create_table(
        "webhook_deliveries",
        _seq(),
        sa.Column(
            "webhook_id",
            sa.String(length=64),
            sa.ForeignKey("webhooks.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("ts", sa.String(length=40), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.String(length=40), nullable=True),
        sa.Column("worker", sa.String(length=100), nullable=True),
    )
    op.create_index(
        "ix_webhook_deliveries_webhook_seq",
        "webhook_deliveries",
        ["webhook_id", "seq"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_webhook_seq", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
