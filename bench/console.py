"""Console benchmark: server time of the review page and of the drafts list at 1 000 and
100 000 drafts, and how fast a change made by another process shows in the browser.

Prints:
  1. median time of GET /console/drafts (first page, status=draft) and GET
     /console/drafts/{id} (the review page of a two-revision draft with its diff), through
     the ASGI app in this process, at 1 000 and at 100 000 drafts, and the ratio 100k/1k
     (goal <= 1.5)
  2. against a real `ops-trigger serve` (no worker) with Debian's Chromium signed in:
     a. an approval made by another process (this one, over HTTP) -> the status page's
        count of approved drafts changes in the browser                      p50, p95
     b. a run cancelled by another process -> that run page's status reads "cancelled"
        in the browser (goal p50 <= 300 ms)                                   p50, p95

    .venv/bin/python bench/console.py [--calls 40] [--changes 15]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[1]
# bench/mcp.py would shadow the mcp package the gateway imports.
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from core.auth import Principal  # noqa: E402
from core.bootstrap import build_services, init_store  # noqa: E402
from core.config import Settings  # noqa: E402
from core.ids import IdKind, new_id  # noqa: E402
from core.models import DraftIn, DraftPatch, Role  # noqa: E402
from core.timeutil import now_ts  # noqa: E402

SMALL, LARGE = 1_000, 100_000
ADMIN_TOKEN = "bench-console-admin-token-0123456789"
OPERATOR_TOKEN = "bench-console-operator-token-0123456789"
ORIGIN = "https://testserver"
AUTHOR = Principal(role=Role.ADMIN, name="bench")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip


def _say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _seed(data_dir: Path, count: int) -> None:
    """``count`` drafts (each with its revision row) written in one raw transaction."""
    init_store(Settings(data_dir=data_dir))
    conn = sqlite3.connect(data_dir / "ops.db", isolation_level=None)
    now, scope = now_ts(), json.dumps({"files": [], "agents": []})
    content = "content line\n" * 40
    rows = [(new_id(IdKind.DRAFT), f"prompt {i}") for i in range(count)]
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO drafts (id, prompt, content, context, task_id, scope, status, revision, "
        "created_at, updated_at, created_by) VALUES (?, ?, ?, '{}', NULL, ?, 'draft', 1, ?, ?, "
        "'admin:bench')",
        [(i, p, content, scope, now, now) for i, p in rows],
    )
    conn.executemany(
        "INSERT INTO draft_revisions (draft_id, revision, prompt, content, context, task_id, "
        "scope, created_by, created_at) VALUES (?, 1, ?, ?, '{}', NULL, ?, 'admin:bench', ?)",
        [(i, p, content, scope, now) for i, p in rows],
    )
    conn.execute("COMMIT")
    conn.close()


class Pages:
    """The console over one seeded store, signed in as an operator (ASGI, in process)."""

    def __init__(self, root: Path, count: int) -> None:
        from fastapi.testclient import TestClient

        from gateway.app import create_app

        data_dir = root / f"pages-{count}"
        _seed(data_dir, count)
        settings = Settings(
            data_dir=data_dir,
            operator_token=SecretStr(OPERATOR_TOKEN),
            public_url=ORIGIN,
            rate_limit_per_minute=10_000_000,
        )
        self.services = build_services(settings)
        lines = "\n".join(f"line {n}" for n in range(200))
        data = DraftIn(prompt="review me", content=lines)
        draft = self.services.drafts.create(data=data, actor=AUTHOR)
        self.services.drafts.update(
            draft_id=draft.id,
            patch=DraftPatch(content=lines.replace("line 100", "line one hundred")),
            actor=AUTHOR,
        )
        app = create_app(settings, services=self.services)
        self.client = TestClient(app, base_url=ORIGIN, follow_redirects=False)
        page = self.client.get("/console/sign-in")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        form = {"csrf": csrf.group(1), "token": OPERATOR_TOKEN}
        signed = self.client.post("/console/sign-in", headers={"Origin": ORIGIN}, data=form)
        assert signed.status_code == 303, signed.text
        self.paths = {
            "list": "/console/drafts?status=draft",
            "review": f"/console/drafts/{draft.id}",
        }
        self.timings: dict[str, list[float]] = {name: [] for name in self.paths}

    def measure(self) -> None:
        for name, path in self.paths.items():
            start = time.perf_counter()
            answer = self.client.get(path)
            self.timings[name].append((time.perf_counter() - start) * 1000)
            assert answer.status_code == 200

    def close(self) -> None:
        self.client.close()
        self.services.close()


def page_times(root: Path, calls: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median ms per page at SMALL and LARGE drafts, measured interleaved."""
    small, large = Pages(root, SMALL), Pages(root, LARGE)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the app's imports set up logging
    try:
        for _ in range(5):  # warm up
            small.measure()
            large.measure()
        for pages in (small, large):
            for values in pages.timings.values():
                values.clear()
        for _ in range(calls):
            small.measure()
            large.measure()
        return (
            {k: statistics.median(v) for k, v in small.timings.items()},
            {k: statistics.median(v) for k, v in large.timings.items()},
        )
    finally:
        small.close()
        large.close()


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_WATCH = """([selector, wanted]) => {
    window.__changedAt = null;
    const check = () => {
        const el = document.querySelector(selector);
        if (el && el.textContent.trim() !== wanted[0] && window.__changedAt === null) {
            window.__changedAt = Date.now();
        }
    };
    new MutationObserver(check).observe(document.body, {subtree: true, childList: true,
                                                        characterData: true});
}"""


