"""Store benchmark: the cost of the service layer over raw SQLite, and list scaling.

Prints, measured in one run:

1. approvals per second through ``ApprovalService.approve`` divided by plain sqlite3
   transactions issuing exactly the statements the services issued for the same approvals
   (recorded, then replayed: ``bench/replay_sqlite.py``) on the same schema with the same
   pragmas (WAL, synchronous=FULL, foreign keys, busy timeout). Goal: >= 0.5. (For reference
   it also prints the ratio to hand-written transactions holding only three writes: insert
   the approved row, update the draft, append the audit row.)
2. time for the first page of ``list_approved`` with 100 000 approved items divided by the
   same with 1 000. Goal: <= 1.5.

Run: ``.venv/bin/python bench/store.py`` (about a minute; ``BENCH_SCALE=small``: 3 rounds
and 10 000 items). PostgreSQL's counterpart of figure 1 is ``bench/approvals_pg.py``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

# bench/ off the import path: bench/mcp.py would shadow the mcp package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench import benchlib  # noqa: E402
from bench.replay_sqlite import ReplayApprover, record, statements_per_call  # noqa: E402
from core.auth import Principal  # noqa: E402
from core.bootstrap import Services, build_services  # noqa: E402
from core.canonical import content_sha256, sha256_hex  # noqa: E402
from core.config import Settings  # noqa: E402
from core.ids import IdKind, new_id  # noqa: E402
from core.models import Role  # noqa: E402
from core.storage.engine import BUSY_TIMEOUT_MS  # noqa: E402
from core.timeutil import now_ts  # noqa: E402

ROUNDS = benchlib.sized(8, 3)
PER_ROUND = 150
SMALL, LARGE = 1_000, benchlib.sized(100_000, 10_000)
PAGE_CALLS = benchlib.sized(300, 60)
ACTOR = "operator:bench"


def _say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _raw_connection(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection with the store's pragmas (see core/storage/engine.py)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def _draft_rows(count: int, tag: str) -> list[tuple[object, ...]]:
    now = now_ts()
    empty_scope = json.dumps({"files": [], "agents": []})
    return [
        (new_id(IdKind.DRAFT), f"{tag} prompt {i}", "content " * 40, "{}", None, empty_scope,
         "draft", 1, now, now, "admin:bench", None, None, None)
        for i in range(count)
    ]  # fmt: skip


def _insert_drafts(conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO drafts (id, prompt, content, context, task_id, scope, status, revision, "
        "created_at, updated_at, created_by, generation, error, rejected_reason) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.execute("COMMIT")


def _approved_row(
    draft_id: str, prompt: str, content: str, task_id: str | None
) -> tuple[object, ...]:
    scope: dict[str, list[str]] = {"files": [], "agents": []}
    return (
        new_id(IdKind.APPROVED), draft_id, 1, task_id, prompt, content, "{}", json.dumps(scope),
        content_sha256(prompt=prompt, content=content, context={}, scope=scope), 2, now_ts(),
        ACTOR, None,
    )  # fmt: skip


_INSERT_APPROVED = (
    "INSERT INTO approved (id, draft_id, draft_revision, task_id, prompt, content, context, "
    "scope, content_sha256, hash_version, approved_at, approved_by, note) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class RawApprover:
    """One plain sqlite3 transaction per approval with the statements the service issues:
    read the draft, the config and the audit head; insert the approved row, update the
    draft, append the audit row. ``writes_only`` skips the three reads."""

    def __init__(self, path: Path, *, writes_only: bool = False) -> None:
        self.conn = _raw_connection(path)
        self.writes_only = writes_only

    def approve(self, draft: tuple[object, ...]) -> None:
        draft_id, prompt, content = str(draft[0]), str(draft[1]), str(draft[2])
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        if not self.writes_only:
            row = conn.execute("SELECT * FROM drafts WHERE id = ?", (draft_id,)).fetchone()
            assert row is not None and row[7] == "draft"
            conn.execute("SELECT value FROM kv WHERE key = 'config'").fetchone()
        conn.execute(_INSERT_APPROVED, _approved_row(draft_id, prompt, content, None))
        now = now_ts()
        conn.execute(
            "UPDATE drafts SET status = 'approved', updated_at = ? WHERE id = ?", (now, draft_id)
        )
        head = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (head[0] + 1, head[1]) if head else (1, "0" * 64)
        detail = json.dumps({"revision": 1})
        digest = sha256_hex(f"{seq}{now}{draft_id}{detail}{prev}")
        conn.execute(
            "INSERT INTO audit (seq, ts, actor, action, target, outcome, detail, prev_hash, hash) "
            "VALUES (?, ?, ?, 'draft.approve', ?, 'ok', ?, ?, ?)",
            (seq, now, ACTOR, draft_id, detail, prev, digest),
        )
        conn.execute("COMMIT")


def approvals_ratio(root: Path) -> tuple[float, float, float, float, float, int]:
    """(service approvals/s, raw replayed transactions/s, raw writes-only transactions/s,
    service CPU seconds per approval, raw CPU seconds per transaction, statements per
    approval), interleaved in rounds so that disk noise hits all three alike. The CPU figures
    leave the disk's ``fsync`` waits out, which on a shared machine are most of the
    wall-clock time."""
    total = ROUNDS * PER_ROUND
    for name in ("service", "record", "raw", "writes"):
        build_services(Settings(data_dir=root / name)).close()
    drafts = _draft_rows(total, "bench")  # the same drafts in the service, record, raw stores
    writes_drafts = _draft_rows(total, "writes")
    for name, rows in (("service", drafts), ("record", drafts), ("raw", drafts),
                       ("writes", writes_drafts)):  # fmt: skip
        conn = _raw_connection(root / name / "ops.db")
        _insert_drafts(conn, rows)
        conn.close()
    actor = Principal(role=Role.OPERATOR, name="bench")
    recorder = build_services(Settings(data_dir=root / "record"))
    try:
        calls = record(recorder, [str(d[0]) for d in drafts], actor)
    finally:
        recorder.close()
    service_store = build_services(Settings(data_dir=root / "service"))
    raw = ReplayApprover(root / "raw" / "ops.db", calls)
    writes = RawApprover(root / "writes" / "ops.db", writes_only=True)
    try:
        # Warm up every path (imports, statement caches, first WAL growth).
        service_store.approvals.approve(draft_id=str(drafts[0][0]), actor=actor, auto_run=False)
        raw.approve(0)
        writes.approve(writes_drafts[0])
        service_time = raw_time = writes_time = service_cpu = raw_cpu = 0.0
        for r in range(ROUNDS):
            batch = range(1 + r * PER_ROUND, min(1 + (r + 1) * PER_ROUND, total))
            start, cpu = time.perf_counter(), time.process_time()
            for i in batch:
                service_store.approvals.approve(
                    draft_id=str(drafts[i][0]), actor=actor, auto_run=False
                )
            service_time += time.perf_counter() - start
            service_cpu += time.process_time() - cpu
            start, cpu = time.perf_counter(), time.process_time()
            for i in batch:
                raw.approve(i)
            raw_time += time.perf_counter() - start
            raw_cpu += time.process_time() - cpu
            start = time.perf_counter()
            for i in batch:
                writes.approve(writes_drafts[i])
            writes_time += time.perf_counter() - start
        count = total - 1
        return (
            count / service_time,
            count / raw_time,
            count / writes_time,
            service_cpu / count,
            raw_cpu / count,
            statements_per_call(calls),
        )
    finally:
        raw.close()
        writes.conn.close()
        service_store.close()


def _fill_approved(services: Services, count: int) -> None:
    """Bulk insert ``count`` approved items (and their drafts) in one transaction."""
    conn = _raw_connection(services.settings.data_dir / "ops.db")
    tasks = max(1, count // 100)  # 100 items per task at every size: filtered pages are full
    try:
        drafts = _draft_rows(count, "fill")
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO drafts (id, prompt, content, context, task_id, scope, status, revision, "
            "created_at, updated_at, created_by, generation, error, rejected_reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [d[:6] + ("approved",) + d[7:] for d in drafts],
        )
        conn.executemany(
            _INSERT_APPROVED,
            (
                _approved_row(str(d[0]), str(d[1]), str(d[2]), f"task-{i % tasks}")
                for i, d in enumerate(drafts)
            ),
        )
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
    finally:
        conn.close()


def _median_calls(calls: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Median time of each call; the calls take turns so that load on the machine hits
    them alike."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for round_ in range(PAGE_CALLS + 20):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            if round_ >= 20:  # the first rounds warm caches up
                samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def list_ratio(root: Path) -> dict[str, float]:
    """Median first-page times at SMALL and LARGE, unfiltered and filtered by task."""
    stores = {n: build_services(Settings(data_dir=root / f"list{n}")) for n in (SMALL, LARGE)}
    try:
        for n, services in stores.items():
            _fill_approved(services, n)
            assert services.approvals.list(limit=1).items, "fill failed"
        calls: dict[str, Callable[[], object]] = {}
        for n, services in stores.items():
            calls[f"all_{n}"] = partial(services.approvals.list, limit=50)
            calls[f"task_{n}"] = partial(services.approvals.list, task_id="task-7", limit=50)
        return _median_calls(calls)
    finally:
        for services in stores.values():
            services.close()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="ops-bench-") as tmp:
        root = Path(tmp)
        _say("bench/store.py: SQLite store (WAL, synchronous=FULL), one run")
        _say()
        started = time.perf_counter()
        service_rate, raw_rate, writes_rate, service_cpu, raw_cpu, per_call = approvals_ratio(root)
        ratio = service_rate / raw_rate
        _say(f"approvals through the service layer        : {service_rate:8.1f} /s")
        _say(f"raw sqlite3, the services' {per_call:2d} statements  : {raw_rate:8.1f} /s")
        _say(f"raw sqlite3, three writes only (by hand)   : {writes_rate:8.1f} /s")
        verdict = benchlib.verdict("approvals_services", ratio)
        _say(f"RATIO 1  service / raw (same statements)   : {ratio:8.2f}   ({verdict})")
        benchlib.record(
            "approvals_services",
            benchlib.SQLITE,
            ratio,
            f"{ratio:.2f} ({service_rate:.0f} vs raw sqlite3 {raw_rate:.0f}/s; CPU "
            f"{service_cpu * 1e6:.0f} vs {raw_cpu * 1e6:.0f} µs)",
            cpu_us=service_cpu * 1e6,
        )
        _say(f"         service / raw (writes only)       : {service_rate / writes_rate:8.2f}")
        _say(
            f"CPU per approval: service {service_cpu * 1e6:.0f} us, raw {raw_cpu * 1e6:.0f} us;"
            f" raw / service {raw_cpu / service_cpu:.2f} (the same ratio without fsync waits)"
        )
        _say()
        times = list_ratio(root)
        for key in ("all", "task"):
            small, large = times[f"{key}_{SMALL}"], times[f"{key}_{LARGE}"]
            label = "first page" if key == "all" else "first page, task_id filter"
            _say(f"list_approved {label} at {SMALL:>7,}: {small * 1000:7.3f} ms (median)")
            _say(f"list_approved {label} at {LARGE:>7,}: {large * 1000:7.3f} ms (median)")
            if key == "all":
                list_ratio_value = large / small
                verdict = "ok" if list_ratio_value <= 1.5 else "ABOVE GOAL"
                _say(
                    f"RATIO 2  {LARGE:,} / {SMALL:,}             : {list_ratio_value:8.2f}"
                    f"   (goal <= 1.5: {verdict})"
                )
            else:
                _say(f"         (task filter ratio: {large / small:.2f})")
            _say()
        _say(f"total time: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
