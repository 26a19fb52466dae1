"""Every table on one ``MetaData``. Dialect-neutral: SQLite today, PostgreSQL later."""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "approvals",
    "approved",
    "audit",
    "console_sessions",
    "counters",
    "draft_revisions",
    "drafts",
    "events",
    "idempotency",
    "kv",
    "metadata",
    "oauth_clients",
    "oauth_codes",
    "oauth_grants",
    "oauth_tokens",
    "plan",
    "run_logs",
    "runs",
    "tokens",
    "webhook_deliveries",
    "webhooks",
    "workers",
]

metadata = sa.MetaData()

_ACTIVE = "status IN ('pending', 'running')"


def _seq() -> sa.Column[int]:
    # Integer primary keys order every list (newest first) and back the opaque cursors.
    return sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    )


plan = sa.Table(
    "plan",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("title", sa.Text, nullable=False, default=""),
    sa.Column("objective", sa.Text, nullable=False, default=""),
    sa.Column("workspace", sa.Text, nullable=False, default=""),
    sa.Column("constraints", sa.JSON, nullable=False),
    sa.Column("tasks", sa.JSON, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.String(40)),
)

kv = sa.Table(
    "kv",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.JSON, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False, default=1),
    sa.Column("updated_at", sa.String(40), nullable=False),
)

