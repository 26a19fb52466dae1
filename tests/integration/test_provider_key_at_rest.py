"""Provider keys are encrypted at rest (SPEC section 4): never in plaintext in ops.db or its
WAL, still usable by runs (a real loopback provider checks the key it receives), kept across
``secrets rotate``; a missing or wrong secret key is a clear error."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from cli.main import cli
from core.auth import Principal
from core.bootstrap import Services, build_services
from core.config import Settings
from core.crypto import new_secret_key
from core.errors import InputValidationError
from core.models import DraftIn, ProviderConfigIn, ProviderEntryIn
from core.services.base import PROVIDER_KEY
from tests.fake_llm import FakeLlm, FakeLlmServer
from tests.integration.test_worker import running, wait_run

KEY = "sk-live-rest-9c41d7e2b8a6f3051e7d9b2c"


@pytest.fixture
def provider() -> Iterator[FakeLlmServer]:
    with FakeLlmServer(FakeLlm(required_key=KEY)) as server:
        yield server


def _raw_bytes(data_dir: Path) -> bytes:
    found = b""
    for name in ("ops.db", "ops.db-wal"):
        path = data_dir / name
        if path.exists():
            found += path.read_bytes()
    return found


def _set_key(services: Services, admin: Principal, url: str, key: str = KEY) -> None:
    services.provider.update(
        data=ProviderConfigIn(
            providers={"fake": ProviderEntryIn(base_url=url, model="m", api_key=key)}
        ),
        actor=admin,
    )


def _run_once(services: Services, admin: Principal, operator: Principal, prompt: str) -> str:
    """Approve a draft, let a real worker execute its run; ``status:error`` at the end."""
    draft = services.drafts.create(data=DraftIn(prompt=prompt, content="c"), actor=admin)
    approved = services.approvals.approve(draft_id=draft.id, actor=operator).approved
    run, _ = services.runs.create(approved_id=approved.id, actor=operator)

    async def drive() -> str:
        async with running(services):
            final = await wait_run(services, run.id, timeout=30)
        return f"{final.status.value}:{final.error or ''}"

    return asyncio.run(drive())


def test_a_key_set_through_the_service_is_not_in_the_raw_store(
    services: Services, admin: Principal, provider: FakeLlmServer
) -> None:
    _set_key(services, admin, provider.url)
    raw = _raw_bytes(services.settings.data_dir)
    assert KEY.encode() not in raw
    assert KEY[-12:].encode() not in raw
    with services._engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT value FROM kv WHERE key = ?", (PROVIDER_KEY,))
        text = str(stored.scalar())
    assert KEY not in text and "api_key_encrypted" in text
    assert services.provider.get().providers["fake"].api_key_set is True


def test_runs_execute_with_the_encrypted_key_and_after_rotation(
    services: Services,
    admin: Principal,
    operator: Principal,
    provider: FakeLlmServer,
) -> None:
    _set_key(services, admin, provider.url)
    assert _run_once(services, admin, operator, "first") == "done:"
    assert provider.app.records_containing("first")[0].authorization == f"Bearer {KEY}"
    key_file = services.settings.data_dir / "secret.key"
    before = key_file.read_text()
    result = CliRunner().invoke(
        cli, ["secrets", "rotate", "--data-dir", str(services.settings.data_dir)]
    )
    assert result.exit_code == 0, result.output
    assert "Re-encrypted 1 provider key" in result.output
    assert key_file.read_text() != before
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert not (services.settings.data_dir / "secret.key.new").exists()
    # The running services read the rotated key file on their next use.
    assert _run_once(services, admin, operator, "second") == "done:"
    assert provider.app.records_containing("second")[0].authorization == f"Bearer {KEY}"
    assert KEY.encode() not in _raw_bytes(services.settings.data_dir)


def test_the_secret_key_file_is_private_and_never_in_the_database(services: Services) -> None:
    key_file = services.settings.data_dir / "secret.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.read_text().strip().encode() not in _raw_bytes(services.settings.data_dir)


def test_plaintext_keys_stored_before_are_encrypted_on_start(
    settings: Settings, admin: Principal
) -> None:
    first = build_services(settings)
    first.close()
    # A store written before encryption: the key in plaintext in the provider config.
    with closing(sqlite3.connect(settings.data_dir / "ops.db")) as conn:
        value = json.dumps(
            {
                "active": "old",
                "providers": {
                    "old": {"base_url": "http://127.0.0.1:9/v1", "model": "m", "api_key": KEY}
                },
            }
        )
        conn.execute(
            "INSERT INTO kv (key, value, revision, updated_at) VALUES (?, ?, 1, ?)",
            (PROVIDER_KEY, value, "2026-01-01T00:00:00.000000Z"),
        )
        conn.commit()
    assert KEY.encode() in _raw_bytes(settings.data_dir)
    again = build_services(settings)
    try:
        assert KEY.encode() not in _raw_bytes(settings.data_dir)
        loaded = again.provider.load().providers["old"]
        assert loaded.api_key == KEY
        entries = again.maintenance.audit_page(limit=10).items
        assert entries[0].action == "provider.keys_encrypted"
        assert KEY not in str(entries[0].detail)
    finally:
        again.close()


def test_a_wrong_secret_key_is_a_clear_error_when_the_key_is_needed(
    settings: Settings,
    admin: Principal,
    operator: Principal,
    provider: FakeLlmServer,
) -> None:
    services = build_services(settings)
    try:
        _set_key(services, admin, provider.url)
    finally:
        services.close()
    (settings.data_dir / "secret.key").unlink()
    services = build_services(settings)  # a new key is created: it cannot open the old one
    try:
        outcome = _run_once(services, admin, operator, "after loss")
        assert outcome.startswith("error:PROVIDER_ERROR")
        assert "cannot be decrypted" in outcome and "secret.key" in outcome
        assert "set the provider's api_key again" in outcome
        assert provider.app.records_containing("after loss") == []
        # The operator sets the key again: runs work.
        _set_key(services, admin, provider.url)
        assert _run_once(services, admin, operator, "fixed") == "done:"
    finally:
        services.close()


def test_a_malformed_secret_key_refuses_to_start(data_dir: Path) -> None:
    with pytest.raises(InputValidationError, match="OPS_SECRET_KEY is not a Fernet key"):
        build_services(Settings(data_dir=data_dir, secret_key=SecretStr("too-short")))
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "secret.key").write_text("garbage\n")
    result = CliRunner().invoke(cli, ["init", "--data-dir", str(data_dir)])
    assert result.exit_code == 1
    assert "secret key file" in result.output and "Traceback" not in result.output
    assert result.output.count("\n") == 1


def test_rotate_with_ops_secret_key_says_what_to_do(
    data_dir: Path, admin: Principal, provider: FakeLlmServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = new_secret_key()
    monkeypatch.setenv("OPS_SECRET_KEY", old)
    services = build_services(Settings(data_dir=data_dir))
    try:
        _set_key(services, admin, provider.url)
    finally:
        services.close()
    assert not (data_dir / "secret.key").exists()  # the environment's key is used, no file
    refused = CliRunner().invoke(cli, ["secrets", "rotate", "--data-dir", str(data_dir)])
    assert refused.exit_code == 1
    assert "OPS_NEW_SECRET_KEY" in refused.output and old not in refused.output
    new = new_secret_key()
    monkeypatch.setenv("OPS_NEW_SECRET_KEY", new)
    done = CliRunner().invoke(cli, ["secrets", "rotate", "--data-dir", str(data_dir)])
    assert done.exit_code == 0, done.output
    assert "set OPS_SECRET_KEY" in done.output and new not in done.output
    monkeypatch.setenv("OPS_SECRET_KEY", new)
    monkeypatch.delenv("OPS_NEW_SECRET_KEY")
    services = build_services(Settings(data_dir=data_dir))
    try:
        assert services.provider.load().providers["fake"].api_key == KEY
    finally:
        services.close()


def test_export_keeps_redacting_encrypted_keys(
    services: Services, admin: Principal, provider: FakeLlmServer, tmp_path: Path
) -> None:
    _set_key(services, admin, provider.url)
    out = tmp_path / "export"
    services.transfer.export_layout(directory=out)
    text = (out / "provider.json").read_text()
    assert KEY not in text and "api_key_encrypted" not in text
    assert '"api_key_set": true' in text
    for path in out.rglob("*.json"):
        assert KEY not in path.read_text()
