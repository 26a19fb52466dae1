"""Row counts kept by the database: drafts and runs by status, approved items.

``GET /ops/status`` and the MCP change feed read them instead of counting every row. Triggers
keep them in the transaction of each change, whichever code writes the row (services, import,
a raw ``sqlite3`` session):

- SQLite updates ``counters`` in place from row triggers.
- PostgreSQL would leave a dead row version per update of a counter, and a transaction that
  changes 100 000 rows would then crawl through them (quadratic). Its row triggers add each
  change to a transaction-local setting instead; a deferred constraint trigger folds the sums
  into ``counters`` once, at commit.

The backfill counts the rows already there.

Revision ID: 0007_store_counters
Revises: 0006_webhooks
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_store_counters"
down_revision = "0006_webhooks"
branch_labels = None
depends_on = None

_STATUS_TABLES = ("drafts", "runs")
_APPROVED = "'approved'"


def _sqlite_upsert(key: str, delta: int) -> str:
    return (
        f"INSERT INTO counters (name, value) VALUES ({key}, {delta}) "
        f"ON CONFLICT (name) DO UPDATE SET value = value + {delta};"
    )


def _sqlite_triggers() -> list[str]:
    statements: list[str] = []
    for table in _STATUS_TABLES:
        new, old = f"'{table}.' || NEW.status", f"'{table}.' || OLD.status"
        statements += [
            f"CREATE TRIGGER {table}_count_insert AFTER INSERT ON {table} "
            f"BEGIN {_sqlite_upsert(new, 1)} END",
            f"CREATE TRIGGER {table}_count_delete AFTER DELETE ON {table} "
            f"BEGIN {_sqlite_upsert(old, -1)} END",
            f"CREATE TRIGGER {table}_count_update AFTER UPDATE OF status ON {table} "
            f"WHEN OLD.status IS NOT NEW.status "
            f"BEGIN {_sqlite_upsert(old, -1)} {_sqlite_upsert(new, 1)} END",
        ]
    statements += [
        "CREATE TRIGGER approved_count_insert AFTER INSERT ON approved "
        f"BEGIN {_sqlite_upsert(_APPROVED, 1)} END",
        "CREATE TRIGGER approved_count_delete AFTER DELETE ON approved "
        f"BEGIN {_sqlite_upsert(_APPROVED, -1)} END",
    ]
    return statements


# PostgreSQL. ``ops_count_note`` adds a delta to the setting ``ops_counts.<key>`` (local to
# the transaction, so a rollback, or a rolled-back savepoint, takes it back) and lists the key
# in ``ops_counts.keys``; ``ops_count_flush`` runs at commit and writes the sums, in key
# order (two writers never wait for each other's counters in opposite orders).
_PG_FUNCTIONS = [
    """
CREATE FUNCTION ops_count_note(counter text, delta bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    setting text := 'ops_counts.' || replace(counter, '.', '__');
    stored text := current_setting(setting, true);
BEGIN
    IF stored IS NULL OR stored = '' THEN
        PERFORM set_config('ops_counts.keys',
            coalesce(current_setting('ops_counts.keys', true), '') || counter || ',', true);
        stored := '0';
    END IF;
    PERFORM set_config(setting, (stored::bigint + delta)::text, true);
END $$
""",
    """
CREATE FUNCTION ops_count_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status IS NOT DISTINCT FROM NEW.status THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM ops_count_note(TG_TABLE_NAME || '.' || OLD.status, -1);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM ops_count_note(TG_TABLE_NAME || '.' || NEW.status, 1);
    END IF;
    RETURN NULL;
END $$
""",
    """
CREATE FUNCTION ops_count_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ops_count_note(TG_TABLE_NAME, CASE WHEN TG_OP = 'DELETE' THEN -1 ELSE 1 END);
    RETURN NULL;
END $$
""",
    """
CREATE FUNCTION ops_count_flush() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    keys text := current_setting('ops_counts.keys', true);
    counter text;
    setting text;
    delta bigint;
BEGIN
    IF keys IS NULL OR keys = '' THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('ops_counts.keys', '', true);
    FOR counter IN
        SELECT DISTINCT k FROM unnest(string_to_array(keys, ',')) AS k WHERE k <> '' ORDER BY k
    LOOP
        setting := 'ops_counts.' || replace(counter, '.', '__');
        delta := coalesce(nullif(current_setting(setting, true), ''), '0')::bigint;
        PERFORM set_config(setting, '', true);
        IF delta <> 0 THEN
            INSERT INTO counters (name, value) VALUES (counter, delta)
            ON CONFLICT (name) DO UPDATE SET value = counters.value + EXCLUDED.value;
        END IF;
    END LOOP;
    RETURN NULL;
END $$
""",
]


def _pg_triggers() -> list[str]:
    statements: list[str] = []
    for table in _STATUS_TABLES:
        statements += [
            f"CREATE TRIGGER {table}_count AFTER INSERT OR DELETE OR UPDATE OF status "
            f"ON {table} FOR EACH ROW EXECUTE FUNCTION ops_count_status()",
        ]
    statements.append(
        "CREATE TRIGGER approved_count AFTER INSERT OR DELETE ON approved "
        "FOR EACH ROW EXECUTE FUNCTION ops_count_rows()"
    )
    for table in (*_STATUS_TABLES, "approved"):
        statements.append(
            f"CREATE CONSTRAINT TRIGGER {table}_count_flush AFTER INSERT OR DELETE OR UPDATE "
            f"ON {table} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
            "EXECUTE FUNCTION ops_count_flush()"
        )
    return statements


def _backfill() -> None:
    op.execute("DELETE FROM counters")
    for table in _STATUS_TABLES:
        op.execute(
            f"INSERT INTO counters (name, value) SELECT '{table}.' || status, count(*) "
            f"FROM {table} GROUP BY status"
        )
    op.execute("INSERT INTO counters (name, value) SELECT 'approved', count(*) FROM approved")


def upgrade() -> None:
    op.create_table(
        "counters",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        # Writers wait here as at every write: no row changes between the count and the
        # triggers.
        op.execute("LOCK TABLE drafts, runs, approved IN SHARE ROW EXCLUSIVE MODE")
        for statement in (*_PG_FUNCTIONS, *_pg_triggers()):
            op.execute(statement)
    else:
        for statement in _sqlite_triggers():
            op.execute(statement)
    _backfill()


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in (*_STATUS_TABLES, "approved"):
        if postgres:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_count ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_count_flush ON {table}")
        else:
            for suffix in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_count_{suffix}")
    if postgres:
        for name in ("ops_count_flush", "ops_count_rows", "ops_count_status"):
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
        op.execute("DROP FUNCTION IF EXISTS ops_count_note(text, bigint)")
    op.drop_table("counters")
