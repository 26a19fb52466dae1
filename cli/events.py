"""``ops-trigger events``: print the gateway's events as they come (GET /ops/events)."""

from __future__ import annotations

import json
import sys

import click
from rich.text import Text

from cli.remote import Gateway, json_option, remote_command
from cli.render import console
from core.models import EVENT_TYPES

__all__ = ["events"]


def _summary(data: dict[str, object]) -> str:
    return " ".join(f"{key}={value}" for key, value in data.items() if value is not None)


@click.command("events")
@remote_command
@click.option(
    "--types",
    default=None,
    help=f"Comma-separated event types (of: {', '.join(EVENT_TYPES)}).",
)
@click.option("--after", type=click.IntRange(min=0), default=None, help="Start after this seq.")
@json_option
def events(gateway: Gateway, types: str | None, after: int | None, as_json: bool) -> None:
    """Print events as they are committed, until interrupted (one JSON line each with --json)."""
    out = console()
    stream = gateway.client.stream("/ops/events", params={"types": types, "after": after})
    try:
        for message in stream:
            event = message["data"]
            if as_json:
                sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
                sys.stdout.flush()
                continue
            line = Text()
            line.append(f"{event.get('seq')} ", style="dim")
            line.append(f"{event.get('ts')} ", style="dim")
            line.append(f"{event.get('type')} ", style="bold")
            line.append(f"{event.get('subject')} ")
            line.append(_summary(event.get("data") or {}))
            out.print(line, soft_wrap=True)
    except KeyboardInterrupt:
        pass
