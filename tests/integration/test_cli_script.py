"""The real ``ops-trigger`` console script in a subprocess: init, and audit verify after a
hand edit of the SQLite file."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("ops-trigger")


def _ops(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "cli.main"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPS_", "ORCH_"))}
    return subprocess.run(
        [*command, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    result = _ops("init", data_dir=path)
    assert result.returncode == 0, result.stderr
    return path


def test_init_through_the_console_script(store: Path) -> None:
    for role in ("admin", "operator", "agent", "actions"):
        assert stat.S_IMODE((store / "tokens" / f"{role}.token").stat().st_mode) == 0o600
    again = _ops("init", data_dir=store)
    assert again.returncode == 0 and "nothing changed" in again.stdout


@pytest.mark.parametrize(
    "edit, reason",
    [
        ("UPDATE audit SET actor = 'admin:mallory' WHERE seq = 2", "entry 2: hash does not match"),
        ('UPDATE audit SET detail = \'{"role": "admin"}\' WHERE seq = 2', "entry 2: hash"),
        ("UPDATE audit SET detail = 'not json' WHERE seq = 2", "entry 2: hash"),
        ("DELETE FROM audit WHERE seq = 2", "entry 3: expected sequence 2"),
        (
            "UPDATE audit SET hash = (CASE WHEN substr(hash, 1, 1) = '0' THEN '1' ELSE '0' END)"
            " || substr(hash, 2) WHERE seq = 3",
            "entry 3: hash does not match",
        ),
    ],
    ids=["actor", "detail", "not-json", "deleted", "hash"],
)
def test_audit_verify_fails_naming_the_edited_entry(store: Path, edit: str, reason: str) -> None:
    ok = _ops("audit", "verify", data_dir=store)
    assert ok.returncode == 0 and "4 entries verified" in ok.stdout
    with closing(sqlite3.connect(store / "ops.db")) as conn:
        conn.execute(edit)
        conn.commit()
    broken = _ops("audit", "verify", data_dir=store)
    assert broken.returncode != 0
    assert reason in broken.stderr, broken.stderr
    assert "Traceback" not in broken.stderr


def test_ctrl_c_stops_serve_cleanly(store: Path) -> None:
    """SIGINT (Ctrl-C): the gateway shuts down and the command exits 0, without 'Aborted!'."""
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "cli.main"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPS_", "ORCH_"))}
    proc = subprocess.Popen(
        [*command, "serve", "--no-worker", "--port", "0", "--data-dir", str(store)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # the banner comes once the socket is listening
            if "listening on" in line:
                break
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=30)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, rest
    assert "Aborted" not in rest and "Traceback" not in rest


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["token", "create", "--role", "root", "--name", "x"], "'root' is not one of"),
        (["import"], "Missing argument 'DIRECTORY'"),
        (["nonsense"], "No such command 'nonsense'"),
    ],
    ids=["bad-role", "missing-argument", "unknown-command"],
)
def test_usage_errors_are_one_line(store: Path, args: list[str], fragment: str) -> None:
    done = _ops(*args, data_dir=store)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0] and "--help" in lines[0], done.stderr
    assert done.stdout == ""


def test_a_data_dir_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    done = _ops("init", data_dir=a_file)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "is a file" in done.stderr


def test_audit_verify_on_a_mistyped_data_dir_is_one_line_and_creates_nothing(
    tmp_path: Path,
) -> None:
    typo = tmp_path / "typo"
    done = _ops("audit", "verify", data_dir=typo)
    assert done.returncode == 1
    assert done.stdout == "" and "Audit chain ok" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert f"no store at {typo / 'ops.db'}" in lines[0] and "ops-trigger init" in lines[0]
    assert not typo.exists()
