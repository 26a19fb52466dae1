"""Webhook delivery benchmark: how fast a committed event reaches a receiver, and what a
receiver that hangs costs the approvals.

Prints, on SQLite (and PostgreSQL with --postgres URL):
  1. commit -> received by a loopback receiver, the delivery loop in the same process
     (its own thread, as the worker runs it)                                   p50, p95
  2. approve latency through the services with no webhook, then with a webhook whose
     receiver never answers                                                    p50, max

    .venv/bin/python bench/webhooks.py [--events 100] [--postgres URL]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.auth import Principal  # noqa: E402
from core.bootstrap import Services, build_services  # noqa: E402
from core.config import Settings  # noqa: E402
from core.models import DraftIn, Role  # noqa: E402
from core.webhooks.delivery import DispatcherThread, WebhookDispatcher  # noqa: E402
from core.webhooks.models import WebhookIn  # noqa: E402
from tests.webhook_receiver import receiver  # noqa: E402

ADMIN = Principal(role=Role.ADMIN, name="bench")
OPERATOR = Principal(role=Role.OPERATOR, name="bench")


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _delivery(services: Services, count: int) -> list[float]:
    """ms from just before each commit to the receiver's arrival time."""
    dispatcher = WebhookDispatcher(services, owner="bench")
    loop = DispatcherThread(dispatcher)
    loop.start()
    dispatcher.ready.wait(5)
    out: list[float] = []
    try:
        with receiver() as rx:
            services.webhooks.create(
                data=WebhookIn(url=rx.url, types=["draft.created"]), actor=ADMIN
            )
            for n in range(count):
                started = time.monotonic()
                services.drafts.create(data=DraftIn(prompt=f"p{n}", content="c"), actor=ADMIN)
                item = rx.wait_for(n + 1, timeout=10)[n]
                out.append((item.at - started) * 1000)
    finally:
        loop.stop()
    return out


def _approvals(services: Services, count: int, *, hanging: bool) -> list[float]:
    drafts = [
        services.drafts.create(data=DraftIn(prompt=f"a{n}", content="c"), actor=ADMIN)
        for n in range(count)
    ]
    if not hanging:
        times = []
        for draft in drafts:
            started = time.monotonic()
            services.approvals.approve(draft_id=draft.id, actor=OPERATOR)
            times.append((time.monotonic() - started) * 1000)
        return times
    dispatcher = WebhookDispatcher(services, owner="bench")
    loop = DispatcherThread(dispatcher)
    loop.start()
    dispatcher.ready.wait(5)
    try:
        with receiver(hang=True) as rx:
            services.webhooks.create(
                data=WebhookIn(url=rx.url, types=["draft.approved"]), actor=ADMIN
            )
            times = []
            for draft in drafts:
                started = time.monotonic()
                services.approvals.approve(draft_id=draft.id, actor=OPERATOR)
                times.append((time.monotonic() - started) * 1000)
            rx.wait_for(1)  # the receiver did hold a delivery meanwhile
    finally:
        loop.stop()
    return times


def _run(label: str, settings: Settings, events: int) -> None:
    services = build_services(settings)
    try:
        delivered = _delivery(services, events)
        _say(
            f"{label}: commit -> received  p50 {statistics.median(delivered):.1f} ms  "
            f"p95 {_pct(delivered, 0.95):.1f} ms  ({events} events)"
        )
        plain = _approvals(services, events, hanging=False)
        held = _approvals(services, events, hanging=True)
        _say(
            f"{label}: approve, no webhook      p50 {statistics.median(plain):.1f} ms  "
            f"max {max(plain):.1f} ms"
        )
        _say(
            f"{label}: approve, hanging receiver p50 {statistics.median(held):.1f} ms  "
            f"max {max(held):.1f} ms"
        )
    finally:
        services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--postgres", help="an empty PostgreSQL database URL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        common = {"webhook_allow_private": True, "webhook_timeout_s": 2.0}
        _run("sqlite", Settings(data_dir=Path(tmp) / "sqlite", **common), args.events)
        if args.postgres:
            pg = Settings(data_dir=Path(tmp) / "pg", database_url=args.postgres, **common)
            _run("postgresql", pg, args.events)


if __name__ == "__main__":
    main()
