"""Review fidelity: approved items get ``hash_version``; drafts get immutable revisions.

Existing approved items were hashed without ``context``: they are version 1. Each existing
draft gets its current state as its one revision, written by the last actor the audit
trail shows editing it (or its creator).

Revision ID: 0002_review_fidelity
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_review_fidelity"
down_revision = "0001"
branch_labels = None
depends_on = None

_BATCH = 500


def upgrade() -> None:
    with op.batch_alter_table("approved") as batch:
        batch.add_column(
            sa.Column("hash_version", sa.Integer(), nullable=False, server_default="1")
        )
    revisions = op.create_table(
        "draft_revisions",
        sa.Column("draft_id", sa.String(length=64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=True),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("draft_id", "revision"),
    )
    assert revisions is not None
    _backfill(op.get_bind(), revisions)


def _backfill(conn: sa.Connection, revisions: sa.Table) -> None:
    meta = sa.MetaData()
    drafts = sa.Table("drafts", meta, autoload_with=conn)
    audit = sa.Table("audit", meta, autoload_with=conn)
    editors: dict[str, str] = {}
    edits = (
        sa.select(audit.c.target, audit.c.actor)
        .where(audit.c.action == "draft.update", audit.c.outcome == "ok")
        .order_by(audit.c.seq)
    )
    for target, actor in conn.execute(edits):
        editors[target] = actor
    columns = [
        drafts.c.id,
        drafts.c.revision,
        drafts.c.prompt,
        drafts.c.content,
        drafts.c.context,
        drafts.c.task_id,
        drafts.c.scope,
        drafts.c.created_by,
        drafts.c.updated_at,
    ]
    batch: list[dict[str, object]] = []
    for row in conn.execute(sa.select(*columns).order_by(drafts.c.seq)):
        batch.append(
            {
                "draft_id": row.id,
                "revision": row.revision,
                "prompt": row.prompt,
                "content": row.content,
                "context": row.context,
                "task_id": row.task_id,
                "scope": row.scope,
                "created_by": editors.get(row.id, row.created_by)
                if row.revision > 1
                else row.created_by,
                "created_at": row.updated_at,
            }
        )
        if len(batch) >= _BATCH:
            conn.execute(sa.insert(revisions), batch)
            batch = []
    if batch:
        conn.execute(sa.insert(revisions), batch)


def downgrade() -> None:
    op.drop_table("draft_revisions")
    with op.batch_alter_table("approved") as batch:
        batch.drop_column("hash_version")
