"""The CLI through click's CliRunner: init, tokens, audit, export/import, cleanup, errors."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from core.auth import Principal
from core.bootstrap import Services, build_services
from core.canonical import content_sha256
from core.config import Settings
from core.models import DraftIn, PlanIn, RunStatus, Task


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


def _run(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(cli, list(args), catch_exceptions=False)


@contextmanager
def _services(path: Path) -> Iterator[Services]:
    built = build_services(Settings(data_dir=path))
    try:
        yield built
    finally:
        built.close()


def _create_store(path: Path) -> Path:
    """A migrated store with no token yet (what ``init`` makes, less the token files)."""
    build_services(Settings(data_dir=path)).close()
    return path


def _assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_init_creates_the_store_and_token_files_once(runner: CliRunner, store: Path) -> None:
    first = _run(runner, "init", "--data-dir", str(store))
    assert first.exit_code == 0, first.output
    assert (store / "ops.db").is_file()
    for role in ("admin", "operator", "actions"):
        path = store / "tokens" / f"{role}.token"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert str(path) in first.stdout
        assert path.read_text().strip() not in first.output  # paths are shown, never values
    tokens = {p.name: p.read_text() for p in (store / "tokens").iterdir()}
    db_before = (store / "ops.db").read_bytes()

    second = _run(runner, "init", "--data-dir", str(store))
    assert second.exit_code == 0
    assert "nothing changed" in second.stdout
    assert {p.name: p.read_text() for p in (store / "tokens").iterdir()} == tokens
    assert (store / "ops.db").read_bytes() == db_before


def test_init_tokens_authenticate_with_their_roles(runner: CliRunner, store: Path) -> None:
    _run(runner, "init", "--data-dir", str(store))
    with _services(store) as services:
        for role in ("admin", "operator", "actions"):
            token = (store / "tokens" / f"{role}.token").read_text().strip()
            principal = services.access.authenticate(token)
            assert principal is not None and principal.role.value == role


def test_token_create_list_revoke(runner: CliRunner, store: Path) -> None:
    _create_store(store)
    created = _run(
        runner, "token", "create", "--role", "operator", "--name", "ci", "--data-dir", str(store)
    )
    assert created.exit_code == 0
    token = created.stdout.strip()
    assert len(token) >= 16 and "\n" not in token  # stdout is the token alone, printed once
    assert created.stdout.count(token) == 1 and "only once" in created.stderr

    with _services(store) as services:
        principal = services.access.authenticate(token)
        assert principal is not None and principal.actor == "operator:ci"

    listed = _run(runner, "token", "list", "--data-dir", str(store))
    assert listed.exit_code == 0
    header, row = listed.stdout.splitlines()[:2]
    assert header.split()[:5] == ["NAME", "ROLE", "CREATED", "LAST", "USED"]
    assert row.split()[:2] == ["ci", "operator"] and row.split()[-1] == "active"
    assert row.split()[3] != "-"  # last used: set by the authentication above
    assert token not in listed.output

    revoked = _run(runner, "token", "revoke", "ci", "--data-dir", str(store))
    assert revoked.exit_code == 0 and "Revoked" in revoked.stdout
    with _services(store) as services:
        assert services.access.authenticate(token) is None
    assert (
        _run(runner, "token", "list", "--data-dir", str(store))
        .stdout.splitlines()[1]
        .endswith("revoked")
    )


def test_audit_verify_passes_on_a_fresh_store(runner: CliRunner, store: Path) -> None:
    _run(runner, "init", "--data-dir", str(store))
    result = _run(runner, "audit", "verify", "--data-dir", str(store))
    assert (
        result.exit_code == 0
        and "Audit chain ok: 4 entries verified; head seq 4 hash " in result.stdout
    )


def test_export_then_import_into_a_new_data_dir_round_trips(
    runner: CliRunner, store: Path, tmp_path: Path, admin: Principal, operator: Principal
) -> None:
    with _services(store) as services:
        services.plan.put(data=PlanIn(title="p", tasks=[Task(id="t1")]), actor=admin)
        drafts = [
            services.drafts.create(
                data=DraftIn(prompt=f"p{i}", content="c", task_id="t1"), actor=admin
            )
            for i in range(3)
        ]
        item = services.approvals.approve(draft_id=drafts[0].id, actor=operator).approved
        run, _ = services.runs.create(approved_id=item.id, actor=operator)
        services.runs.cancel(run_id=run.id, actor=operator)
    out = tmp_path / "export"
    exported = _run(runner, "export", str(out), "--data-dir", str(store))
    assert exported.exit_code == 0, exported.output
    assert "3 drafts, 1 approved, 1 runs" in exported.stdout

    other = _create_store(tmp_path / "other")
    imported = _run(runner, "import", str(out), "--data-dir", str(other))
    assert imported.exit_code == 0, imported.output
    assert "3 drafts, 1 approved, 1 runs" in imported.stdout

    with _services(store) as a:
        with _services(other) as b:
            assert a.plan.get() == b.plan.get()
            assert a.drafts.list().items == b.drafts.list().items
            assert a.approvals.list().items == b.approvals.list().items
            assert a.runs.list().items == b.runs.list().items
            assert b.runs.get(run_id=run.id).status is RunStatus.CANCELLED

    again = _run(runner, "import", str(out), "--data-dir", str(other))
    assert again.exit_code == 0 and "3 skipped_drafts" in again.stdout


def test_a_hand_written_legacy_directory_imports(
    runner: CliRunner, store: Path, tmp_path: Path
) -> None:
    legacy = tmp_path / "legacy"
    (legacy / "drafts").mkdir(parents=True)
    (legacy / "runs").mkdir()
    (legacy / "approved").mkdir()
    (legacy / "drafts" / "d_1707000000000_ab12cd.json").write_text(
        json.dumps(
            {"prompt": "old", "content": "body", "status": "approved", "created_at": 1707000000000}
        )
    )
    (legacy / "approved" / "a_1707000000001_ab12cd.json").write_text(
        json.dumps(
            {
                "draft_id": "d_1707000000000_ab12cd",
                "prompt": "old",
                "content": "body",
                "content_sha256": content_sha256(
                    prompt="old",
                    content="body",
                    context={},
                    scope={"files": [], "agents": []},
                    version=1,
                ),
            }
        )
    )
    (legacy / "runs" / "r_1707000000002_ab12cd.json").write_text(
        json.dumps({"approved_id": "a_1707000000001_ab12cd", "status": "pending"})
    )
    _create_store(store)
    result = _run(runner, "import", str(legacy), "--data-dir", str(store))
    assert result.exit_code == 0, result.output
    assert "1 drafts, 1 approved, 1 runs" in result.stdout
    assert "1 runs_cancelled" in result.stdout
    with _services(store) as services:
        assert services.runs.get(run_id="r_1707000000002_ab12cd").status is RunStatus.CANCELLED


def test_cleanup_reports_what_it_deleted(runner: CliRunner, store: Path) -> None:
    _create_store(store)
    result = _run(runner, "cleanup", "--data-dir", str(store))
    assert result.exit_code == 0 and result.stdout.strip() == "Deleted 0 drafts and 0 runs."


COMMANDS = [
    [],
    ["init"],
    ["serve"],
    ["mcp"],
    ["worker"],
    ["token"],
    ["token", "create"],
    ["token", "list"],
    ["token", "revoke"],
    ["audit"],
    ["audit", "verify"],
    ["export"],
    ["import"],
    ["cleanup"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) or "ops-trigger" for c in COMMANDS])
def test_every_command_has_help(runner: CliRunner, command: list[str]) -> None:
    result = _run(runner, *command, "--help")
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: ")
    if command and command[0] not in ("token", "audit") or len(command) == 2:
        assert "--data-dir" in result.stdout


def test_user_errors_are_one_line_and_a_non_zero_exit(
    runner: CliRunner, store: Path, tmp_path: Path
) -> None:
    data = ["--data-dir", str(_create_store(store))]
    _assert_one_line_error(_run(runner, "token", "revoke", "ghost", *data), "NOT_FOUND", "ghost")
    _run(runner, "token", "create", "--role", "admin", "--name", "dup", *data)
    _assert_one_line_error(
        _run(runner, "token", "create", "--role", "admin", "--name", "dup", *data),
        "CONFLICT_STATE",
    )
    _assert_one_line_error(
        _run(runner, "token", "create", "--role", "admin", "--name", "../evil", *data),
        "INVALID_ID",
    )
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    _assert_one_line_error(_run(runner, "export", str(busy), *data), "not empty")
    bad = tmp_path / "bad"
    (bad / "drafts").mkdir(parents=True)
    (bad / "drafts" / "d_1707000000000_ab12cd.json").write_text("{not json")
    _assert_one_line_error(
        _run(runner, "import", str(bad), *data),
        "VALIDATION_ERROR",
        "drafts/d_1707000000000_ab12cd.json",
    )
    missing = _run(runner, "import", str(tmp_path / "nowhere"), *data)
    assert missing.exit_code == 2 and "Traceback" not in missing.output
    wrong_role = _run(runner, "token", "create", "--role", "root", "--name", "x", *data)
    assert wrong_role.exit_code == 2 and "Traceback" not in wrong_role.output


LOCAL_COMMANDS = [
    ["serve", "--port", "0"],
    ["worker"],
    ["mcp"],  # refused by the server itself (see tests/e2e/test_mcp_stdio.py)
    ["token", "create", "--role", "actions", "--name", "x"],
    ["token", "list"],
    ["token", "revoke", "x"],
    ["audit", "verify"],
    ["export", "{tmp}/out"],
    ["import", "{tmp}"],
    ["cleanup"],
]


@pytest.mark.parametrize("command", LOCAL_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_a_data_dir_without_a_store_is_refused_and_left_alone(
    runner: CliRunner, tmp_path: Path, command: list[str]
) -> None:
    typo = tmp_path / "typo"
    args = [part.replace("{tmp}", str(tmp_path)) for part in command]
    result = runner.invoke(cli, [*args, "--data-dir", str(typo)])
    _assert_one_line_error(result, "STORAGE_ERROR", f"no store at {typo.absolute() / 'ops.db'}")
    assert "run 'ops-trigger init" in result.stderr
    assert result.stdout == ""
    assert not typo.exists()  # nothing was created at the mistyped path
    assert not (tmp_path / "out").exists()


def test_audit_verify_on_a_mistyped_data_dir_does_not_report_an_empty_chain_as_ok(
    runner: CliRunner, tmp_path: Path
) -> None:
    result = runner.invoke(cli, ["audit", "verify", "--data-dir", str(tmp_path / "typo")])
    assert result.exit_code == 1
    assert "Audit chain ok" not in result.output
    assert "run 'ops-trigger init" in result.stderr
    assert not (tmp_path / "typo").exists()


def test_the_default_data_dir_without_a_store_is_refused_with_its_full_path(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative default in the wrong folder: the error shows where it looked."""
    monkeypatch.delenv("OPS_DATA_DIR")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["token", "list"])
    expected = tmp_path / ".orch_data" / "ops" / "ops.db"
    _assert_one_line_error(result, f"no store at {expected}", "run 'ops-trigger init'")
    assert not (tmp_path / ".orch_data").exists()


