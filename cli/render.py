"""Output of the remote commands: rich tables and panels for people, plain JSON for scripts.

Consoles are made per call on the current ``sys.stdout``/``sys.stderr`` (so click's test
runner sees them); colour only when the stream is a terminal and ``NO_COLOR`` is unset.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO, cast

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

__all__ = [
    "cell",
    "console",
    "emit_json",
    "kv_table",
    "list_table",
    "one_line",
    "pretty",
    "show_block",
]


_PIPE_WIDTH = 2000


def console(*, err: bool = False) -> Console:
    """A console on stdout (or stderr); no colour and no wrapping tricks when piped."""
    stream = sys.stderr if err else sys.stdout
    terminal = stream.isatty()
    return Console(
        file=stream if terminal else cast(TextIO, _Trimmed(stream)),
        force_terminal=None if terminal else False,
        no_color=not terminal or None,
        highlight=False,
        soft_wrap=not terminal,
        # Piped: as wide as the content needs, so every row stays on one line for grep.
        width=None if terminal else _PIPE_WIDTH,
    )


class _Trimmed(io.TextIOBase):
    """A pipe without the spaces rich pads table rows with at the end of each line."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._pending = ""

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            self._stream.write(line.rstrip(" ") + "\n")
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._stream.write(self._pending)
            self._pending = ""
        self._stream.flush()

    def isatty(self) -> bool:
        return False


def emit_json(data: Any) -> None:
    """One JSON document on stdout, and nothing else there."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def pretty(value: Any) -> str:
    """JSON for people: indented, keys sorted."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def one_line(text: str | None, width: int = 60) -> str:
    """The first ``width`` characters of ``text`` on one line (``…`` when cut)."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def cell(value: Any) -> str:
    """A table cell: ``-`` for nothing, JSON for structures, text otherwise."""
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return str(value)


def list_table(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None
) -> Table:
    """A plain table with a header row; cells are text, never markup."""
    table = Table(title=title, box=None, header_style="bold", pad_edge=False)
    for i, name in enumerate(columns):  # ids (the first column) are never cut or folded
        table.add_column(name, no_wrap=i == 0, overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell(v)) for v in row))
    return table


def kv_table(pairs: Iterable[tuple[str, Any]]) -> Table:
    """Two columns, field and value, without a header."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in pairs:
        table.add_row(key, Text(cell(value)))
    return table


def show_block(out: Console, title: str, text: str) -> None:
    """A titled block of text, shown exactly (no markup, no Markdown)."""
    out.print(f"[bold]{escape(title)}[/bold]")
    out.print(Text(text if text else "(empty)"), soft_wrap=True)
    out.print()
