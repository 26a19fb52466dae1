"""Import of hostile directories: symbolic links, broken links, approved items without a
hash, numbers out of range, text that is not Unicode. Each one is a one-line error naming
the file, and the store is left exactly as it was."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import cli
from core.bootstrap import Services, build_services
from core.canonical import content_sha256
from core.config import Settings
from core.errors import InputValidationError
from core.models import DraftStatus
from tests.integration.test_transfer import _counts, _legacy_dir, _write

DRAFT = "d_1707000000000_aaaaaa"
APPROVED = "a_1707000000000_aaaaaa"
RUN = "r_1707000000000_aaaaaa"


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Services]:
    """An empty store to import into."""
    built = build_services(Settings(data_dir=tmp_path / "target"))
    try:
        yield built
    finally:
        built.close()


def _refused(target: Services, root: Path, *expected: str) -> str:
    before = _counts(target)
    with pytest.raises(InputValidationError) as info:
        target.transfer.import_layout(directory=root, actor="cli:import")
    message = info.value.message
    assert "\n" not in message
    for part in expected:
        assert part in message, message
    assert _counts(target) == before
    return message


def test_a_symlinked_file_is_refused_naming_the_path(target: Services, tmp_path: Path) -> None:
    root = tmp_path / "legacy"
    _legacy_dir(root)
    outside = tmp_path / "outside.json"
    _write(outside, {"prompt": "from outside the directory"})
    os.symlink(outside, root / "drafts" / f"{DRAFT}.json")
    _refused(target, root, f"drafts/{DRAFT}.json", "symbolic link")


def test_a_symlinked_plan_is_refused(target: Services, tmp_path: Path) -> None:
    root = tmp_path / "legacy"
    _legacy_dir(root)
    (root / "plan.json").unlink()
    _write(tmp_path / "elsewhere.json", {"title": "not mine"})
    os.symlink(tmp_path / "elsewhere.json", root / "plan.json")
    _refused(target, root, "plan.json", "symbolic link")


def test_a_broken_plan_symlink_is_an_error_not_skipped(target: Services, tmp_path: Path) -> None:
    root = tmp_path / "legacy"
    _legacy_dir(root)
    (root / "plan.json").unlink()
    os.symlink(tmp_path / "does-not-exist.json", root / "plan.json")
    _refused(target, root, "plan.json", "symbolic link")


def test_a_symlinked_folder_is_refused(target: Services, tmp_path: Path) -> None:
    root = tmp_path / "legacy"
    _legacy_dir(root)
    elsewhere = tmp_path / "other-runs"
    elsewhere.mkdir()
    for path in (root / "runs").iterdir():
        path.rename(elsewhere / path.name)
    (root / "runs").rmdir()
    os.symlink(elsewhere, root / "runs")
    _refused(target, root, "runs", "symbolic link")


def test_an_approved_item_without_a_hash_is_refused_and_says_how_to_import_it_as_a_draft(
    target: Services, tmp_path: Path
) -> None:
    root = tmp_path / "legacy"
    _write(
        root / "approved" / f"{APPROVED}.json",
        {"id": APPROVED, "draft_id": DRAFT, "prompt": "p", "content": "rm -rf /"},
    )
    message = _refused(target, root, f"approved/{APPROVED}.json", "content_sha256")
    assert "--unhashed-as-drafts" in message


def test_with_unhashed_as_drafts_the_item_becomes_a_draft_to_review(
    target: Services, tmp_path: Path
) -> None:
    root = tmp_path / "legacy"
    _write(
        root / "approved" / f"{APPROVED}.json",
        {"id": APPROVED, "draft_id": DRAFT, "prompt": "p", "content": "c", "task_id": "t1"},
    )
    _write(root / "runs" / f"{RUN}.json", {"approved_id": APPROVED, "status": "done"})
    counts = target.transfer.import_layout(
        directory=root, actor="cli:import", unhashed_as_drafts=True
    )
    assert counts["approved"] == 0
    assert counts["drafts"] == 1
    assert counts["approved_unhashed_as_drafts"] == 1
    assert counts["runs"] == 0 and counts["skipped_runs_of_unhashed"] == 1
    draft = target.drafts.get(draft_id=DRAFT)
    assert draft.status is DraftStatus.DRAFT
    assert (draft.prompt, draft.content, draft.task_id) == ("p", "c", "t1")
    assert target.approvals.list().items == []
    assert target.runs.claim_next(worker_id="w", lease_s=30) is None


def test_a_hashed_approved_item_still_imports(target: Services, tmp_path: Path) -> None:
    root = tmp_path / "legacy"
    digest = content_sha256(
        prompt="p", content="c", context={}, scope={"files": [], "agents": []}, version=1
    )
    _write(
        root / "approved" / f"{APPROVED}.json",
        {"draft_id": DRAFT, "prompt": "p", "content": "c", "content_sha256": digest},
    )
    assert target.transfer.import_layout(directory=root, actor="cli:import")["approved"] == 1


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("config.json", '{"max_attempts": ' + "9" * 5000 + "}", "5000 digits"),
        ("config.json", '{"max_attempts": 1e999}', "out of range"),
        (f"drafts/{DRAFT}.json", '{"prompt": "p", "revision": -' + "1" * 400 + "}", "digits"),
        (f"runs/{RUN}.json", '{"approved_id": "' + APPROVED + '", "attempt": 1e400}', "range"),
    ],
)
def test_numbers_out_of_range_are_one_line_errors(
    target: Services, tmp_path: Path, name: str, raw: str, expected: str
) -> None:
    root = tmp_path / "legacy"
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(raw, encoding="utf-8")
    _refused(target, root, name, expected)


@pytest.mark.parametrize(
    ("name", "data", "field"),
    [
        (f"approved/{APPROVED}.json", {"draft_id": DRAFT, "prompt": "p", "note": "\udfff"}, "note"),
        (f"drafts/{DRAFT}.json", {"prompt": "p", "context": {"k": ["\ud800"]}}, "context.k.0"),
        (f"drafts/{DRAFT}.json", {"prompt": "p", "\udfff": 1}, "key"),
        (f"runs/{RUN}.json", {"approved_id": APPROVED, "log": [{"msg": "\udfff"}]}, "log.0.msg"),
        ("plan.json", {"title": "\udfff"}, "title"),
    ],
)
def test_a_lone_surrogate_in_an_import_file_is_a_one_line_error(
    target: Services, tmp_path: Path, name: str, data: dict[str, Any], field: str
) -> None:
    root = tmp_path / "legacy"
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="ascii")  # \udfff escaped: valid JSON text
    _refused(target, root, name, field, "not valid Unicode")


def test_the_import_command_prints_one_line_for_a_hostile_directory(
    target: Services, tmp_path: Path
) -> None:
    root = tmp_path / "legacy"
    root.mkdir()
    os.symlink(tmp_path / "missing.json", root / "plan.json")
    (root / "config.json").write_text('{"max_attempts": ' + "7" * 5000 + "}")
    before = _counts(target)
    result = CliRunner().invoke(
        cli, ["import", str(root), "--data-dir", str(target.settings.data_dir)]
    )
    assert result.exit_code == 1
    assert result.output.count("\n") == 1, result.output
    assert "VALIDATION_ERROR: plan.json" in result.output
    assert "Traceback" not in result.output
    assert _counts(target) == before
