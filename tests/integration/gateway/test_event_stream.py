"""GET /ops/events and ?follow=true on a real uvicorn (TestClient buffers whole answers)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from core.auth import Principal
from core.bootstrap import Services
from core.config import Settings
from core.models import DraftIn, RunStatus
from gateway.app import create_app
from tests.integration.gateway.conftest import TOKENS

AUTH = {"Authorization": f"Bearer {TOKENS['actions']}"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(event_keepalive_s=0.2)


@pytest.fixture
def base_url(settings: Settings, services: Services) -> Iterator[str]:
    port = _free_port()
    app = create_app(settings, services=services)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def _messages(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """SSE messages as dicts (``comment`` for comment lines)."""
    current: dict[str, Any] = {}
    for line in lines:
        if line == "":
            if current:
                yield current
            current = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            key, _, value = line.partition(":")
            current[key] = value.removeprefix(" ")


def _open(client: httpx.Client, url: str, **headers: str) -> Any:
    return client.stream("GET", url, headers=AUTH | headers, timeout=20)


def test_resume_with_last_event_id_gets_every_later_event_once_in_order(
    base_url: str, services: Services, admin: Principal
) -> None:
    with httpx.Client() as client:
        with _open(client, f"{base_url}/ops/events?types=draft.created") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            messages = _messages(response.iter_lines())
            assert next(messages) == {"comment": "stream open"}
            first = services.drafts.create(data=DraftIn(prompt="one"), actor=admin)
            message = next(m for m in messages if "event" in m)
            assert message["event"] == "draft.created"
            assert json.loads(message["data"])["subject"] == first.id
            last_id = message["id"]
        # Disconnected: these happen while nobody listens.
        later = [
            services.drafts.create(data=DraftIn(prompt=f"n{i}"), actor=admin) for i in range(5)
        ]
        services.plan.get()
        with _open(client, f"{base_url}/ops/events?types=draft.created&after=0",
                   **{"Last-Event-ID": last_id}) as response:  # fmt: skip
            messages = _messages(response.iter_lines())
            got = []
            for m in messages:
                if "event" in m:
                    got.append(m)
                if len(got) == 5:
                    break
            assert [json.loads(m["data"])["subject"] for m in got] == [d.id for d in later]
            seqs = [int(m["id"]) for m in got]
            assert seqs == sorted(seqs) and seqs[0] > int(last_id)
            # Nothing else queued: the next message is a keep-alive comment.
            assert next(messages) == {"comment": "keep-alive"}


def test_unknown_type_and_bad_resume_point_are_422(base_url: str) -> None:
    with httpx.Client() as client:
        bad = client.get(f"{base_url}/ops/events?types=draft.created,nope", headers=AUTH)
        assert bad.status_code == 422 and bad.json()["code"] == "VALIDATION_ERROR"
        assert "nope" in bad.json()["detail"]
        bad_id = client.get(f"{base_url}/ops/events", headers=AUTH | {"Last-Event-ID": "x"})
        assert bad_id.status_code == 422
        anonymous = client.get(f"{base_url}/ops/events")
        assert anonymous.status_code == 401


def test_follow_streams_a_runs_log_until_it_finishes(
    base_url: str, services: Services, admin: Principal, operator: Principal
) -> None:
    draft = services.drafts.create(data=DraftIn(prompt="p", content="c"), actor=admin)
    run = services.approvals.approve(draft_id=draft.id, actor=operator, auto_run=True).run
    assert run is not None
    claim = services.runs.claim_next(worker_id="w1", lease_s=30)
    assert claim is not None
    with httpx.Client() as client:
        url = f"{base_url}/ops/runs/{run.id}/log?follow=true"
        with _open(client, url) as response:
            messages = _messages(response.iter_lines())
            assert next(messages) == {"comment": "stream open"}
            first = next(m for m in messages if "event" in m)
            assert first["event"] == "run.log" and json.loads(first["data"])["seq"] == 1
            services.runs.append_log(run_id=run.id, level="info", msg="halfway")
            line = next(m for m in messages if "event" in m)
            assert json.loads(line["data"])["msg"] == "halfway" and line["id"] == "2"
            services.runs.finish(
                run_id=run.id, worker_id="w1", status=RunStatus.DONE, output="x", log="all done"
            )
            rest = [m for m in messages if "event" in m]  # the stream ends by itself
        assert [m["event"] for m in rest] == ["run.log", "run.finished"]
        assert json.loads(rest[-1]["data"])["status"] == "done"
        # A finished run: its whole log, then the end; the JSON page is unchanged.
        with _open(client, url + "&after=1") as response:
            done = [m for m in _messages(response.iter_lines()) if "event" in m]
        assert [m.get("id") for m in done] == ["2", "3", None]
        page = client.get(f"{base_url}/ops/runs/{run.id}/log", headers=AUTH).json()
        assert [item["seq"] for item in page["items"]] == [1, 2, 3]
        missing = client.get(f"{base_url}/ops/runs/r_01KBAAAAAAAAAAAAAAAAAAAAAA/log?follow=true",
                             headers=AUTH)  # fmt: skip
        assert missing.status_code == 404


def test_200_idle_streams_then_one_event_reaches_all(
    base_url: str, services: Services, admin: Principal
) -> None:
    count = 200

    async def main() -> list[str]:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            opened = asyncio.Event()
            ready = 0

            async def listen() -> str:
                nonlocal ready
                async with client.stream("GET", f"{base_url}/ops/events", headers=AUTH) as r:
                    lines = r.aiter_lines()
                    async for line in lines:
                        if line.startswith(": stream open"):
                            ready += 1
                            if ready == count:
                                opened.set()
                        elif line.startswith("data:"):
                            return str(json.loads(line[5:])["subject"])
                return ""

            tasks = [asyncio.create_task(listen()) for _ in range(count)]
            await asyncio.wait_for(opened.wait(), timeout=60)
            await asyncio.to_thread(
                services.drafts.create, data=DraftIn(prompt="for all"), actor=admin
            )
            return await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)

    subjects = asyncio.run(main())
    assert len(subjects) == count and len(set(subjects)) == 1 and subjects[0].startswith("d_")


def test_the_events_command_prints_events_as_they_come(
    base_url: str, services: Services, admin: Principal
) -> None:
    import os
    import subprocess
    import sys

    first = services.drafts.create(data=DraftIn(prompt="before"), actor=admin)
    command = [sys.executable, "-c", "from cli.main import main; main()", "events", "--json"]
    command += ["--url", base_url, "--token", TOKENS["actions"], "--types", "draft.created"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPS_")}
    with subprocess.Popen(command + ["--after", "0"], stdout=subprocess.PIPE, env=env) as child:
        try:
            assert child.stdout is not None
            assert json.loads(child.stdout.readline())["subject"] == first.id
            second = services.drafts.create(data=DraftIn(prompt="after"), actor=admin)
            event = json.loads(child.stdout.readline())
            assert event["subject"] == second.id and event["type"] == "draft.created"
        finally:
            child.terminate()
    bad = subprocess.run(
        command + ["--types", "nope"], capture_output=True, text=True, env=env, timeout=60
    )
    assert bad.returncode != 0 and "VALIDATION_ERROR" in bad.stderr
