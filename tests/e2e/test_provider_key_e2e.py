"""Acceptance for keys at rest, against a real ``ops-trigger serve`` with its run worker: a key
set through ``PUT /ops/provider`` is nowhere in the raw ``ops.db`` or ``ops.db-wal``, runs
execute with it (a loopback provider checks the Authorization header it receives), and keep
doing so after ``ops-trigger secrets rotate`` run beside the live gateway."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_gateway_e2e import (
    Gateway,
    _env,
    _executable,
    _free_port,
    _init,
    _wait_until_up,
)
from tests.fake_llm import FakeLlm, FakeLlmServer

ADMIN = "e2e-key-admin-token-0123456789"
KEY = "sk-e2e-at-rest-4b7e1c9d2a8f6e3b5c0d"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
def provider() -> Iterator[FakeLlmServer]:
    with FakeLlmServer(FakeLlm(required_key=KEY)) as server:
        yield server


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    port = _free_port()
    data_dir = _init(tmp_path / "ops-data")
    stderr = tmp_path / "serve.stderr"
    with stderr.open("wb") as sink:
        process = subprocess.Popen(
            [_executable(), "serve", "--port", str(port), "--data-dir", str(data_dir)],
            stdout=subprocess.DEVNULL,
            stderr=sink,
            env=_env(ORCH_TOKEN=ADMIN),
            cwd=tmp_path,
        )
    running = Gateway(f"http://127.0.0.1:{port}", data_dir, stderr, process)
    try:
        _wait_until_up(running)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _raw(data_dir: Path) -> bytes:
    return b"".join(
        (data_dir / name).read_bytes()
        for name in ("ops.db", "ops.db-wal")
        if (data_dir / name).exists()
    )


def _run_to_the_end(gateway: Gateway, prompt: str) -> dict[str, object]:
    draft = httpx.post(
        f"{gateway.url}/ops/drafts", json={"prompt": prompt, "content": "c"}, headers=AUTH
    )
    assert draft.status_code == 201, draft.text
    approved = httpx.post(
        f"{gateway.url}/ops/drafts/{draft.json()['id']}/approve",
        json={"auto_run": True},
        headers=AUTH,
    )
    assert approved.status_code == 200, approved.text
    run_id = approved.json()["run"]["id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        run: dict[str, object] = httpx.get(f"{gateway.url}/ops/runs/{run_id}", headers=AUTH).json()
        if run["status"] in ("done", "error", "cancelled"):
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not finish")


def test_a_key_set_over_http_is_encrypted_at_rest_and_survives_rotation(
    gateway: Gateway, provider: FakeLlmServer
) -> None:
    put = httpx.put(
        f"{gateway.url}/ops/provider",
        json={"providers": {"fake": {"base_url": provider.url, "model": "m", "api_key": KEY}}},
        headers=AUTH,
    )
    assert put.status_code == 200, put.text
    assert put.json()["providers"]["fake"]["api_key_set"] is True
    first = _run_to_the_end(gateway, "first run")
    assert first["status"] == "done", first
    assert provider.app.records_containing("first run")[0].authorization == f"Bearer {KEY}"
    raw = _raw(gateway.data_dir)
    assert raw and KEY.encode() not in raw and KEY[-12:].encode() not in raw
    key_file = gateway.data_dir / "secret.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.read_bytes().strip() not in raw

    rotate = subprocess.run(
        [_executable(), "secrets", "rotate", "--data-dir", str(gateway.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert rotate.returncode == 0, rotate.stderr
    assert "Re-encrypted 1 provider key" in rotate.stdout
    second = _run_to_the_end(gateway, "after rotation")
    assert second["status"] == "done", second
    assert provider.app.records_containing("after rotation")[0].authorization == f"Bearer {KEY}"
    assert KEY.encode() not in _raw(gateway.data_dir)
    log = gateway.log()
    assert KEY not in log and KEY[-12:] not in log and "Traceback" not in log