drafts = sa.Table(
    "drafts",
    metadata,
    _seq(),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("context", sa.JSON, nullable=False),
    sa.Column("task_id", sa.String(64)),
    sa.Column("scope", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("generation", sa.JSON),
    sa.Column("error", sa.Text),
    sa.Column("rejected_reason", sa.Text),
    sa.Index("ix_drafts_status_seq", "status", "seq"),
    sa.Index("ix_drafts_task_seq", "task_id", "seq"),
)

# Rows per status of drafts and runs ("drafts.approved", "runs.pending") and of approved items
# ("approved"), kept by database triggers in the transaction of each change (migration
# 0007_store_counters): the status report reads them instead of counting every row.
counters = sa.Table(
    "counters",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
    # Derived: the triggers rebuild it from the rows they count, so a store copy does not copy
    # it (it checks that the copy's triggers arrive at the same values).
    info={"derived": True},
)

draft_revisions = sa.Table(
    "draft_revisions",
    metadata,
    sa.Column("draft_id", sa.String(64), primary_key=True),
    sa.Column("revision", sa.Integer, primary_key=True),
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("context", sa.JSON, nullable=False),
    sa.Column("task_id", sa.String(64)),
    sa.Column("scope", sa.JSON, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
)

approved = sa.Table(
    "approved",
    metadata,
    _seq(),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("draft_id", sa.String(64), nullable=False, unique=True),
    sa.Column("draft_revision", sa.Integer, nullable=False),
    sa.Column("task_id", sa.String(64)),
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("context", sa.JSON, nullable=False),
    sa.Column("scope", sa.JSON, nullable=False),
    sa.Column("content_sha256", sa.String(64), nullable=False),
    # 1: the formula without context (items from before it was covered); 2: with context.
    sa.Column("hash_version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("approved_at", sa.String(40), nullable=False),
    sa.Column("approved_by", sa.String(200), nullable=False),
    sa.Column("note", sa.Text),
    # Approval policies (SPEC section 19): when the cleanup pass recorded the item's expiry
    # (its event and audit entry are written once), and that a run of it had started before
    # cleanup deleted that run (``expired`` is computed from the runs otherwise).
    sa.Column("expired_at", sa.String(40)),
    sa.Column("run_started_at", sa.String(40)),
    sa.Index("ix_approved_task_seq", "task_id", "seq"),
)

_ACTIVE_APPROVAL = "status = 'active'"

# Every approval of a draft (SPEC section 19): ``active`` until an edit voids it, it lapses
# after approval_ttl_hours, or the quorum it completes uses it.
approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("draft_id", sa.String(64), nullable=False),
    sa.Column("draft_revision", sa.Integer, nullable=False),
    sa.Column("content_sha256", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    # The token identity approvers are told apart by (``<role>:<token name>``).
    sa.Column("token_key", sa.String(200), nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    # The active approvals of a draft, and the lapse scan of the cleanup pass.
    sa.Index("ix_approvals_draft_status", "draft_id", "status", "created_at"),
    sa.Index("ix_approvals_status_created", "status", "created_at"),
    # One active approval per token and draft, enforced by the store.
    sa.Index(
        "ux_approvals_active_token",
        "draft_id",
        "token_key",
        unique=True,
        sqlite_where=sa.text(_ACTIVE_APPROVAL),
        postgresql_where=sa.text(_ACTIVE_APPROVAL),
    ),
)

runs = sa.Table(
    "runs",
    metadata,
    _seq(),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("approved_id", sa.String(64), sa.ForeignKey("approved.id"), nullable=False),
    sa.Column("content_sha256", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("executor", sa.String(16), nullable=False),
    sa.Column("agent", sa.String(64)),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("started_at", sa.String(40)),
    sa.Column("finished_at", sa.String(40)),
    sa.Column("output", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("usage", sa.JSON),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("lease_owner", sa.String(100)),
    sa.Column("lease_expires_at", sa.String(40)),
    # An agent run's lease token, as SHA-256 (the token itself is only in the claim answer).
    sa.Column("lease_token_sha256", sa.String(64)),
    sa.Column("log_seq", sa.Integer, nullable=False, default=0),
    sa.Index("ix_runs_status_seq", "status", "seq"),
    # The agent claim: the oldest pending run of one executor (and agent).
    sa.Index("ix_runs_claim", "status", "executor", "agent", "seq"),
    sa.Index("ix_runs_approved_seq", "approved_id", "seq"),
    sa.Index("ix_runs_status_lease", "status", "lease_expires_at"),
    # At most one pending or running run per approved item, enforced by the store.
    sa.Index(
        "ux_runs_one_active",
        "approved_id",
        unique=True,
        sqlite_where=sa.text(_ACTIVE),
        postgresql_where=sa.text(_ACTIVE),
    ),
)

run_logs = sa.Table(
    "run_logs",
    metadata,
    sa.Column(
        "run_id", sa.String(64), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("ts", sa.String(40), nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("msg", sa.Text, nullable=False),
)

idempotency = sa.Table(
    "idempotency",
    metadata,
    sa.Column("key_hash", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Index("ix_idempotency_created", "created_at"),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("last_used_at", sa.String(40)),
    sa.Column("revoked_at", sa.String(40)),
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("ts", sa.String(40), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(200)),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

workers = sa.Table(
    "workers",
    metadata,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("started_at", sa.String(40), nullable=False),
    sa.Column("heartbeat_at", sa.String(40), nullable=False),
)


# OAuth (SPEC section 17). A grant is what one user allowed one client: the family of its
# access and refresh tokens, listed and revoked like a registry token. Secrets, codes and
# tokens are stored as SHA-256 only.
oauth_clients = sa.Table(
    "oauth_clients",
    metadata,
    sa.Column("client_id", sa.String(64), primary_key=True),
    sa.Column("client_name", sa.String(200)),
    sa.Column("info", sa.JSON, nullable=False),
    sa.Column("secret_hash", sa.String(64)),
    sa.Column("created_at", sa.String(40), nullable=False),
)

oauth_grants = sa.Table(
    "oauth_grants",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("client_id", sa.String(64), nullable=False),
    sa.Column("client_name", sa.String(200)),
    sa.Column("user_actor", sa.String(200), nullable=False),
    sa.Column("user_token", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("resource", sa.String(500)),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("last_used_at", sa.String(40)),
    sa.Column("revoked_at", sa.String(40)),
    sa.Index("ix_oauth_grants_user_token", "user_token"),
)

oauth_codes = sa.Table(
    "oauth_codes",
    metadata,
    sa.Column("code_hash", sa.String(64), primary_key=True),
    sa.Column("client_id", sa.String(64), nullable=False),
    sa.Column("user_actor", sa.String(200), nullable=False),
    sa.Column("user_token", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("code_challenge", sa.String(128), nullable=False),
    sa.Column("redirect_uri", sa.Text, nullable=False),
    sa.Column("redirect_uri_explicit", sa.Boolean, nullable=False),
    sa.Column("resource", sa.String(500)),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("used_at", sa.String(40)),
    # The grant its exchange created: revoked if the code is ever presented again.
    sa.Column("grant_name", sa.String(64)),
)

oauth_tokens = sa.Table(
    "oauth_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column(
        "grant_name",
        sa.String(64),
        sa.ForeignKey("oauth_grants.name", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("kind", sa.String(16), nullable=False),  # access | refresh
    sa.Column("expires_at", sa.Integer, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    # A refresh token is used once: rotation marks it, and presenting it again revokes the grant.
    sa.Column("used_at", sa.String(40)),
    sa.Index("ix_oauth_tokens_grant", "grant_name"),
)


# The outbox of SPEC section 15: written in the transaction of each change. AUTOINCREMENT
# on SQLite: a seq is never reused, even after cleanup empties the table (clients resume
# from the last seq they saw).
events = sa.Table(
    "events",
    metadata,
    _seq(),
    sa.Column("ts", sa.String(40), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Index("ix_events_ts", "ts"),
    sqlite_autoincrement=True,
)


# Web console sessions (SPEC section 16): the cookie holds the session id, the store only its
# SHA-256. ``token_hash`` ties a session to the token it was opened with: revoking the token
# ends it. ``idle_expires`` is epoch seconds, pushed forward as the session is used.
console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("token_name", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("last_seen_at", sa.String(40), nullable=False),
    sa.Column("idle_expires", sa.Float, nullable=False),
    sa.Index("ix_console_sessions_token", "token_name"),
)


# Webhooks (SPEC section 15). The signing secret is stored only as a Fernet token (the key
# of ``core.crypto``). ``cursor`` is the seq of the last matching event that is done
# (delivered, or given up after the retry window); the lease keeps two worker processes
# from delivering to one webhook at the same time.
webhooks = sa.Table(
    "webhooks",
    metadata,
    _seq(),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("types", sa.JSON, nullable=False),
    sa.Column("format", sa.String(16), nullable=False),
    sa.Column("secret_encrypted", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("cursor", sa.BigInteger, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False, default=0),
    sa.Column("first_attempt_at", sa.String(40)),
    sa.Column("next_attempt_at", sa.String(40)),
    sa.Column("failing_since", sa.String(40)),
    sa.Column("last_success_at", sa.String(40)),
    sa.Column("disabled_at", sa.String(40)),
    sa.Column("disabled_reason", sa.Text),
    sa.Column("lease_owner", sa.String(100)),
    sa.Column("lease_expires_at", sa.String(40)),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    _seq(),
    sa.Column(
        "webhook_id",
        sa.String(64),
        sa.ForeignKey("webhooks.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("event_seq", sa.BigInteger, nullable=False),
    sa.Column("event_type", sa.String(32), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("ts", sa.String(40), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.String(40)),
    sa.Column("worker", sa.String(100)),
    sa.Index("ix_webhook_deliveries_webhook_seq", "webhook_id", "seq"),
)
