"""The remote commands (status, plan, drafts, approved, runs) through click's CliRunner
against the real gateway on a free loopback port, with a fake OpenAI-compatible provider."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from tests.fake_llm import FakeLlmServer, reply_for
from tests.integration.live_gateway import ACTIONS, OPERATOR, LiveGateway

UNKNOWN_DRAFT = "d_01HZZZZZZZZZZZZZZZZZZZZZZZ"


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[LiveGateway]:
    with LiveGateway(tmp_path / "server-data") as gateway:
        yield gateway


@pytest.fixture
def fake() -> Iterator[FakeLlmServer]:
    with FakeLlmServer() as server:
        yield server


@pytest.fixture
def ops(gw: LiveGateway) -> Any:
    """``ops("drafts", "list")``: the command as the operator, against ``gw``."""

    def run(*args: str, token: str = OPERATOR, input: str | None = None) -> Result:
        return CliRunner().invoke(
            cli, [*args, "--url", gw.url, "--token", token], input=input, catch_exceptions=False
        )

    return run


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def one_line_problem(result: Result, code: str, exit_code: int) -> str:
    assert result.exit_code == exit_code, (result.exit_code, result.output)
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{code}: "), lines[0]
    assert "Traceback" not in result.output
    return lines[0]


def test_status_and_plan_show(gw: LiveGateway, ops: Any) -> None:
    gw.call("PUT", "/ops/plan", json={
        "title": "Demo", "objective": "Ship it", "constraints": ["no force pushes"],
        "tasks": [{"id": "t1", "title": "Write", "agent": "coder", "scope": ["src/**"]}],
    })  # fmt: skip
    table = ops("status")
    assert table.exit_code == 0, table.output
    assert "worker alive" in table.stdout and gw.url in table.stdout
    report = as_json(ops("status", "--json"))
    assert report["plan_revision"] == 1 and "drafts" in report

    shown = ops("plan", "show")
    assert shown.exit_code == 0, shown.output
    for text in ("Demo", "Ship it", "no force pushes", "t1", "coder", "src/**"):
        assert text in shown.stdout
    plan = as_json(ops("plan", "show", "--json"))
    assert plan["tasks"][0]["id"] == "t1"


def test_drafts_list_filters_and_pages(gw: LiveGateway, ops: Any) -> None:
    gw.call("PUT", "/ops/plan", json={"tasks": [{"id": "t1"}, {"id": "t2"}]})
    made = [gw.draft(f"prompt {i}", task_id="t1" if i < 2 else "t2") for i in range(3)]
    gw.call("POST", f"/ops/drafts/{made[0]['id']}/reject", json={"reason": "no"})

    first = as_json(ops("drafts", "list", "--json", "--limit", "2"))
    assert [d["id"] for d in first["items"]] == [made[2]["id"], made[1]["id"]]
    assert first["next_cursor"]
    second = as_json(
        ops("drafts", "list", "--json", "--limit", "2", "--cursor", first["next_cursor"])
    )
    assert [d["id"] for d in second["items"]] == [made[0]["id"]]
    every = as_json(ops("drafts", "list", "--json", "--all", "--limit", "1"))
    assert [d["id"] for d in every["items"]] == [d["id"] for d in reversed(made)]
    assert every["next_cursor"] is None
    rejected = as_json(ops("drafts", "list", "--json", "--status", "rejected"))
    assert [d["id"] for d in rejected["items"]] == [made[0]["id"]]
    of_t1 = as_json(ops("drafts", "list", "--json", "--task", "t1"))
    assert {d["id"] for d in of_t1["items"]} == {made[0]["id"], made[1]["id"]}

    table = ops("drafts", "list", "--limit", "2")
    assert table.exit_code == 0
    assert made[2]["id"] in table.stdout and made[0]["id"] not in table.stdout
    assert f"--cursor {first['next_cursor']}" in table.stderr  # how to read on, not in stdout
    bad = ops("drafts", "list", "--status", "pending")
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_drafts_reject_with_a_reason(gw: LiveGateway, ops: Any) -> None:
    draft = gw.draft("say no")
    done = ops("drafts", "reject", draft["id"], "--reason", "off [bold]topic[/bold]")
    assert done.exit_code == 0, done.output
    assert "off [bold]topic[/bold]" in done.stdout  # shown as text, never as markup
    assert gw.call("GET", f"/ops/drafts/{draft['id']}")["status"] == "rejected"
    again = ops("drafts", "reject", draft["id"], "--reason", "twice", "--json")
    one_line_problem(again, "CONFLICT_STATE", 8)
    missing = ops("drafts", "reject", draft["id"])
    assert missing.exit_code == 2 and "--reason" in missing.stderr


def test_problems_are_one_line_with_the_exit_code_of_their_class(gw: LiveGateway, ops: Any) -> None:
    draft = gw.draft("guarded")
    one_line_problem(ops("drafts", "show", "d_nope"), "INVALID_ID", 7)
    one_line_problem(ops("drafts", "show", UNKNOWN_DRAFT), "NOT_FOUND", 6)
    one_line_problem(ops("status", token="not-a-real-token-at-all"), "UNAUTHORIZED", 4)
    refused = ops("drafts", "reject", draft["id"], "--reason", "x", token=ACTIONS)
    one_line_problem(refused, "FORBIDDEN_ROLE", 5)
    one_line_problem(ops("runs", "create", draft["id"]), "INVALID_ID", 7)
    assert gw.call("GET", f"/ops/drafts/{draft['id']}")["status"] == "draft"


def test_an_unreachable_gateway_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago, now closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    runner = CliRunner()
    for url in (f"http://127.0.0.1:{port}", "htp:/nowhere", "http://"):
        done = runner.invoke(cli, ["status", "--url", url, "--token", OPERATOR])
        assert done.exit_code == 3, (url, done.output)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("CONNECTION_ERROR: "), done.stderr
        assert done.exception is None or isinstance(done.exception, SystemExit)


def test_the_token_comes_from_the_option_the_environment_or_a_file(
    gw: LiveGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    data_dir = tmp_path / "mine"
    (data_dir / "tokens").mkdir(parents=True)
    (data_dir / "tokens" / "operator.token").write_text(OPERATOR + "\n")
    by_default = runner.invoke(cli, ["status", "--url", gw.url, "--data-dir", str(data_dir)])
    assert by_default.exit_code == 0, by_default.output
    monkeypatch.setenv("OPS_DATA_DIR", str(data_dir))
    monkeypatch.setenv("OPS_URL", gw.url)
    assert runner.invoke(cli, ["status"]).exit_code == 0
    elsewhere = tmp_path / "actions.token"
    elsewhere.write_text(ACTIONS)
    draft = gw.draft("who may")
    with_file = runner.invoke(
        cli, ["drafts", "reject", draft["id"], "--reason", "x", "--token-file", str(elsewhere)]
    )
    one_line_problem(with_file, "FORBIDDEN_ROLE", 5)  # the file's token, not the default
    monkeypatch.setenv("OPS_TOKEN", "env-token-that-is-unknown-0123")
    one_line_problem(runner.invoke(cli, ["status"]), "UNAUTHORIZED", 4)
    # An explicit --token-file wins over OPS_TOKEN from the environment.
    assert runner.invoke(cli, ["status", "--token-file", str(elsewhere)]).exit_code == 0

    monkeypatch.delenv("OPS_TOKEN")
    monkeypatch.setenv("OPS_DATA_DIR", str(tmp_path / "empty"))
    none = runner.invoke(cli, ["status"])
    assert none.exit_code == 2
    assert "no token" in none.stderr and str(tmp_path / "empty") in none.stderr
    both = runner.invoke(cli, ["status", "--token", OPERATOR, "--token-file", str(elsewhere)])
    assert both.exit_code == 2 and "not both" in both.stderr
    (tmp_path / "blank.token").write_text("\n")
    blank = runner.invoke(cli, ["status", "--token-file", str(tmp_path / "blank.token")])
    assert blank.exit_code == 2 and "empty" in blank.stderr


def test_approved_list_and_show(gw: LiveGateway, ops: Any) -> None:
    gw.call("PUT", "/ops/plan", json={"tasks": [{"id": "t1", "agent": "coder"}]})
    draft = gw.draft("approve me", content="exact words", task_id="t1")
    result = gw.call("POST", f"/ops/drafts/{draft['id']}/approve", json={"auto_run": False})
    item = result["approved"]
    listed = as_json(ops("approved", "list", "--json", "--task", "t1"))
    assert [a["id"] for a in listed["items"]] == [item["id"]]
    table = ops("approved", "list")
    assert item["id"] in table.stdout and item["content_sha256"][:12] in table.stdout
    shown = ops("approved", "show", item["id"])
    assert shown.exit_code == 0, shown.output
    for text in ("exact words", "approve me", item["content_sha256"], draft["id"], "coder"):
        assert text in shown.stdout
    assert as_json(ops("approved", "show", item["id"], "--json")) == item
    one_line_problem(ops("approved", "show", draft["id"]), "INVALID_ID", 7)


def test_runs_create_list_show_log_and_cancel(
    gw: LiveGateway, fake: FakeLlmServer, ops: Any
) -> None:
    gw.use_provider(fake.url)
    draft = gw.draft("run me #r1")
    item = gw.call("POST", f"/ops/drafts/{draft['id']}/approve", json={"auto_run": False})
    approved_id = item["approved"]["id"]
    run = as_json(ops("runs", "create", approved_id, "--json", "--idempotency-key", "k-1"))
    assert run["approved_id"] == approved_id
    again = as_json(ops("runs", "create", approved_id, "--json", "--idempotency-key", "k-1"))
    assert again["id"] == run["id"]  # the same key returns the same run
    done = gw.wait_run(run["id"])
    assert done["status"] == "done"

    listed = as_json(ops("runs", "list", "--json", "--approved", approved_id))
    assert [r["id"] for r in listed["items"]] == [run["id"]]
    assert as_json(ops("runs", "list", "--json", "--status", "pending"))["items"] == []
    shown = ops("runs", "show", run["id"])
    assert shown.exit_code == 0 and done["output"] in shown.stdout
    assert done["output"].startswith(reply_for("Approved request: run me #r1"))
    log = as_json(ops("runs", "log", run["id"], "--json", "--all"))
    assert log["items"] and log["next_after"] is None
    text = ops("runs", "log", run["id"])
    assert text.exit_code == 0 and log["items"][0]["msg"] in text.stdout
    later = as_json(ops("runs", "log", run["id"], "--json", "--after", str(log["items"][0]["seq"])))
    assert later["items"] == log["items"][1:]

    one_line_problem(ops("runs", "cancel", run["id"]), "CONFLICT_STATE", 8)  # already done
    fake.app.delay = 30.0
    slow = as_json(ops("runs", "create", approved_id, "--json"))
    one_line_problem(ops("runs", "create", approved_id), "RUN_ALREADY_ACTIVE", 8)
    cancelled = ops("runs", "cancel", slow["id"])
    assert cancelled.exit_code == 0, cancelled.output
    assert gw.wait_run(slow["id"])["status"] == "cancelled"


def test_runs_watch_follows_a_run_to_its_end(
    gw: LiveGateway, fake: FakeLlmServer, ops: Any
) -> None:
    gw.use_provider(fake.url)
    draft = gw.draft("watch me #w1")
    result = gw.call("POST", f"/ops/drafts/{draft['id']}/approve", json={"auto_run": True})
    run_id = result["run"]["id"]
    watched = ops("runs", "watch", run_id, "--interval", "0.05")
    assert watched.exit_code == 0, watched.output
    lines = gw.call("GET", f"/ops/runs/{run_id}/log")["items"]
    assert lines and all(line["msg"] in watched.stdout for line in lines)
    output = gw.call("GET", f"/ops/runs/{run_id}")["output"]
    assert "watch me #w1" in output and output in watched.stdout
    assert f"run {run_id} ended done" in watched.stderr

    document = as_json(ops("runs", "watch", run_id, "--json"))
    assert document["run"]["status"] == "done"
    assert [line["seq"] for line in document["log"]] == [line["seq"] for line in lines]


def test_runs_watch_exits_non_zero_when_the_run_fails_or_is_cancelled(
    gw: LiveGateway, fake: FakeLlmServer, ops: Any
) -> None:
    gw.use_provider(fake.url)
    gw.call("PUT", "/ops/config", json={"max_attempts": 1})
    fake.app.fail_500 = 1
    failing = gw.draft("fail me #f1")
    run = gw.call("POST", f"/ops/drafts/{failing['id']}/approve", json={"auto_run": True})["run"]
    failed = ops("runs", "watch", run["id"], "--interval", "0.05")
    assert failed.exit_code == 20, failed.output
    assert f"run {run['id']} ended error" in failed.stderr

    fake.app.delay = 30.0
    slow = gw.draft("cancel me #c1")
    run = gw.call("POST", f"/ops/drafts/{slow['id']}/approve", json={"auto_run": True})["run"]
    gw.call("POST", f"/ops/runs/{run['id']}/cancel")
    gw.wait_run(run["id"])
    cancelled = ops("runs", "watch", run["id"], "--json")
    assert cancelled.exit_code == 21
    assert json.loads(cancelled.stdout)["run"]["status"] == "cancelled"
    one_line_problem(ops("runs", "watch", "r_nope"), "INVALID_ID", 7)


REMOTE = [
    ["status"], ["plan", "show"], ["drafts", "list"], ["drafts", "show"],
    ["drafts", "revisions"], ["drafts", "diff"],
    ["drafts", "approve"], ["drafts", "reject"], ["approved", "list"], ["approved", "show"],
    ["runs", "list"], ["runs", "show"], ["runs", "log"], ["runs", "watch"], ["runs", "create"],
    ["runs", "cancel"],
]  # fmt: skip


@pytest.mark.parametrize("command", REMOTE, ids=" ".join)
def test_every_remote_command_has_help_with_the_gateway_options(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"], catch_exceptions=False)
    assert result.exit_code == 0 and result.stdout.startswith("Usage: ")
    for option in ("--url", "--token", "--token-file", "--data-dir", "--json"):
        assert option in result.stdout, option
