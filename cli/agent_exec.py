"""``ops-trigger agent exec``: serve agent runs with any command-line agent.

For each claimed run the command starts in its own process group with the approved prompt
and content on stdin and ``OPS_RUN_ID``, ``OPS_APPROVED_ID``, ``OPS_CONTENT_SHA256`` (and
``OPS_AGENT``) in its environment. Its stdout and stderr lines go to the run's log in
batches while it runs; the lease is renewed every third of its length. Exit status 0
completes the run with the command's stdout, anything else fails it with the status. A
cancel request (answered on the heartbeat) or a lost lease stops the command; Ctrl-C stops
it, fails the run with "agent stopped" and exits 130.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO

import click

from cli.agent_client import AgentClient, Lease
from cli.client import CONNECTION_ERROR, ApiError, OpsClient
from cli.remote import EXIT_RUN_CANCELLED, EXIT_RUN_ERROR, Gateway, RemoteFailure, remote_command

__all__ = ["agent", "AgentRunner"]

FLUSH_S = 0.3  # log lines are sent in batches at most this often
MAX_BATCH = 200
MAX_LINE = 8000
MAX_OUTPUT = 512 * 1024  # bytes of stdout kept as the run's output (the tail)
KILL_GRACE_S = 3.0
EXIT_INTERRUPTED = 130
_BACKOFF_S = (1.0, 2.0, 5.0, 10.0)


def _say(message: str) -> None:
    click.echo(f"agent exec: {message}", err=True)


def stdin_text(approved: dict[str, object]) -> str:
    """What the command reads: the approved prompt, a blank line, the approved content."""
    prompt, content = str(approved.get("prompt") or ""), str(approved.get("content") or "")
    return f"{prompt}\n\n{content}\n" if content else f"{prompt}\n"


class _Child:
    """One command run: its process, its output readers and what they collected."""

    def __init__(self, command: Sequence[str], lease: Lease, agent: str) -> None:
        env = dict(os.environ)
        env.update(
            OPS_RUN_ID=lease.run_id,
            OPS_APPROVED_ID=str(lease.approved["id"]),
            OPS_CONTENT_SHA256=str(lease.approved["content_sha256"]),
            OPS_AGENT=agent,
        )
        self.lines: queue.Queue[dict[str, str]] = queue.Queue()
        self.stdout = bytearray()
        self.dropped = 0
        self.stderr_tail: list[str] = []
        self.process = subprocess.Popen(
            list(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # its own group: stopped as a whole, not by our Ctrl-C
        )
        assert self.process.stdin and self.process.stdout and self.process.stderr
        self._threads = [
            threading.Thread(
                target=self._feed, args=(self.process.stdin, stdin_text(lease.approved))
            ),
            threading.Thread(target=self._read, args=(self.process.stdout, "info", True)),
            threading.Thread(target=self._read, args=(self.process.stderr, "warning", False)),
        ]
        for thread in self._threads:
            thread.daemon = True
            thread.start()

    @staticmethod
    def _feed(pipe: IO[bytes], text: str) -> None:
        try:
            pipe.write(text.encode("utf-8", "replace"))
        except (BrokenPipeError, OSError):
            pass  # the command does not read its input: that is its business
        finally:
            try:
                pipe.close()
            except OSError:
                pass

    def _read(self, pipe: IO[bytes], level: str, keep: bool) -> None:
        for raw in iter(pipe.readline, b""):
            if keep:
                self.stdout += raw
                if len(self.stdout) > MAX_OUTPUT:
                    cut = len(self.stdout) - MAX_OUTPUT
                    del self.stdout[:cut]
                    self.dropped += cut
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not keep:
                self.stderr_tail = (self.stderr_tail + [text])[-5:]
            self.lines.put({"level": level, "msg": text[:MAX_LINE]})
        pipe.close()

    def drain(self) -> list[dict[str, str]]:
        batch: list[dict[str, str]] = []
        while len(batch) < MAX_BATCH:
            try:
                batch.append(self.lines.get_nowait())
            except queue.Empty:
                break
        return batch

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """End the command's whole process group: SIGTERM, then SIGKILL after a grace."""
        if self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, KILL_GRACE_S)):
            try:
                os.killpg(self.process.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def finish(self) -> int:
        """Wait for the readers once the command ended; its exit status."""
        status = self.process.wait()
        for thread in self._threads:
            thread.join(timeout=5)
        return status

    def output(self) -> str:
        text = bytes(self.stdout).decode("utf-8", "replace")
        if self.dropped:
            text = f"[... {self.dropped} earlier bytes of output omitted]\n" + text
        return text


def _exit_reason(status: int, stderr_tail: list[str]) -> str:
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = str(-status)
        reason = f"command killed by signal {name}"
    else:
        reason = f"command exited with status {status}"
    tail = "\n".join(line for line in stderr_tail if line.strip())
    return f"{reason}\n{tail}"[:8000] if tail else reason


class AgentRunner:
    """Claims runs for one agent and executes each with ``command``."""

    def __init__(self, api: AgentClient, command: Sequence[str], *, wait_s: float) -> None:
        self.api = api
        self.command = list(command)
        self.wait_s = wait_s
        self.held: Lease | None = None
        self.child: _Child | None = None

    def serve(self, *, once: bool) -> int:
        """Serve runs (one with ``once``); the exit status of the last run."""
        failures = 0
        while True:
            try:
                lease = self.api.claim(wait_s=self.wait_s)
            except ApiError as error:
                if error.code != CONNECTION_ERROR and error.status != 503:
                    raise
                pause = _BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)]
                failures += 1
                _say(f"{error.code}: {error.detail}; trying again in {pause:g} s")
                time.sleep(pause)
                continue
            failures = 0
            if lease is None:
                continue
            status = self.execute(lease)
            if once:
                return status

    def execute(self, lease: Lease) -> int:
        """Run the command for ``lease`` and report its end; an exit status for the CLI."""
        self.held = lease
        attempt = lease.run["attempt"]
        _say(f"claimed run {lease.run_id} (approved {lease.approved['id']}, attempt {attempt})")
        try:
            self.child = _Child(self.command, lease, self.api.agent)
        except OSError as exc:
            return self._end(lease, None, f"cannot start the command: {exc.strerror or exc}")
        child = self.child
        beat_every = max(0.2, lease.lease_s / 3)
        next_beat = time.monotonic() + beat_every
        pending: list[dict[str, str]] = []
        stop_reason: str | None = None
        while True:
            alive = child.running()
            pending += child.drain()
            try:
                if pending:
                    self.api.log(lease, pending)
                    pending = []
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + beat_every
                    if self.api.heartbeat(lease):
                        stop_reason = "cancel requested"
            except ApiError as error:
                if error.code == "LEASE_LOST":
                    _say(f"run {lease.run_id}: {error.detail}")
                    child.stop()
                    child.finish()
                    self.held = self.child = None
                    return 8
                if error.code != CONNECTION_ERROR:
                    raise
                _say(f"{error.code}: {error.detail}; keeping the lines for the next try")
            if stop_reason is not None:
                child.stop()
                break
            if not alive and child.lines.empty():
                break
            time.sleep(FLUSH_S if alive else 0.05)
        status = child.finish()
        rest = child.drain()
        while rest:
            try:
                self.api.log(lease, pending + rest)
            except ApiError as error:
                if error.code != CONNECTION_ERROR:
                    break
            pending, rest = [], child.drain()
        if stop_reason is not None:
            return self._end(lease, None, f"stopped: {stop_reason}")
        if status == 0:
            return self._end(lease, child.output(), None)
        return self._end(lease, None, _exit_reason(status, child.stderr_tail))

    def _end(self, lease: Lease, output: str | None, error: str | None) -> int:
        if error is None:
            assert output is not None
            final = self.api.complete(lease, output)
        else:
            final = self.api.fail(lease, error)
        self.held = self.child = None
        _say(
            f"run {lease.run_id} {final['status']}"
            + (f": {error.splitlines()[0]}" if error else "")
        )
        return {"done": 0, "cancelled": EXIT_RUN_CANCELLED}.get(final["status"], EXIT_RUN_ERROR)

    def interrupted(self) -> None:
        """Ctrl-C: stop the command and fail the run it held with "agent stopped"."""
        if self.child is not None:
            self.child.stop()
        lease, self.held, self.child = self.held, None, None
        if lease is not None:
            try:
                self.api.fail(lease, "agent stopped")
                _say(f"run {lease.run_id} failed: agent stopped")
            except ApiError as error:
                _say(f"could not report run {lease.run_id}: {error.code}: {error.detail}")