def _wait_changed(page: object, timeout_s: float = 10.0) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = page.evaluate("window.__changedAt")  # type: ignore[attr-defined]
        if value is not None:
            return float(value)
        time.sleep(0.005)
    raise RuntimeError("the page did not change")


def _stream_open(page: object) -> None:
    page.wait_for_function(  # type: ignore[attr-defined]
        "() => document.querySelector('[data-live-types]').liveSource.readyState === 1"
    )


def live_latencies(root: Path, changes: int) -> tuple[list[float], list[float]]:
    """(approval -> status page, cancel -> run page) in ms, each made by this process."""
    from playwright.sync_api import sync_playwright

    data_dir = root / "live"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPS_", "ORCH_"))}
    env.update(ORCH_TOKEN=ADMIN_TOKEN, ORCH_OPERATOR_TOKEN=OPERATOR_TOKEN,
               OPS_DATA_DIR=str(data_dir), OPS_RATE_LIMIT_PER_MINUTE="1000000")  # fmt: skip
    exe = str(Path(sys.executable).parent / "ops-trigger")
    subprocess.run([exe, "init"], env=env, check=True, capture_output=True)
    port = _port()
    url = f"http://127.0.0.1:{port}"
    log = (root / "serve.log").open("wb")
    process = subprocess.Popen(
        [exe, "serve", "--host", "127.0.0.1", "--port", str(port), "--no-worker"],
        env=env, stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    approvals: list[float] = []
    cancels: list[float] = []
    try:
        for _ in range(300):
            try:
                if api.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                tempfile.mkdtemp(prefix="bench-chromium-"), executable_path=CHROMIUM,
                args=CHROMIUM_ARGS, headless=True,
            )  # fmt: skip
            page = context.new_page()
            page.goto(f"{url}/console/sign-in")
            page.fill("#token", OPERATOR_TOKEN)
            page.click("button[type=submit]")
            page.wait_for_selector("[data-actor]")
            for _ in range(changes):
                draft = api.post("/ops/drafts", json={"prompt": "p", "content": "c"}).json()
                page.goto(f"{url}/console")
                _stream_open(page)
                shown = page.inner_text("a[href='/console/drafts?status=approved']")
                page.evaluate(_WATCH, ["a[href='/console/drafts?status=approved']", [shown]])
                start = time.time() * 1000
                api.post(f"/ops/drafts/{draft['id']}/approve", json={"auto_run": False})
                approvals.append(_wait_changed(page) - start)
            item = api.post("/ops/drafts", json={"prompt": "run me", "content": "c"}).json()
            approved = api.post(f"/ops/drafts/{item['id']}/approve", json={}).json()["approved"]
            for _ in range(changes):
                run = api.post("/ops/runs", json={"approved_id": approved["id"]}).json()
                page.goto(f"{url}/console/runs/{run['id']}")
                _stream_open(page)
                page.evaluate(_WATCH, ["#run-status", ["pending"]])
                start = time.time() * 1000
                api.post(f"/ops/runs/{run['id']}/cancel")
                cancels.append(_wait_changed(page) - start)
                assert page.inner_text("#run-status") == "cancelled"
            context.close()
    finally:
        api.close()
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
        log.close()
    return approvals, cancels


def main() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.disable(logging.INFO)  # migrations and request logs (the MCP SDK sets INFO up)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--changes", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _say(f"1. server time (ASGI in process, median of {args.calls})")
        small, large = page_times(root, args.calls)
        for label, i in (("drafts list", "list"), ("review page", "review")):
            ratio = large[i] / small[i]
            _say(f"   {label:<12} {SMALL:>7} drafts {small[i]:7.2f} ms   {LARGE:>7} drafts "
                 f"{large[i]:7.2f} ms   ratio {ratio:4.2f} (goal <= 1.5)")  # fmt: skip
        if not Path(CHROMIUM).exists():
            _say(f"2. skipped: {CHROMIUM} is not installed")
            return
        approvals, cancels = live_latencies(root, args.changes)
        _say(f"2. another process changes something; the browser shows it ({args.changes} each)")
        _say(
            f"   a. approval -> status page count    p50 {_pct(approvals, 0.5):6.1f} ms   "
            f"p95 {_pct(approvals, 0.95):6.1f} ms"
        )
        _say(
            f"   b. cancel   -> run page status      p50 {_pct(cancels, 0.5):6.1f} ms   "
            f"p95 {_pct(cancels, 0.95):6.1f} ms   (goal p50 <= 300 ms)"
        )


if __name__ == "__main__":
    main()
