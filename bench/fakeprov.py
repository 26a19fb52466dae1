"""The async fake provider of the run benchmarks, with a check that it is not the bottleneck.

``tests/fake_llm.py``'s ``FakeLlm`` (an async ASGI app: each answer waits ``delay`` seconds
with ``asyncio``, so any number of calls wait at once) served by uvicorn in its own process
on 127.0.0.1, plus ``GET /bench/stats``: the calls answered, the most in flight at once, and
how long after the delay each answer went out (the fake's own overhead).

``summary(...)`` turns the stats and the process's CPU time into the line the benchmarks
print, and says whether the fake kept up.

    .venv/bin/python bench/fakeprov.py PORT DELAY      (serves until stopped)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
ROOT = _HERE.parent


def _app(delay: float) -> Any:
    from tests.fake_llm import FakeLlm

    fake = FakeLlm(delay=delay)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/bench/stats":
            with fake._lock:
                spans = [(r.received_at, r.finished_at) for r in fake.records if r.finished_at]
            body = json.dumps(_stats(spans, delay)).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})  # fmt: skip
            await send({"type": "http.response.body", "body": body})
            return
        await fake(scope, receive, send)

    return app


def _stats(spans: list[tuple[float, float]], delay: float) -> dict[str, float]:
    if not spans:
        return {"calls": 0, "max_in_flight": 0, "over_p50_ms": 0.0, "over_p99_ms": 0.0,
                "over_max_ms": 0.0, "over_mean_ms": 0.0}  # fmt: skip
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    live = peak = 0
    for _, step in edges:
        live += step
        peak = max(peak, live)
    over = sorted((b - a - delay) * 1000 for a, b in spans)
    return {
        "calls": len(spans),
        "max_in_flight": peak,
        "over_p50_ms": statistics.median(over),
        "over_p99_ms": over[min(len(over) - 1, int(0.99 * len(over)))],
        "over_max_ms": over[-1],
        "over_mean_ms": statistics.fmean(over),
    }


class FakeProvider:
    """The fake in a subprocess: ``url`` (root; ``/v1`` is added by the adapter), ``pid``."""

    def __init__(self, delay: float) -> None:
        from bench.benchlib import clean_env, free_port

        self.delay = delay
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, str(_HERE / "fakeprov.py"), str(port), str(delay)],
            cwd=ROOT,
            env=clean_env(PYTHONPATH=str(ROOT)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.stats()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.close()
                    raise SystemExit("the fake provider did not start") from None
                time.sleep(0.05)
        self._cpu0 = self.cpu()

    def stats(self) -> dict[str, float]:
        with urllib.request.urlopen(self.url + "/bench/stats", timeout=5) as answer:
            return json.loads(answer.read())  # type: ignore[no-any-return]

    def cpu(self) -> float:
        from bench.benchlib import cpu_seconds

        return cpu_seconds(self.proc.pid)

    def summary(self, wall_s: float, slots: int, run_s: float) -> tuple[str, bool]:
        """The line to print about the fake over the last ``wall_s`` seconds, and whether it
        kept up: under half a core, and its mean delay beyond the configured one at most 5 ms
        or a tenth of what a run took beyond that delay (``run_s``: the mean run, started to
        finished)."""
        stats = self.stats()
        cpu = self.cpu() - self._cpu0
        share = cpu / wall_s if wall_s > 0 else 0.0
        beyond_ms = max(0.0, (run_s - self.delay) * 1000)
        ok = share < 0.5 and stats["over_mean_ms"] <= max(5.0, beyond_ms / 10)
        line = (
            f"    fake provider: {stats['calls']:.0f} calls, at most "
            f"{stats['max_in_flight']:.0f} at once ({slots} slots), answered "
            f"{stats['over_p50_ms']:.1f} ms p50 / {stats['over_p99_ms']:.1f} ms p99 / "
            f"{stats['over_mean_ms']:.1f} ms mean after its {self.delay * 1000:.0f} ms delay (a "
            f"run took {beyond_ms:.0f} ms beyond it), CPU {share:.0%} of a core: "
            + ("not the bottleneck" if ok else "MAY BE THE BOTTLENECK")
        )
        return line, ok

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


if __name__ == "__main__":
    sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != _HERE]
    sys.path.insert(0, str(ROOT))
    import uvicorn

    uvicorn.run(
        _app(float(sys.argv[2])),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        lifespan="off",
        ws="none",
        access_log=False,
    )