@click.group("agent")
def agent() -> None:
    """Serve agent runs (SPEC section 14) from a gateway."""


@agent.command("exec", context_settings={"ignore_unknown_options": True})
@remote_command
@click.option("--agent", "name", required=True, help="The agent name the runs are queued for.")
@click.option("--once", is_flag=True, help="Serve one run, then exit with its outcome.")
@click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(1, 30),
    default=25.0,
    show_default=True,
    help="Seconds each claim waits on the gateway (long poll).",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_command(
    gateway: Gateway, name: str, once: bool, wait_s: float, command: tuple[str, ...]
) -> None:
    """Claim runs for --agent and execute each with COMMAND (after --): prompt and content
    on stdin, output to the run's log, exit 0 completes it with stdout, else it fails."""
    client = OpsClient(gateway.url, gateway.token, timeout=wait_s + 15)
    runner = AgentRunner(AgentClient(client, name), command, wait_s=wait_s)
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        status = runner.serve(once=once)
    except KeyboardInterrupt:
        runner.interrupted()
        sys.exit(EXIT_INTERRUPTED)
    except ApiError as error:
        runner.interrupted()
        raise RemoteFailure.of(error) from None
    finally:
        signal.signal(signal.SIGINT, previous)
        client.close()
    sys.exit(status)
