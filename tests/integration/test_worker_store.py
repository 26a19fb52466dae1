"""The in-process SQLite write gate that keeps the worker's claims from starving behind
bursts."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from core.bootstrap import Services, build_services
from core.config import Settings
from core.errors import StorageError
from core.storage.gate import write_gate as _write_gate

# PostgreSQL serializes writers with its advisory lock (tests/integration/test_postgres.py).
pytestmark = pytest.mark.sqlite_only


def test_writers_on_one_file_share_one_gate(services: Services, settings: Settings) -> None:
    other = build_services(settings)
    try:
        gate = _write_gate(services._engine)
        assert gate is not None and gate is _write_gate(other._engine)
    finally:
        other.close()


def test_waiting_writers_are_served_in_arrival_order(services: Services) -> None:
    gate = _write_gate(services._engine)
    assert gate is not None
    order: list[str] = []
    gate.acquire()

    def writer(name: str) -> None:
        gate.acquire()
        order.append(name)
        gate.release()

    threads = []
    for name in ("first", "second", "third"):
        thread = threading.Thread(target=writer, args=(name,))
        thread.start()
        threads.append(thread)
        time.sleep(0.05)  # let it take its ticket before the next one arrives
    gate.release()
    for thread in threads:
        thread.join(timeout=5)
    assert order == ["first", "second", "third"]


def test_a_failed_transaction_start_frees_the_gate(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse() -> None:
        raise sa.exc.OperationalError("connect", {}, Exception("unable to open database file"))

    with monkeypatch.context() as patch:
        patch.setattr(services._engine, "connect", refuse)
        with pytest.raises(StorageError):
            services.maintenance.cleanup()
    done = threading.Event()

    def writer() -> None:
        services.maintenance.cleanup()
        done.set()

    threading.Thread(target=writer, daemon=True).start()
    assert done.wait(timeout=5)  # not stuck behind a ticket nobody will release
