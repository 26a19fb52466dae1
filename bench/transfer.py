"""Export, import and store copy at size.

Builds a store of N approved items (default 100 000, ``--items``) with 2 x N drafts (each
with its revision), N finished runs with 3 log lines each and 6 x N audit entries (a valid
chain), then times, each as a real ``ops-trigger`` process:

  1. ``ops-trigger export DIR``                       goal <= 20 s at 100 000 items
  2. ``ops-trigger import DIR`` into a fresh store     goal <= 20 s, peak RSS <= 200 MB
  3. ``ops-trigger store copy --to URL`` into an empty store (``--no-copy`` skips it)

and prints the wall time, CPU time and peak RSS of each process. The peak is the child's own
``VmHWM`` (``/proc/<pid>/status``, read every 20 ms while it runs), not ``wait4``'s
``ru_maxrss``: Linux counts in a child's ``ru_maxrss`` the pages it shared with this process
until its ``exec``, so a benchmark holding 300 MB would see every child peak at 300 MB.
The store is SQLite in a temp dir, or a fresh database on the PostgreSQL
server of ``--url`` (copied into a SQLite file, and the import then also goes to PostgreSQL).

    .venv/bin/python bench/transfer.py [--items 100000] [--postgres postgresql+psycopg://...]

``BENCH_SCALE=small``: 5 000 items.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# bench/ off the import path: bench/mcp.py would shadow the mcp package.
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench import benchlib  # noqa: E402
from core.audit import GENESIS, entry_hash  # noqa: E402
from core.bootstrap import init_store  # noqa: E402
from core.canonical import HASH_VERSION, content_sha256  # noqa: E402
from core.config import Settings  # noqa: E402
from core.ids import IdKind, new_id  # noqa: E402
from core.storage import tables as t  # noqa: E402
from core.timeutil import now_ts  # noqa: E402

CLI = str(Path(sys.executable).with_name("ops-trigger"))
BATCH = 5000
LOG_LINES = 3
AUDIT_PER_ITEM = 6
GOAL_S = 20.0
GOAL_RSS_MB = 200.0


def _batches(rows: Iterator[dict[str, Any]], size: int = BATCH) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def build(settings: Settings, items: int) -> dict[str, int]:
    """Fill a migrated, empty store with ``items`` approved items and the rest."""
    init_store(settings)
    engine = sa.create_engine(settings.db_url)
    now = now_ts()
    scope = {"files": ["src/*"], "agents": []}
    counts = {"drafts": 0, "approved": 0, "runs": 0, "run_logs": 0, "audit": 0}
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.insert(t.kv),
                [
                    {"key": "config", "value": {"max_attempts": 2}, "updated_at": now},
                    {
                        "key": "provider",
                        "value": {"active": None, "providers": {}},
                        "updated_at": now,
                    },
                ],
            )
            for start in range(0, items, BATCH):
                n = min(BATCH, items - start)
                drafts, revisions, approved, runs, logs = [], [], [], [], []
                for i in range(start, start + n):
                    prompt = f"Task {i}: update the parser and its tests " + "p" * 60
                    content = f"Content of item {i}\n" + "lorem ipsum dolor sit amet " * 20
                    context = {"ticket": f"T-{i}", "priority": i % 5}
                    for status in ("approved", "draft"):
                        draft_id = new_id(IdKind.DRAFT)
                        drafts.append(
                            {
                                "id": draft_id,
                                "prompt": prompt,
                                "content": content,
                                "context": context,
                                "task_id": None,
                                "scope": scope,
                                "status": status,
                                "revision": 1,
                                "created_at": now,
                                "updated_at": now,
                                "created_by": "admin:bench",
                            }
                        )
                        revisions.append(
                            {
                                "draft_id": draft_id,
                                "revision": 1,
                                "prompt": prompt,
                                "content": content,
                                "context": context,
                                "task_id": None,
                                "scope": scope,
                                "created_by": "admin:bench",
                                "created_at": now,
                            }
                        )
                    approved_id = new_id(IdKind.APPROVED)
                    sha = content_sha256(
                        prompt=prompt,
                        content=content,
                        context=context,
                        scope=scope,
                        version=HASH_VERSION,
                    )
                    approved.append(
                        {
                            "id": approved_id,
                            "draft_id": drafts[-2]["id"],
                            "draft_revision": 1,
                            "task_id": None,
                            "prompt": prompt,
                            "content": content,
                            "context": context,
                            "scope": scope,
                            "content_sha256": sha,
                            "hash_version": HASH_VERSION,
                            "approved_at": now,
                            "approved_by": "operator:bench",
                        }
                    )
                    run_id = new_id(IdKind.RUN)
                    runs.append(
                        {
                            "id": run_id,
                            "approved_id": approved_id,
                            "content_sha256": sha,
                            "status": "done",
                            "executor": "provider",
                            "attempt": 1,
                            "created_at": now,
                            "created_by": "operator:bench",
                            "started_at": now,
                            "finished_at": now,
                            "output": f"Done with item {i}. " + "output " * 30,
                            "usage": {"prompt_tokens": 120, "completion_tokens": 80},
                            "cancel_requested": False,
                            "log_seq": LOG_LINES,
                        }
                    )
                    logs.extend(
                        {"run_id": run_id, "seq": s, "ts": now, "level": "info", "msg": msg}
                        for s, msg in enumerate(("claimed", "calling provider", "done"), 1)
                    )
                conn.execute(sa.insert(t.drafts), drafts)
                conn.execute(sa.insert(t.draft_revisions), revisions)
                conn.execute(sa.insert(t.approved), approved)
                conn.execute(sa.insert(t.runs), runs)
                conn.execute(sa.insert(t.run_logs), logs)
                counts["drafts"] += len(drafts)
                counts["approved"] += len(approved)
                counts["runs"] += len(runs)
                counts["run_logs"] += len(logs)
            prev = GENESIS
            for batch in _batches(_audit_rows(items * AUDIT_PER_ITEM, now)):
                for row in batch:
                    row["prev_hash"] = prev
                    row["hash"] = prev = entry_hash(row)
                conn.execute(sa.insert(t.audit), batch)
                counts["audit"] += len(batch)
    finally:
        engine.dispose()
    return counts


def _audit_rows(count: int, now: str) -> Iterator[dict[str, Any]]:
    actions = (
        "draft.create",
        "draft.create",
        "draft.approve",
        "run.create",
        "run.start",
        "run.finish",
    )
    for seq in range(1, count + 1):
        yield {
            "seq": seq,
            "ts": now,
            "actor": "admin:bench",
            "action": actions[seq % len(actions)],
            "target": f"d_{seq:026d}",
            "outcome": "ok",
            "detail": {"n": seq},
        }


def _peak_kib(pid: int) -> int | None:
    """``VmHWM`` of a running process in KiB (None once it is gone or a zombie)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in MB) of one ``ops-trigger`` process."""
    start = time.perf_counter()
    proc = subprocess.Popen([CLI, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    chunks: list[bytes] = []
    out = proc.stdout
    reader = threading.Thread(target=lambda: chunks.append(out.read()), daemon=True)
    reader.start()
    peak = 0
    while True:
        now_peak = _peak_kib(proc.pid)
        if now_peak is not None:
            peak = max(peak, now_peak)
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    reader.join()
    output = b"".join(chunks).decode("utf-8", "replace")
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"ops-trigger {' '.join(args)} failed:\n{output}")
    return seconds, usage.ru_utime + usage.ru_stime, peak / 1024


def _own_cpu() -> float:
    """User and system CPU seconds of this process (not of its children)."""
    times = os.times()
    return times.user + times.system


def _env(data_dir: Path, url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPS_", "ORCH_"))}
    env["OPS_DATA_DIR"] = str(data_dir)
    if url is not None:
        env["OPS_DATABASE_URL"] = url
    return env


def _line(label: str, figures: tuple[float, float, float], goal: str) -> None:
    wall, cpu, rss = figures
    print(  # noqa: T201
        f"  {label:<32} {wall:7.1f} s wall {cpu:7.1f} s CPU   peak RSS {rss:6.0f} MB   {goal}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=benchlib.sized(100_000, 5_000))
    parser.add_argument("--postgres", "--url", dest="url", default=None,
                        help="PostgreSQL server (a database per store)")  # fmt: skip
    parser.add_argument("--no-copy", action="store_true", help="skip the store copy figure")
    parser.add_argument(
        "--dir", default=None, help="where the stores and the export go (default: $TMPDIR)"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ops-transfer-", dir=args.dir))
    try:
        with (
            benchlib.fresh_database(args.url, "transfer") as source_url,
            benchlib.fresh_database(args.url, "transfer") as target_url,
        ):
            source = tmp / "source"
            settings = Settings(data_dir=source, database_url=source_url)
            start = time.perf_counter()
            counts = build(settings, args.items)
            built = time.perf_counter() - start
            kind = "PostgreSQL" if source_url else "SQLite"
            print(  # noqa: T201
                f"transfer at {args.items} approved items on {kind}, files in {tmp.parent} "
                f"(built in {built:.0f} s: "
                + ", ".join(f"{n} {k}" for k, n in counts.items())
                + ")",
                flush=True,
            )
            out = tmp / "export"
            figures = timed(["export", str(out)], _env(source, source_url))
            _line("export", figures, f"goal <= {GOAL_S:.0f} s")
            backend = benchlib.backend_of(source_url)
            size = f"{args.items:,} items"
            # The file-system floor: read and write every exported file once, plain Python.
            start, cpu = time.perf_counter(), _own_cpu()
            shutil.copytree(out, tmp / "floor")
            floor, floor_cpu = time.perf_counter() - start, _own_cpu() - cpu
            files = sum(1 for p in out.rglob("*") if p.is_file())
            shutil.rmtree(tmp / "floor")
            print(  # noqa: T201
                f"  baseline: copying the {files:,} exported files (shutil.copytree) {floor:.1f} s"
                f" wall {floor_cpu:.1f} s CPU; export ÷ copy {figures[0] / floor:.1f}",
                flush=True,
            )
            benchlib.record(
                "export_s",
                backend,
                figures[0],
                f"{figures[0]:.1f} s ({figures[1]:.1f} s CPU; ÷ copying the files "
                f"{figures[0] / floor:.1f}; {size})",
                items=args.items,
                floor_s=floor,
            )
            target = tmp / "target"
            init = subprocess.run(
                [CLI, "init"], env=_env(target, target_url), capture_output=True, check=False
            )
            if init.returncode != 0:
                raise SystemExit(init.stdout.decode() + init.stderr.decode())
            figures = timed(["import", str(out)], _env(target, target_url))
            _line("import", figures, f"goal <= {GOAL_S:.0f} s, peak <= {GOAL_RSS_MB:.0f} MB")
            print(f"  import ÷ copying the files {figures[0] / floor:.1f}", flush=True)  # noqa: T201
            benchlib.record(
                "import_s",
                backend,
                figures[0],
                f"{figures[0]:.1f} s ({figures[1]:.1f} s CPU; ÷ copying the files "
                f"{figures[0] / floor:.1f}; {size})",
                items=args.items,
                floor_s=floor,
            )
            benchlib.record(
                "import_rss", backend, figures[2], f"{figures[2]:.0f} MB ({size})", items=args.items
            )
            if not args.no_copy:
                copy_to = f"sqlite:///{tmp / 'copy' / 'ops.db'}"
                figures = timed(["store", "copy", "--to", copy_to], _env(source, source_url))
                _line(f"store copy ({kind} -> SQLite)", figures, "")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
