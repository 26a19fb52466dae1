"""Web console sessions (SPEC section 16).

Revision ID: 0005_console_sessions
Revises: 0004_events
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_console_sessions"
down_revision = "0004_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id_hash", sa.String(length=64), primary_key=True),
        sa.Column("token_name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.String(length=40), nullable=False),
        sa.Column("last_seen_at", sa.String(length=40), nullable=False),
        sa.Column("idle_expires", sa.Float(), nullable=False),
    )
    op.create_index("ix_console_sessions_token", "console_sessions", ["token_name"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_console_sessions_token", table_name="console_sessions")
    op.drop_table("console_sessions")
