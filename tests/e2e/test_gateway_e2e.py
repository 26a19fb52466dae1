"""The real ``ops-trigger serve`` process on a free loopback port: happy and unhappy paths."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

STARTUP_TIMEOUT_S = 30.0


def _executable() -> str:
    beside = Path(sys.executable).parent / "ops-trigger"
    found = str(beside) if beside.exists() else shutil.which("ops-trigger")
    assert found, "ops-trigger is not installed in this environment"
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPS_", "ORCH_"))}
    env.update(extra)
    return env


@dataclass
class Gateway:
    url: str
    data_dir: Path
    stderr: Path
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")


def _wait_until_up(gateway: Gateway) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if gateway.process.poll() is not None:
            pytest.fail(f"serve exited with {gateway.process.returncode}:\n{gateway.log()}")
        try:
            if httpx.get(f"{gateway.url}/healthz", timeout=1.0).status_code == 200:
                # The banner is written right after the socket is bound.
                if "curl -H" in gateway.log():
                    return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"serve did not come up within {STARTUP_TIMEOUT_S} s:\n{gateway.log()}")


def _init(data_dir: Path) -> Path:
    """``ops-trigger init``: serve refuses a data dir without a store."""
    done = subprocess.run(
        [_executable(), "init", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert done.returncode == 0, done.stderr
    return data_dir


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    port = _free_port()
    data_dir = _init(tmp_path / "ops-data")
    stderr = tmp_path / "serve.stderr"
    with stderr.open("wb") as sink:
        process = subprocess.Popen(
            [
                _executable(),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                "--no-worker",
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=sink,
            env=_env(),
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
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_serve_happy_path(gateway: Gateway) -> None:
    tokens = {
        role: (gateway.data_dir / "tokens" / f"{role}.token").read_text().strip()
        for role in ("actions", "operator", "admin")
    }
    for role in tokens:
        path = gateway.data_dir / "tokens" / f"{role}.token"
        assert path.stat().st_mode & 0o777 == 0o600
    log = gateway.log()
    for role, token in tokens.items():
        assert token not in log
        assert str((gateway.data_dir / "tokens" / f"{role}.token").resolve()) in log

    status = httpx.get(
        f"{gateway.url}/ops/status", headers={"Authorization": f"Bearer {tokens['actions']}"}
    )
    assert status.status_code == 200
    assert status.json()["drafts"]["draft"] == 0
    assert status.headers["x-request-id"]

    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    draft = httpx.post(f"{gateway.url}/ops/drafts", json={"prompt": "p"}, headers=admin)
    assert draft.status_code == 201
    operator = {"Authorization": f"Bearer {tokens['operator']}"}
    approved = httpx.post(
        f"{gateway.url}/ops/drafts/{draft.json()['id']}/approve", headers=operator
    )
    assert approved.status_code == 200
    assert approved.json()["approved"]["approved_by"] == "operator:bootstrap-operator"

    document = httpx.get(f"{gateway.url}/openapi/actions.json?role=operator").json()
    assert document["paths"]["/ops/runs"]["post"]["x-openai-isConsequential"] is True
    # Without OPS_PUBLIC_URL the document names the address actually served.
    assert document["servers"] == [{"url": gateway.url}]


def test_the_printed_curl_line_works_as_printed(gateway: Gateway) -> None:
    if shutil.which("curl") is None or shutil.which("bash") is None:
        pytest.skip("curl or bash is not installed")
    lines = [
        line.strip() for line in gateway.log().splitlines() if line.strip().startswith("curl ")
    ]
    assert len(lines) == 1
    assert re.fullmatch(
        r'curl -H "Authorization: Bearer \$\(cat /\S+/tokens/actions\.token\)" '
        r"http://127\.0\.0\.1:\d+/ops/status",
        lines[0],
    )
    result = subprocess.run(
        ["bash", "-c", lines[0] + " --silent --show-error --max-time 10"],
        capture_output=True,
        text=True,
        timeout=30,
        env=_env(),
    )
    assert result.returncode == 0, result.stderr
    assert '"plan_revision"' in result.stdout


def test_serve_unhappy_paths(gateway: Gateway) -> None:
    anonymous = httpx.get(f"{gateway.url}/ops/status")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert anonymous.json()["code"] == "UNAUTHORIZED"

    token = (gateway.data_dir / "tokens" / "actions.token").read_text().strip()
    read_only = {"Authorization": f"Bearer {token}"}
    denied = httpx.post(f"{gateway.url}/ops/runs", json={"approved_id": "a_x"}, headers=read_only)
    assert denied.status_code == 403
    assert denied.json()["code"] == "FORBIDDEN_ROLE"
    assert token not in gateway.log()


def test_serve_refuses_a_short_env_token(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            _executable(),
            "serve",
            "--port",
            str(_free_port()),
            "--data-dir",
            str(_init(tmp_path / "d")),
            "--no-worker",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(ORCH_TOKEN="too-short"),
    )
    assert result.returncode != 0
    assert "ORCH_TOKEN is shorter than 16 characters" in result.stderr
    assert "Traceback" not in result.stderr
    assert "too-short" not in result.stderr


def test_serve_on_a_busy_port_fails_at_once_and_touches_nothing(tmp_path: Path) -> None:
    store = _init(tmp_path / "d")
    before = {p.relative_to(store): p.read_bytes() for p in store.rglob("*") if p.is_file()}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [_executable(), "serve", "--port", str(port), "--data-dir", str(tmp_path / "d")],
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(),
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    after = {p.relative_to(store): p.read_bytes() for p in store.rglob("*") if p.is_file()}
    assert after == before  # no migration, no token file, no worker


def test_a_token_revoked_from_the_cli_fails_on_the_next_request(gateway: Gateway) -> None:
    def cli(*args: str) -> str:
        done = subprocess.run(
            [_executable(), *args, "--data-dir", str(gateway.data_dir)],
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(),
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    token = cli("token", "create", "--role", "operator", "--name", "ci").strip()
    auth = {"Authorization": f"Bearer {token}"}
    for _ in range(3):  # the first answer fills the gateway's auth cache
        assert httpx.get(f"{gateway.url}/ops/status", headers=auth).status_code == 200
    cli("token", "revoke", "ci")
    refused = httpx.get(f"{gateway.url}/ops/status", headers=auth)
    assert refused.status_code == 401
    assert refused.json()["code"] == "UNAUTHORIZED"
