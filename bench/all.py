"""``make bench``: every benchmark of issue 10's table on SQLite and, when a server answers,
PostgreSQL; then the summary table (figure, SQLite, PostgreSQL, goal, met?).

The PostgreSQL server is ``OPS_TEST_DATABASE_URL`` (default the local test server,
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); each benchmark makes its own fresh
databases there and drops them, and its own temporary data dir. When no server answers the
PostgreSQL runs are left out, and this says so. ``BENCH_SCALE=small`` runs every benchmark at
smoke sizes (a few minutes in all); the default is the table's sizes. The figures go to
``BENCH_RESULTS`` (default a new temporary directory) as JSON, one file per figure and
backend, which ``bench/summary.py`` reads.

At full size it also runs the benchmarks of figures outside the table (``bench/runs.py``'s
in-process run figures, events, webhooks, console) before the summary; ``--table-only``
leaves them out.

    .venv/bin/python bench/all.py [--table-only] [--only gateway,runs_http,...]

With ``--only`` the results already in ``BENCH_RESULTS`` are kept (a partial run replaces
the figures it measures) and the summary shows them all.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench import benchlib  # noqa: E402
from bench.summary import load, table  # noqa: E402

# (name, SQLite argv, PostgreSQL argv or None); "{pg}" is the server URL.
TABLE = [
    ("store", ["store.py"], ["approvals_pg.py", "--postgres", "{pg}"]),
    ("status", ["status.py"], ["status.py", "--postgres", "{pg}"]),
    ("gateway", ["gateway.py"], ["gateway.py", "--postgres", "{pg}"]),
    ("runs_http", ["runs_http.py"], ["runs_http.py", "--postgres", "{pg}"]),
    ("mcp", ["mcp.py"], ["mcp.py", "--postgres", "{pg}"]),
    ("transfer", ["transfer.py", "--no-copy"], ["transfer.py", "--no-copy", "--postgres", "{pg}"]),
]
EXTRA = [
    ("runs", ["runs.py"], ["runs.py", "--postgres", "{pg}"]),
    ("events", ["events.py"], None),
    ("webhooks", ["webhooks.py"], ["webhooks.py", "--postgres", "{pg}"]),
    ("console", ["console.py"], None),
]


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def run(argv: list[str], env: dict[str, str]) -> tuple[int, float]:
    start = time.perf_counter()
    code = subprocess.call([sys.executable, str(_HERE / argv[0]), *argv[1:]], env=env)
    return code, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table-only", action="store_true", help="skip the other benchmarks")
    parser.add_argument("--only", default=None, help="comma-separated names (store, status, …)")
    args = parser.parse_args()
    results = Path(os.environ.get("BENCH_RESULTS") or tempfile.mkdtemp(prefix="ops-bench-"))
    results.mkdir(parents=True, exist_ok=True)
    if not args.only:  # a partial run adds to (and replaces figures of) an earlier one
        for old in results.glob("*.json"):
            old.unlink()
    pg, why = benchlib.postgres_server()
    scale = benchlib.scale_name()
    say(f"make bench: {scale} sizes (BENCH_SCALE={'small' if scale == 'small' else 'full'}); "
        f"results in {results}")  # fmt: skip
    say(f"PostgreSQL: {why}" + ("" if pg else ": the PostgreSQL runs are left out"))
    env = benchlib.clean_env(BENCH_RESULTS=str(results), PYTHONPATH=str(_HERE.parent))
    env["BENCH_SCALE"] = scale
    jobs = list(TABLE)
    if not (args.table_only or benchlib.small()):
        jobs += EXTRA
    wanted = set(args.only.split(",")) if args.only else None
    failed: list[str] = []
    started = time.perf_counter()
    for name, sqlite_argv, pg_argv in jobs:
        if wanted is not None and name not in wanted:
            continue
        variants = [("SQLite", sqlite_argv)]
        if pg_argv is not None and pg:
            variants.append(("PostgreSQL", [a.replace("{pg}", pg) for a in pg_argv]))
        if name == "webhooks" and len(variants) == 2:  # with --postgres it measures both
            variants = [("SQLite and PostgreSQL", variants[1][1])]
        for label, argv in variants:
            say(f"\n=== bench/{argv[0]} on {label}: {' '.join(argv[1:])}".rstrip(": "))
            code, seconds = run(argv, env)
            say(f"=== ({seconds:.0f} s{'' if code == 0 else f', FAILED with exit {code}'})")
            if code != 0:
                failed.append(f"{argv[0]} on {label}")
    say(f"\n=== summary ({scale} sizes, {(time.perf_counter() - started) / 60:.1f} min)")
    say(table(load(results), markdown=False))
    if not pg:
        say(f"PostgreSQL column empty: {why}")
    if failed:
        say(f"FAILED: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
