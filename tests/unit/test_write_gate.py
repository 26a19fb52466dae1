"""The SQLite write gate: one writer at a time, requests in arrival order, the run worker's
urgent transactions first, a waiter that gives up leaves the line."""

from __future__ import annotations

import threading
import time

from core.storage.gate import WriteGate


def queued(gate: WriteGate, count: int) -> None:
    """Wait until ``count`` writers wait at ``gate`` (they queue in this order)."""
    while len(gate._queue) + len(gate._urgent) < count:
        time.sleep(0.001)


def test_urgent_writers_go_first_and_the_others_in_arrival_order() -> None:
    gate = WriteGate()
    order: list[str] = []
    gate.acquire()

    def writer(name: str, urgent: bool) -> threading.Thread:
        def run() -> None:
            gate.acquire(urgent=urgent)
            order.append(name)
            gate.release()

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    threads = []
    for i, (name, urgent) in enumerate(
        [("request 1", False), ("request 2", False), ("finish", True), ("request 3", False)]
    ):
        threads.append(writer(name, urgent))
        queued(gate, i + 1)
    gate.release()
    for thread in threads:
        thread.join()
    assert order == ["finish", "request 1", "request 2", "request 3"]


def test_one_writer_at_a_time() -> None:
    gate = WriteGate()
    inside = 0
    overlaps = 0

    def run(urgent: bool) -> None:
        nonlocal inside, overlaps
        for _ in range(200):
            gate.acquire(urgent=urgent)
            inside += 1
            overlaps += inside != 1
            time.sleep(0)
            inside -= 1
            gate.release()

    threads = [threading.Thread(target=run, args=(i % 3 == 0,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == 0
    gate.acquire()  # free again at the end
    gate.release()
