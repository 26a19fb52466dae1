"""The summary table of ``make bench``: every figure of issue 10, SQLite and PostgreSQL.

Reads the JSON results the benchmarks wrote to ``BENCH_RESULTS`` (``bench/all.py`` sets it)
and prints one row per figure: the figure, its value on each backend, the goal, met or not.
``--markdown`` prints the table of docs/performance.md (with issue 10's "now" column and the
command that printed each figure).

    .venv/bin/python bench/summary.py [DIR] [--markdown [--before DIR]]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench.benchlib import FIGURES, POSTGRES, SQLITE  # noqa: E402


def load(directory: Path) -> dict[tuple[str, str], dict[str, object]]:
    results: dict[tuple[str, str], dict[str, object]] = {}
    for path in sorted(directory.glob("*.json")):
        entry = json.loads(path.read_text())
        results[(str(entry["figure"]), str(entry["backend"]))] = entry
    return results


def _cell(entry: dict[str, object] | None, long: bool) -> str:
    if entry is None:
        return "—"
    text = str(entry["text"]) if long else str(entry["text"]).split(" (")[0]
    if entry.get("scale") == "small":
        text += " [small]"
    return text


def _met(entries: list[dict[str, object] | None]) -> str:
    got = [e for e in entries if e is not None]
    if not got:
        return "not measured"
    small = " (at smoke size)" if any(e.get("scale") == "small" for e in got) else ""
    verdicts = ["yes" if e["met"] else "no" for e in got]
    if len(set(verdicts)) == 1 and len(got) == len(entries):
        return verdicts[0] + small
    names = ("SQLite", "PostgreSQL")
    return (
        ", ".join(
            f"{names[i]} {'yes' if e['met'] else 'no'}" if e else f"{names[i]} —"
            for i, e in enumerate(entries)
        )
        + small
    )


Results = dict[tuple[str, str], dict[str, object]]


def table(results: Results, *, markdown: bool, before: Results | None = None) -> str:
    """The summary (figure, SQLite, PostgreSQL, goal, met?); ``markdown``: the docs table,
    with issue 10's "now" column, the ``before`` results (if given) and the command."""
    rows = []
    if markdown:
        head = ["figure", "goal", "before: issue 10 (SQLite)"]
        if before is not None:
            head += ["before: SQLite", "before: PostgreSQL"]
        head += ["SQLite", "PostgreSQL", "met?", "command"]
        rows.append("| " + " | ".join(head) + " |")
        rows.append("|" + "---|" * len(head))
    else:
        rows.append("| figure | SQLite | PostgreSQL | goal | met? |")
        rows.append("|---|---|---|---|---|")
    for figure in FIGURES:
        sqlite = results.get((figure.key, SQLITE))
        postgres = results.get((figure.key, POSTGRES))
        cells = [_cell(sqlite, markdown), _cell(postgres, markdown)]
        if markdown:
            line = [figure.label, figure.goal_text, figure.before]
            if before is not None:
                line += [_cell(before.get((figure.key, b)), False) for b in (SQLITE, POSTGRES)]
            line += [*cells, _met([sqlite, postgres]), f"`{figure.command}`"]
        else:
            line = [figure.label, *cells, figure.goal_text, _met([sqlite, postgres])]
        rows.append("| " + " | ".join(line) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", default=os.environ.get("BENCH_RESULTS"))
    parser.add_argument("--markdown", action="store_true", help="the docs table")
    parser.add_argument("--before", type=Path, default=None, help="results of an earlier run")
    args = parser.parse_args()
    if not args.directory:
        raise SystemExit("no results directory: pass DIR or set BENCH_RESULTS")
    results = load(Path(args.directory))
    before = load(args.before) if args.before else None
    sys.stdout.write(table(results, markdown=args.markdown, before=before) + "\n")
    missing = [
        f"{f.key} ({b})" for f in FIGURES for b in (SQLITE, POSTGRES) if (f.key, b) not in results
    ]
    if missing and not args.markdown:
        sys.stdout.write(f"not measured in this run: {', '.join(missing)}\n")


if __name__ == "__main__":
    main()
