"""``ops-trigger mcp`` exits at the end of its input, even while its store is still being
built in the background (a client that spawns it for one question waits for the exit)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from core.bootstrap import Services

HANG_GUARD_S = 60
WARM_UP_STARTED = "test: store build started"

# The real server, with a store build that never finishes: the process can only exit if
# its exit does not wait for the build.
_BLOCKED_BUILD = f"""
import sys, threading
import core.bootstrap

def build_services(*args, **kwargs):
    sys.stderr.write({WARM_UP_STARTED!r} + "\\n")
    sys.stderr.flush()
    threading.Event().wait()

core.bootstrap.build_services = build_services
sys.argv = ["ops-trigger", "mcp", "--data-dir", sys.argv[1]]
from cli.main import main
main()
"""


def _send(stdin: IO[bytes], message: dict[str, Any]) -> None:
    stdin.write(json.dumps({"jsonrpc": "2.0", **message}).encode() + b"\n")
    stdin.flush()


def _answer(stdout: IO[bytes], request_id: int) -> dict[str, Any]:
    while True:
        line = stdout.readline()
        assert line, "the server closed its output before answering"
        message: dict[str, Any] = json.loads(line)
        if message.get("id") == request_id:
            return message


def test_the_server_exits_at_end_of_input_while_its_store_is_being_built(
    services: Services, data_dir: Path
) -> None:
    services.close()
    process = subprocess.Popen(
        [sys.executable, "-c", _BLOCKED_BUILD, str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"PATH": ""},
    )
    assert process.stdin and process.stdout and process.stderr
    try:
        _send(
            process.stdin,
            {
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "test", "version": "0"},
                },
            },
        )
        assert "result" in _answer(process.stdout, 1)
        _send(process.stdin, {"method": "notifications/initialized"})
        _send(process.stdin, {"id": 2, "method": "tools/list", "params": {}})
        tools = _answer(process.stdout, 2)["result"]["tools"]
        assert {tool["name"] for tool in tools} >= {"get_status", "get_approved"}
        # The change feed starts building the store once the first request is answered.
        for line in process.stderr:
            if line.decode().strip() == WARM_UP_STARTED:
                break
        else:
            raise AssertionError("the store build never started")
        process.stdin.close()
        assert process.wait(timeout=HANG_GUARD_S) == 0
        assert process.stdout.read() == b""  # nothing but protocol messages, then EOF
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pipe in (process.stdin, process.stdout, process.stderr):
            pipe.close()
