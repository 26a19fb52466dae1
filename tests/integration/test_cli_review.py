"""``drafts show|diff|approve`` through click's CliRunner against the real gateway on a free
loopback port: what a reviewer sees, and that the approval binds exactly that."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from tests.integration.live_gateway import OPERATOR, LiveGateway


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[LiveGateway]:
    with LiveGateway(tmp_path / "server-data") as gateway:
        gateway.call("PUT", "/ops/plan", json={
            "tasks": [{"id": "t1", "title": "Write", "agent": "coder", "scope": ["src/**"]}],
        })  # fmt: skip
        yield gateway


def ops(gw: LiveGateway, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(
        cli, [*args, "--url", gw.url, "--token", OPERATOR], input=input, catch_exceptions=False
    )


def edited_twice(gw: LiveGateway) -> dict[str, Any]:
    draft = gw.draft("Write a haiku", content="line one\nline two\n", task_id="t1",
                     context={"ticket": 7})  # fmt: skip
    path = f"/ops/drafts/{draft['id']}"
    gw.call("PUT", path, json={"content": "line one\nline 2\nline three\n"})
    gw.call("PUT", path, json={"prompt": "Write a better haiku"})
    return dict(gw.call("GET", path))


def test_drafts_show_has_everything_a_reviewer_decides_on(gw: LiveGateway) -> None:
    draft = edited_twice(gw)
    shown = ops(gw, "drafts", "show", draft["id"])
    assert shown.exit_code == 0, shown.output
    for text in ("Write a better haiku", "line three", '"ticket": 7', "src/**", "coder",
                 draft["content_sha256"], "revision", "3"):  # fmt: skip
        assert text in shown.stdout, text
    assert json.loads(ops(gw, "drafts", "show", draft["id"], "--json").stdout) == draft
    first = ops(gw, "drafts", "show", draft["id"], "--revision", "1")
    assert first.exit_code == 0 and "line two" in first.stdout and "better" not in first.stdout


def test_drafts_diff_between_revisions(gw: LiveGateway) -> None:
    draft = edited_twice(gw)
    latest = ops(gw, "drafts", "diff", draft["id"])  # default: previous -> current
    assert latest.exit_code == 0, latest.output
    assert "revision 2 -> 3" in latest.stdout
    assert "- Write a haiku" in latest.stdout and "+ Write a better haiku" in latest.stdout
    assert "\x1b[" not in latest.stdout  # no colour codes when not on a terminal

    content = ops(gw, "drafts", "diff", draft["id"], "--from", "1", "--to", "2")
    assert content.exit_code == 0, content.output
    assert "-line two" in content.stdout and "+line 2" in content.stdout
    assert "+line three" in content.stdout and "Write a haiku" not in content.stdout

    document = json.loads(ops(gw, "drafts", "diff", draft["id"], "--from", "1", "--json").stdout)
    assert (document["from"], document["to"]) == (1, 3)
    assert document["changes"]["prompt"] == {
        "before": "Write a haiku", "after": "Write a better haiku"
    }  # fmt: skip
    assert "+line three" in document["content_diff"]
    missing = ops(gw, "drafts", "diff", draft["id"], "--from", "9")
    assert missing.exit_code != 0 and len(missing.stderr.strip().splitlines()) == 1


def test_approve_without_yes_and_without_a_terminal_refuses(gw: LiveGateway) -> None:
    draft = gw.draft("needs a person", task_id="t1")
    refused = ops(gw, "drafts", "approve", draft["id"], input="y\n")
    assert refused.exit_code == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "not approved" in lines[0] and "--yes" in lines[0]
    assert draft["content_sha256"] in refused.stdout  # it showed what it would approve
    assert gw.call("GET", f"/ops/drafts/{draft['id']}")["status"] == "draft"
    assert gw.call("GET", "/ops/approved")["items"] == []


def test_approve_with_yes_approves_exactly_the_shown_hash(gw: LiveGateway) -> None:
    draft = edited_twice(gw)
    done = ops(gw, "drafts", "approve", draft["id"], "--yes", "--no-auto-run", "--note", "ok")
    assert done.exit_code == 0, done.output
    for text in (draft["content_sha256"], "src/**", "coder", "line three"):
        assert text in done.stdout
    item = gw.call("GET", "/ops/approved")["items"][0]
    assert item["content_sha256"] == draft["content_sha256"]
    assert item["draft_revision"] == 3 and item["note"] == "ok"
    assert item["scope"] == draft["effective_scope"]
    assert item["id"] in done.stdout
    assert gw.call("GET", "/ops/runs")["items"] == []  # --no-auto-run


def test_approve_json_prints_only_the_answer_and_can_start_a_run(gw: LiveGateway) -> None:
    draft = gw.draft("run it too", task_id="t1")
    done = ops(gw, "drafts", "approve", draft["id"], "--yes", "--auto-run", "--json")
    assert done.exit_code == 0, done.output
    answer = json.loads(done.stdout)  # the draft shown went to stderr
    assert answer["approved"]["content_sha256"] == draft["content_sha256"]
    assert answer["run"]["approved_id"] == answer["approved"]["id"]
    assert draft["content_sha256"] in done.stderr


def test_approving_a_rejected_draft_is_one_line(gw: LiveGateway) -> None:
    draft = gw.draft("too late")
    gw.call("POST", f"/ops/drafts/{draft['id']}/reject", json={"reason": "no"})
    done = ops(gw, "drafts", "approve", draft["id"], "--yes")
    assert done.exit_code == 8
    assert done.stderr.strip().startswith("CONFLICT_STATE: ")
    assert len(done.stderr.strip().splitlines()) == 1


def test_drafts_revisions_lists_every_revision_newest_first(gw: LiveGateway) -> None:
    draft = edited_twice(gw)
    page = json.loads(ops(gw, "drafts", "revisions", draft["id"], "--json").stdout)
    assert [r["revision"] for r in page["items"]] == [3, 2, 1]
    table = ops(gw, "drafts", "revisions", draft["id"], "--limit", "1")
    assert table.exit_code == 0, table.output
    assert "Write a better haiku" in table.stdout and "--cursor" in table.stderr


def test_executor_and_agent_on_approve_and_runs_create(gw: LiveGateway) -> None:
    draft = gw.draft("for the agent", task_id="t1")  # t1's scope names the agent coder
    done = ops(gw, "drafts", "approve", draft["id"], "--yes", "--auto-run",
               "--executor", "agent", "--agent", "coder")  # fmt: skip
    assert done.exit_code == 0, done.output
    [run] = gw.call("GET", "/ops/runs")["items"]
    assert (run["executor"], run["agent"]) == ("agent", "coder")
    assert f"Run {run['id']} pending for agent coder" in done.stdout
    gw.call("POST", f"/ops/runs/{run['id']}/cancel")
    again = ops(gw, "runs", "create", run["approved_id"], "--agent", "coder", "--json")
    created = json.loads(again.stdout)
    assert (created["executor"], created["agent"]) == ("agent", "coder")
    gw.call("POST", f"/ops/runs/{created['id']}/cancel")
    outside = ops(gw, "runs", "create", run["approved_id"], "--agent", "someone-else")
    assert outside.exit_code == 7
    assert outside.stderr.strip().startswith("VALIDATION_ERROR: ") and "scope" in outside.stderr
    provider = ops(gw, "runs", "create", run["approved_id"], "--executor", "provider")
    assert provider.exit_code == 0, provider.output
    assert gw.call("GET", "/ops/runs", params={"limit": 1})["items"][0]["executor"] == "provider"
