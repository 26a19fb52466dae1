"""Approval policies through the operator CLI against the real gateway on a loopback port:
a quorum of two, an edit that voids approvals, batch approval from a file or stdin, expiry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from cli.main import cli
from core.timeutil import format_ts
from tests.integration.live_gateway import OPERATOR, LiveGateway

NOWHERE = "http://127.0.0.1:9"  # never reached: these fail before any request
D = "d_01HZZZZZZZZZZZZZZZZZZZZZZZ"  # a well-formed draft id


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[LiveGateway]:
    with LiveGateway(tmp_path / "server-data") as gateway:
        gateway.call("PUT", "/ops/plan", json={"tasks": [
            {"id": "t1", "title": "Write", "agent": "coder", "scope": ["src/**"]},
            {"id": "t2", "title": "Deploy", "approvals_required": 2},
        ]})  # fmt: skip
        yield gateway


def ops(url: str, *args: str, token: str = OPERATOR, input: str | None = None) -> Result:
    return CliRunner().invoke(
        cli, [*args, "--url", url, "--token", token], input=input, catch_exceptions=False
    )


def one_line(result: Result, exit_code: int, starts: str) -> str:
    assert result.exit_code == exit_code, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(starts), lines[0]
    assert "Traceback" not in result.output
    return lines[0]


def age_approved(gw: LiveGateway, approved_id: str, days: int) -> None:
    """Move an approved item's approval ``days`` into the past, in the gateway's store."""
    engine = sa.create_engine(gw.settings.db_url)
    try:
        with engine.begin() as conn:
            moved = conn.execute(
                sa.text("UPDATE approved SET approved_at = :at WHERE id = :id"),
                {"at": format_ts(datetime.now(UTC) - timedelta(days=days)), "id": approved_id},
            )
            assert moved.rowcount == 1
    finally:
        engine.dispose()


def test_a_quorum_of_two_needs_two_operators(gw: LiveGateway) -> None:
    gw.call("PUT", "/ops/config", json={"approvals_required": 2})
    bob = gw.token("operator", "bob")
    draft = gw.draft("two keys", task_id="t1")

    first = ops(gw.url, "drafts", "approve", draft["id"], "--yes", "--no-auto-run")
    assert first.exit_code == 0, first.output
    assert "1 of 2 approvals — needs 1 more" in first.stdout
    assert gw.call("GET", "/ops/approved")["items"] == []
    again = ops(gw.url, "drafts", "approve", draft["id"], "--yes", "--json")  # the same token
    assert json.loads(again.stdout)["approvals"] == {"have": 1, "need": 2}

    waiting = ops(gw.url, "drafts", "list", "--waiting")
    assert waiting.exit_code == 0, waiting.output
    [row] = [line for line in waiting.stdout.splitlines() if draft["id"] in line]
    assert "1/2" in row.split()
    shown = ops(gw.url, "drafts", "show", draft["id"])
    assert "1 of 2 approvals — needs 1 more" in shown.stdout
    assert "operator:env" in shown.stdout and "lapse at" in shown.stdout

    second = ops(gw.url, "drafts", "approve", draft["id"], "--yes", "--no-auto-run", token=bob)
    assert second.exit_code == 0, second.output
    [item] = gw.call("GET", "/ops/approved")["items"]
    assert f"as {item['id']} (2 of 2 approvals)" in second.stdout
    assert item["content_sha256"] == draft["content_sha256"]
    assert draft["id"] not in ops(gw.url, "drafts", "list", "--waiting").stdout
    listed = json.loads(ops(gw.url, "drafts", "list", "--json").stdout)["items"]
    assert [d["approvals"] for d in listed if d["id"] == draft["id"]] == [{"have": 2, "need": 2}]


def test_an_edit_between_two_approvals_starts_the_count_again(gw: LiveGateway) -> None:
    draft = gw.draft("per task", task_id="t2")  # t2 needs 2 whatever the config says
    assert "1 of 2 approvals" in ops(gw.url, "drafts", "approve", draft["id"], "--yes").stdout
    gw.call("PUT", f"/ops/drafts/{draft['id']}", json={"content": "changed"})
    bob = gw.token("operator", "bob")
    after = ops(gw.url, "drafts", "approve", draft["id"], "--yes", token=bob)
    assert after.exit_code == 0, after.output
    assert "1 of 2 approvals — needs 1 more" in after.stdout
    assert gw.call("GET", "/ops/approved")["items"] == []


def test_batch_from_a_file_approves_each_item_on_its_own(gw: LiveGateway, tmp_path: Path) -> None:
    good = gw.draft("good", task_id="t1")
    quorum = gw.draft("needs two", task_id="t2")
    rejected = gw.draft("rejected")
    gw.call("POST", f"/ops/drafts/{rejected['id']}/reject", json={"reason": "no"})
    stale = gw.draft("stale")
    gw.call("PUT", f"/ops/drafts/{stale['id']}", json={"content": "edited after the read"})
    batch = tmp_path / "batch.txt"
    batch.write_text(
        "# reviewed on Thursday\n\n"
        f"{good['id']} {good['content_sha256']}\n"
        f"  {quorum['id']}\t{quorum['content_sha256']}   # the deploy\n"
        f"{rejected['id']} {rejected['content_sha256']}\n"
        f"{stale['id']} {stale['content_sha256']}\n"
    )
    done = ops(gw.url, "drafts", "approve", "--batch", str(batch), "--no-auto-run")
    assert done.exit_code == 8, done.output  # the class of the first failure: CONFLICT_STATE
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[1:] if line.strip()}
    assert list(rows) == [good["id"], quorum["id"], rejected["id"], stale["id"]]
    [item] = gw.call("GET", "/ops/approved")["items"]
    assert item["draft_id"] == good["id"]
    assert rows[good["id"]].split()[1:4] == ["yes", item["id"], "1"]
    assert "1 of 2" in rows[quorum["id"]] and "needs 1 more" in rows[quorum["id"]]
    assert " no " in rows[rejected["id"]] and "CONFLICT_STATE: " in rows[rejected["id"]]
    assert "REVISION_MISMATCH: " in rows[stale["id"]]
    summary = one_line(done, 8, "2 of 4 items failed")
    assert "CONFLICT_STATE" in summary
    assert gw.call("GET", "/ops/runs")["items"] == []  # --no-auto-run
    assert gw.call("GET", f"/ops/drafts/{stale['id']}")["status"] == "draft"


def test_batch_as_json_on_stdin(gw: LiveGateway) -> None:
    first, second = gw.draft("one"), gw.draft("two")
    items = [
        {"draft_id": first["id"], "expected_sha256": first["content_sha256"], "auto_run": True},
        {"draft_id": second["id"], "expected_sha256": second["content_sha256"]},
    ]
    done = ops(gw.url, "drafts", "approve", "--batch", "-", "--no-auto-run", "--json",
               "--note", "batch", input=json.dumps(items))  # fmt: skip
    assert done.exit_code == 0, done.output
    answer = json.loads(done.stdout)
    assert [(r["draft_id"], r["ok"]) for r in answer["items"]] == [
        (first["id"], True), (second["id"], True)
    ]  # fmt: skip
    assert answer["items"][0]["run"] is not None  # its own auto_run wins over --no-auto-run
    assert answer["items"][1]["run"] is None
    notes = {a["draft_id"]: a["note"] for a in gw.call("GET", "/ops/approved")["items"]}
    assert notes == {first["id"]: "batch", second["id"]: "batch"}


SHA = "a" * 64
BAD_FILES = [
    (None, "cannot read batch file"),
    ("", "no items"),
    ("# only a comment\n\n", "no items"),
    (f"{D}\n", "line 1: expected 'draft_id sha256'"),
    (f"{D} {SHA} extra\n", "line 1: expected 'draft_id sha256'"),
    (f"\n{D} not-a-hash\n", f"line 2: the sha256 of {D} is not 64 hex digits"),
    (f"d_1 {SHA}\n", "line 1: 'd_1' is not a draft id"),
    ("[{", "not valid JSON at line 1"),
    (json.dumps({"draft_id": D}), "expected a JSON list"),
    (json.dumps([D]), "item 0: expected an object"),
    (json.dumps([{"draft_id": D, "expected_sha256": SHA, "x": 1}]), "unknown field 'x'"),
    (json.dumps([{"draft_id": D, "expected_sha256": SHA, "auto_run": "y"}]),
     "auto_run must be true or false"),
    (json.dumps([{"expected_sha256": SHA}]), "item 0: no draft_id"),
    (f"{D} {SHA}\n" * 101, "101 items; at most 100"),
]  # fmt: skip


@pytest.mark.parametrize(("content", "says"), BAD_FILES)
def test_a_bad_batch_file_is_one_line_and_exit_2(
    tmp_path: Path, content: str | None, says: str
) -> None:
    batch = tmp_path / "batch"
    if content is not None:
        batch.write_text(content)
    done = ops(NOWHERE, "drafts", "approve", "--batch", str(batch))
    line = one_line(done, 2, "batch file " if content is not None else "cannot read batch file")
    assert says in line and done.stdout == ""


def test_approve_takes_an_id_or_a_batch(tmp_path: Path) -> None:
    one_line(ops(NOWHERE, "drafts", "approve"), 2, "give a draft id, or --batch FILE")
    both = ops(NOWHERE, "drafts", "approve", "d_1", "--batch", "-", input="")
    one_line(both, 2, "give a draft id or --batch FILE, not both")
    agent = ops(NOWHERE, "drafts", "approve", "--batch", "-", "--agent", "coder", input="")
    one_line(agent, 2, "--executor and --agent are for one draft")


def test_an_item_approved_long_ago_and_never_run_cannot_be_run(gw: LiveGateway) -> None:
    draft = gw.draft("forgotten", task_id="t1")
    done = ops(gw.url, "drafts", "approve", draft["id"], "--yes", "--no-auto-run", "--json")
    approved_id = json.loads(done.stdout)["approved"]["id"]
    age_approved(gw, approved_id, days=31)  # approved_ttl_days is 30 by default
    shown = ops(gw.url, "approved", "show", approved_id)
    assert "it can no longer be run" in shown.stdout
    assert gw.call("GET", f"/ops/approved/{approved_id}")["expired"] is True
    [row] = [ln for ln in ops(gw.url, "approved", "list").stdout.splitlines() if approved_id in ln]
    assert " yes " in row
    refused = ops(gw.url, "runs", "create", approved_id)
    line = one_line(refused, 8, "CONFLICT_STATE: ")
    assert "approval expired" in line and refused.stdout == ""
    assert gw.call("GET", "/ops/runs")["items"] == []
