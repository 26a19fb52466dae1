"""The agent executor of SPEC section 14: a run's agent, its lease token (hashed) and the
claim index.

Revision ID: 0008_agent_executor
Revises: 0007_store_counters
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_agent_executor"
down_revision = "0007_store_counters"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("agent", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("lease_token_sha256", sa.String(length=64), nullable=True))
    op.create_index("ix_runs_claim", "runs", ["status", "executor", "agent", "seq"])


def downgrade() -> None:
    op.drop_index("ix_runs_claim", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("lease_token_sha256")
        batch.drop_column("agent")
