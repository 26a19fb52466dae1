"""``ops-trigger agent exec`` against a real ``ops-trigger serve`` (with its run worker), with
a real ``sh -c`` command: done with stdout, a non-zero exit, Ctrl-C, and a cancel."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_gateway_e2e import Gateway as Serve
from tests.e2e.test_gateway_e2e import _env, _executable, _free_port, _init, _wait_until_up

LEASE_S = "3"


@dataclass
class Setup:
    serve: Serve
    operator: httpx.Client
    agent_token: Path

    def agent_run(self, agent: str = "coder") -> dict[str, Any]:
        draft = self.operator.post(
            "/ops/drafts",
            json={"prompt": "Say hello", "content": "to the world", "scope": {"agents": [agent]}},
            headers={"Authorization": f"Bearer {self._admin}"},
        )
        assert draft.status_code == 201, draft.text
        approved = self.operator.post(
            f"/ops/drafts/{draft.json()['id']}/approve",
            json={"auto_run": True, "executor": "agent", "agent": agent},
        )
        assert approved.status_code == 200, approved.text
        run: dict[str, Any] = approved.json()["run"]
        return run

    @property
    def _admin(self) -> str:
        return (self.serve.data_dir / "tokens" / "admin.token").read_text().strip()

    def run(self, run_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.operator.get(f"/ops/runs/{run_id}").json()
        return body

    def log(self, run_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.operator.get(f"/ops/runs/{run_id}/log").json()["items"]
        return items

    def agent_exec(self, script: str, *extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [
                _executable(),
                "agent",
                "exec",
                "--agent",
                "coder",
                "--once",
                "--wait",
                "5",
                "--url",
                self.serve.url,
                "--token-file",
                str(self.agent_token),
                *extra,
                "--",
                "sh",
                "-c",
                script,
            ],  # fmt: skip
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    port = _free_port()
    data_dir = _init(tmp_path / "ops-data")
    stderr = tmp_path / "serve.stderr"
    with stderr.open("wb") as sink:
        process = subprocess.Popen(
            [_executable(), "serve", "--host", "127.0.0.1", "--port", str(port),
             "--data-dir", str(data_dir)],
            stdout=subprocess.DEVNULL,
            stderr=sink,
            env=_env(OPS_RUN_LEASE_S=LEASE_S),
            cwd=tmp_path,
        )  # fmt: skip
    serve = Serve(f"http://127.0.0.1:{port}", data_dir, stderr, process)
    try:
        _wait_until_up(serve)
        token = (data_dir / "tokens" / "operator.token").read_text().strip()
        with httpx.Client(
            base_url=serve.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        ) as operator:
            yield Setup(serve, operator, data_dir / "tokens" / "agent.token")
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_exit_0_completes_the_run_with_stdout(setup: Setup) -> None:
    run = setup.agent_run()
    script = (
        'cat; echo "run=$OPS_RUN_ID approved=$OPS_APPROVED_ID sha=$OPS_CONTENT_SHA256"; '
        "echo note >&2"
    )
    done = setup.agent_exec(script)
    out, err = done.communicate(timeout=60)
    assert done.returncode == 0, err
    final = setup.run(run["id"])
    assert final["status"] == "done" and final["executor"] == "agent"
    assert final["output"] == (
        f"Say hello\n\nto the world\n"
        f"run={run['id']} approved={run['approved_id']} sha={run['content_sha256']}\n"
    )
    lines = [(line["level"], line["msg"]) for line in setup.log(run["id"])]
    assert ("info", "Say hello") in lines and ("warning", "note") in lines
    assert f"run {run['id']} done" in err


def test_a_non_zero_exit_fails_the_run(setup: Setup) -> None:
    run = setup.agent_run()
    done = setup.agent_exec("echo partial; echo broken >&2; exit 3")
    _, err = done.communicate(timeout=60)
    assert done.returncode == 20, err
    final = setup.run(run["id"])
    assert final["status"] == "error"
    assert final["error"].startswith("command exited with status 3") and "broken" in final["error"]
    assert ("info", "partial") in [(x["level"], x["msg"]) for x in setup.log(run["id"])]


def test_ctrl_c_fails_the_held_run_with_agent_stopped(setup: Setup, tmp_path: Path) -> None:
    run = setup.agent_run()
    marker = tmp_path / "child.pid"
    agent = setup.agent_exec(f"echo $$ > {marker}; echo started; sleep 60")
    # The command's output reaches the run's log while it still runs.
    _wait_for(lambda: any(x["msg"] == "started" for x in setup.log(run["id"])))
    child = int(marker.read_text())
    agent.send_signal(signal.SIGINT)
    _, err = agent.communicate(timeout=30)
    assert agent.returncode == 130, err
    final = setup.run(run["id"])
    assert final["status"] == "error" and final["error"] == "agent stopped"
    _wait_for(lambda: not _alive(child), timeout=10)  # the command was stopped too


def test_a_cancel_reaches_the_command_through_the_heartbeat(setup: Setup) -> None:
    run = setup.agent_run()
    agent = setup.agent_exec("echo working; sleep 60")
    _wait_for(lambda: setup.run(run["id"])["status"] == "running")
    cancel = setup.operator.post(f"/ops/runs/{run['id']}/cancel")
    assert cancel.status_code == 200 and cancel.json()["cancel_requested"] is True
    started = time.monotonic()
    _, err = agent.communicate(timeout=30)
    assert agent.returncode == 21, err
    assert time.monotonic() - started < float(LEASE_S) + 2  # the next heartbeat said so
    assert setup.run(run["id"])["status"] == "cancelled"
    # The embedded provider worker never touched the agent's run.
    worker_lines = [x["msg"] for x in setup.log(run["id"]) if "started by" in x["msg"]]
    assert worker_lines == []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