def test_local_commands_name_the_store_they_use(runner: CliRunner, store: Path) -> None:
    _run(runner, "init", "--data-dir", str(store))
    listed = _run(runner, "token", "list", "--data-dir", str(store))
    assert listed.exit_code == 0
    assert f"store: {store.absolute() / 'ops.db'}" in listed.stderr
    assert "store:" not in listed.stdout


@pytest.mark.parametrize(
    "command",
    [["init"], ["token", "list"], ["audit", "verify"], ["cleanup"], ["worker"]],
    ids=lambda c: " ".join(c),
)
def test_a_corrupt_store_is_a_one_line_storage_error(
    runner: CliRunner, store: Path, command: list[str]
) -> None:
    store.mkdir()
    (store / "ops.db").write_bytes(b"\x00this is not a database" * 300)
    result = runner.invoke(cli, [*command, "--data-dir", str(store)])
    _assert_one_line_error(result, "STORAGE_ERROR", "not a valid SQLite database", str(store))


def test_a_data_dir_that_is_a_file_is_a_one_line_error(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    inside = runner.invoke(cli, ["init", "--data-dir", str(a_file / "sub")])
    _assert_one_line_error(inside, "STORAGE_ERROR", "Not a directory")
    monkeypatch.setenv("OPS_DATA_DIR", str(a_file))
    from_env = runner.invoke(cli, ["token", "list"])
    _assert_one_line_error(from_env, "is not a directory")
    assert a_file.read_text() == "x"


def test_data_dir_is_accepted_on_the_groups_too(runner: CliRunner, store: Path) -> None:
    _run(runner, "init", "--data-dir", str(store))
    listed = _run(runner, "token", "--data-dir", str(store), "list")
    assert listed.exit_code == 0 and "bootstrap-admin" in listed.stdout
    verified = _run(runner, "--data-dir", str(store), "audit", "verify")
    assert verified.exit_code == 0 and "Audit chain ok" in verified.stdout
    created = _run(runner, "token", "--data-dir", str(store), "create", "--role", "actions",
                   "--name", "grouped")  # fmt: skip
    assert created.exit_code == 0
    with _services(store) as services:
        assert "grouped" in [t.name for t in services.access.list_tokens()]


def test_import_notes_what_needs_attention(runner: CliRunner, tmp_path: Path) -> None:
    """An exported provider key must be set again; old rejected drafts and finished runs
    go at the next cleanup pass. Both are said on stderr, after the counts."""
    legacy = tmp_path / "legacy"
    (legacy / "drafts").mkdir(parents=True)
    (legacy / "approved").mkdir()
    (legacy / "runs").mkdir()
    provider = {"base_url": "http://127.0.0.1:9", "model": "m", "api_key_set": True}
    (legacy / "provider.json").write_text(
        json.dumps({"active": "main", "providers": {"main": provider}})
    )
    (legacy / "drafts" / "d_1707000000000_ab12cd.json").write_text(
        json.dumps({"prompt": "no", "status": "rejected", "updated_at": 1707000000})
    )
    (legacy / "drafts" / "d_1707000001000_ab12cd.json").write_text(
        json.dumps({"prompt": "yes", "content": "c", "status": "approved"})
    )
    (legacy / "approved" / "a_1707000002000_ab12cd.json").write_text(
        json.dumps(
            {
                "draft_id": "d_1707000001000_ab12cd",
                "prompt": "yes",
                "content": "c",
                "content_sha256": content_sha256(
                    prompt="yes",
                    content="c",
                    context={},
                    scope={"files": [], "agents": []},
                    version=1,
                ),
            }
        )
    )
    (legacy / "runs" / "r_1707000003000_ab12cd.json").write_text(
        json.dumps({"approved_id": "a_1707000002000_ab12cd", "status": "done",
                    "created_at": 1707000003})
    )  # fmt: skip
    _create_store(tmp_path / "store")
    result = _run(runner, "import", str(legacy), "--data-dir", str(tmp_path / "store"))
    assert result.exit_code == 0, result.output
    assert "1 provider_keys_to_set_again" in result.stdout
    assert "set them again with PUT /ops/provider" in result.stderr
    assert "1 rejected/error drafts and 1 finished runs" in result.stderr
    cleaned = _run(runner, "cleanup", "--data-dir", str(tmp_path / "store"))
    assert "Deleted 1 drafts and 1 runs." in cleaned.stdout


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("OPS_DATABASE_URL", "mysql+pymysql://u@127.0.0.1:1/ops", "must be a SQLite URL"),
        ("OPS_DATABASE_URL", "not a url", "must be a SQLite URL"),
        ("OPS_RUN_LEASE_S", "-1", "run_lease_s: Input should be greater than 0"),
    ],
)
def test_bad_settings_are_one_line_errors(
    runner: CliRunner, store: Path, monkeypatch: pytest.MonkeyPatch, variable: str,
    value: str, fragment: str,
) -> None:  # fmt: skip
    monkeypatch.setenv(variable, value)
    for command in (["init"], ["token", "list"], ["mcp"]):
        result = runner.invoke(cli, [*command, "--data-dir", str(store)])
        _assert_one_line_error(result, "invalid settings", fragment)
    assert not store.exists()


def test_a_sqlite_database_url_is_used(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "elsewhere" / "my.db"
    monkeypatch.setenv("OPS_DATABASE_URL", f"sqlite:///{db}")
    assert _run(runner, "init", "--data-dir", str(tmp_path / "d")).exit_code == 0
    assert db.is_file()
