"""The ``ops-trigger`` console script against a real ``ops-trigger serve`` process on a free
loopback port: ``--json`` over a pipe, one-line problems, and ``drafts approve`` asking on a
real terminal (a pty) and binding the hash it showed."""

from __future__ import annotations

import errno
import json
import os
import pty
import select
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e import test_gateway_e2e as serve_e2e
from tests.e2e.test_gateway_e2e import Gateway, _env, _executable

TIMEOUT_S = 60.0

gateway = serve_e2e.gateway  # the fixture: a real `ops-trigger serve` on a free port


def _admin(gateway: Gateway) -> httpx.Client:
    token = (gateway.data_dir / "tokens" / "admin.token").read_text().strip()
    return httpx.Client(
        base_url=gateway.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def _ops(gateway: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    """The console script as an operator: the token file found through --data-dir."""
    return subprocess.run(
        [_executable(), *args, "--url", gateway.url, "--data-dir", str(gateway.data_dir)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=_env(),
        stdin=subprocess.DEVNULL,
        check=False,
    )


class Terminal:
    """A child process on a pseudo-terminal: read what it shows, type answers."""

    def __init__(self, argv: list[str]) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=_env(TERM="xterm"), close_fds=True
        )
        os.close(slave)
        self.seen = b""

    def read_until(self, marker: bytes) -> bytes:
        deadline = time.monotonic() + TIMEOUT_S
        while marker not in self.seen:
            if time.monotonic() > deadline:
                raise AssertionError(f"{marker!r} never shown; saw {self.seen!r}")
            ready, _, _ = select.select([self.master], [], [], 0.5)
            if ready and not self._read():
                raise AssertionError(f"{marker!r} never shown; saw {self.seen!r}")
        return self.seen

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def finish(self) -> tuple[int, str]:
        while self._read():
            pass
        code = self.process.wait(timeout=TIMEOUT_S)
        os.close(self.master)
        return code, self.seen.decode(errors="replace")

    def _read(self) -> bool:
        try:
            chunk = os.read(self.master, 4096)
        except OSError as exc:  # EIO: the child closed the terminal
            if exc.errno == errno.EIO:
                return False
            raise
        self.seen += chunk
        return bool(chunk)


def test_json_over_a_pipe_and_one_line_problems(gateway: Gateway) -> None:
    with _admin(gateway) as admin:
        made = admin.post("/ops/drafts", json={"prompt": "p", "content": "c"}).json()
    listed = _ops(gateway, "drafts", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [d["id"] for d in json.loads(listed.stdout)["items"]] == [made["id"]]
    status = _ops(gateway, "status", "--json")
    assert json.loads(status.stdout)["drafts"]["draft"] == 1

    missing = _ops(gateway, "runs", "show", "r_01HZZZZZZZZZZZZZZZZZZZZZZZ")
    assert missing.returncode == 6 and missing.stdout == ""
    assert missing.stderr.strip().startswith("NOT_FOUND: ")
    assert len(missing.stderr.strip().splitlines()) == 1

    no_terminal = _ops(gateway, "drafts", "approve", made["id"])
    assert no_terminal.returncode == 1
    assert "--yes" in no_terminal.stderr and "Traceback" not in no_terminal.stderr


def test_an_unreachable_gateway_is_one_line_from_the_console_script(tmp_path: Path) -> None:
    done = subprocess.run(
        [_executable(), "status", "--url", "http://127.0.0.1:9", "--token", "x" * 20],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=_env(),
        check=False,
    )
    assert done.returncode == 3 and done.stdout == ""
    assert done.stderr.startswith("CONNECTION_ERROR: ") and done.stderr.count("\n") == 1


def _approve_on_a_terminal(gateway: Gateway, draft_id: str) -> Terminal:
    argv = [_executable(), "drafts", "approve", draft_id, "--no-auto-run",
            "--url", gateway.url, "--data-dir", str(gateway.data_dir)]  # fmt: skip
    terminal = Terminal(argv)
    terminal.read_until(b"Approve? [y/N]")
    return terminal


def test_approve_asks_on_a_terminal_and_approves_the_hash_it_showed(gateway: Gateway) -> None:
    with _admin(gateway) as admin:
        draft = admin.post("/ops/drafts", json={"prompt": "p", "content": "as shown"}).json()
        declined = _approve_on_a_terminal(gateway, draft["id"])
        declined.type("n\n")
        code, screen = declined.finish()
        assert code == 1 and "not approved" in screen
        assert admin.get("/ops/approved").json()["items"] == []

        accepted = _approve_on_a_terminal(gateway, draft["id"])
        assert draft["content_sha256"].encode() in accepted.seen
        accepted.type("y\n")
        code, screen = accepted.finish()
        assert code == 0, screen
        item = admin.get("/ops/approved").json()["items"][0]
        assert item["content_sha256"] == draft["content_sha256"]
        assert item["id"] in screen


@pytest.mark.parametrize("change", ["draft edit", "plan scope"])
def test_a_draft_changed_after_it_was_shown_is_not_approved(gateway: Gateway, change: str) -> None:
    with _admin(gateway) as admin:
        plan = {"tasks": [{"id": "t1", "agent": "coder", "scope": ["src/**"]}]}
        assert admin.put("/ops/plan", json=plan).status_code == 200
        body = {"prompt": "p", "content": "reviewed", "task_id": "t1"}
        draft = admin.post("/ops/drafts", json=body).json()
        terminal = _approve_on_a_terminal(gateway, draft["id"])
        assert b"reviewed" in terminal.seen and b"src/**" in terminal.seen
        # Someone changes what would be approved while the reviewer reads it.
        if change == "draft edit":
            edited = admin.put(f"/ops/drafts/{draft['id']}", json={"content": "swapped"})
        else:
            plan["tasks"][0]["scope"] = ["**"]
            edited = admin.put("/ops/plan", json=plan)
        assert edited.status_code == 200
        terminal.type("y\n")
        code, screen = terminal.finish()
        assert code == 9, screen
        last = [line for line in screen.splitlines() if line.strip()][-1]
        assert last.startswith("REVISION_MISMATCH: "), screen
        assert admin.get("/ops/approved").json()["items"] == []
        assert admin.get(f"/ops/drafts/{draft['id']}").json()["status"] == "draft"
