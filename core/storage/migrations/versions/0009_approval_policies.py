"""Approval policies of SPEC section 19: every approval recorded (table ``approvals``), and
the approved item's expiry marker and started-run marker.

An item whose run started is never expired. Its runs tell while they exist; the cleanup
pass keeps ``run_started_at`` before it deletes them. Runs deleted by earlier versions'
cleanup left only their audit entries (``run.create`` names the item, ``run.start`` the
run), so the upgrade fills ``run_started_at`` from those: an item that was run before the
upgrade does not expire because of it.

Revision ID: 0009_approval_policies
Revises: 0008_agent_executor
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009_approval_policies"
down_revision = "0008_agent_executor"
branch_labels = None
depends_on = None

_ACTIVE = "status = 'active'"


def upgrade() -> None:
    op.create_table(
        "approvals",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("draft_id", sa.String(length=64), nullable=False),
        sa.Column("draft_revision", sa.Integer(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("token_key", sa.String(length=200), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
    )
    op.create_index("ix_approvals_draft_status", "approvals", ["draft_id", "status", "created_at"])
    op.create_index("ix_approvals_status_created", "approvals", ["status", "created_at"])
    op.create_index(
        "ux_approvals_active_token",
        "approvals",
        ["draft_id", "token_key"],
        unique=True,
        sqlite_where=sa.text(_ACTIVE),
        postgresql_where=sa.text(_ACTIVE),
    )
    with op.batch_alter_table("approved") as batch:
        batch.add_column(sa.Column("expired_at", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("run_started_at", sa.String(length=40), nullable=True))
    _started_from_audit()


def _started_from_audit() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT target, ts FROM audit WHERE action = 'run.start'"))
    started: dict[str, str] = {run_id: ts for run_id, ts in rows}
    if not started:
        return
    first: dict[str, str] = {}
    created = bind.execute(sa.text("SELECT target, detail FROM audit WHERE action = 'run.create'"))
    for run_id, detail in created:
        when = started.get(run_id)
        data: Any = json.loads(detail) if isinstance(detail, str | bytes) else detail
        approved_id = data.get("approved_id") if isinstance(data, dict) else None
        if when is None or not isinstance(approved_id, str):
            continue
        if approved_id not in first or when < first[approved_id]:
            first[approved_id] = when
    if first:
        bind.execute(
            sa.text("UPDATE approved SET run_started_at = :ts WHERE id = :id"),
            [{"id": approved_id, "ts": ts} for approved_id, ts in first.items()],
        )


def downgrade() -> None:
    with op.batch_alter_table("approved") as batch:
        batch.drop_column("run_started_at")
        batch.drop_column("expired_at")
    op.drop_index("ux_approvals_active_token", table_name="approvals")
    op.drop_index("ix_approvals_status_created", table_name="approvals")
    op.drop_index("ix_approvals_draft_status", table_name="approvals")
    op.drop_table("approvals")
