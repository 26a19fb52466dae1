"""Truncation of the audit chain is caught: ``audit verify`` names the head it verified and
checks a head recorded earlier (``--expect-head SEQ:HASH``, from ``GET /ops/audit/head``)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from pydantic import SecretStr

from cli.main import cli
from core.audit import GENESIS
from core.auth import Principal
from core.bootstrap import Services, build_services
from core.config import Settings
from core.models import DraftIn
from gateway.app import create_app

ADMIN = "audit-head-admin-token-0123"
OPERATOR = "audit-head-operator-token-0123"


def _verify(data_dir: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["audit", "verify", "--data-dir", str(data_dir), *args])
    return result.exit_code, result.output


def _delete_newest(data_dir: Path, count: int) -> None:
    with closing(sqlite3.connect(data_dir / "ops.db")) as conn:
        conn.execute("DELETE FROM audit WHERE seq > (SELECT max(seq) FROM audit) - ?", (count,))
        conn.commit()


@pytest.fixture
def store(services: Services, admin: Principal) -> Services:
    for i in range(5):
        services.drafts.create(data=DraftIn(prompt=f"p{i}"), actor=admin)
    return services


def test_audit_verify_prints_the_head_it_verified(store: Services) -> None:
    head = store.maintenance.audit_head()
    assert head.seq == 5 and len(head.hash) == 64
    code, output = _verify(store.settings.data_dir)
    assert code == 0, output
    assert f"head seq {head.seq} hash {head.hash}" in output


def test_deleting_the_newest_audit_rows_is_caught_by_the_expected_head(store: Services) -> None:
    head = store.maintenance.audit_head()
    expect = f"{head.seq}:{head.hash}"
    assert _verify(store.settings.data_dir, "--expect-head", expect)[0] == 0
    _delete_newest(store.settings.data_dir, 2)
    # The rest of the chain still links: without the recorded head nothing looks wrong.
    assert _verify(store.settings.data_dir)[0] == 0
    code, output = _verify(store.settings.data_dir, "--expect-head", expect)
    assert code == 1
    assert "ends at seq 3" in output and "expected head seq 5" in output
    assert output.count("\n") == 1


def test_a_head_with_another_hash_fails(store: Services) -> None:
    head = store.maintenance.audit_head()
    code, output = _verify(store.settings.data_dir, "--expect-head", f"{head.seq}:{'a' * 64}")
    assert code == 1
    assert f"entry {head.seq}" in output and "not the expected" in output


def test_a_chain_that_grew_since_the_recorded_head_verifies(
    store: Services, admin: Principal
) -> None:
    head = store.maintenance.audit_head()
    store.drafts.create(data=DraftIn(prompt="later"), actor=admin)
    code, output = _verify(store.settings.data_dir, "--expect-head", f"{head.seq}:{head.hash}")
    assert code == 0, output
    assert "head seq 6" in output and f"reaches the expected head seq {head.seq}" in output


@pytest.mark.parametrize("bad", ["5", "x:abc", "5:nothex", "-1:" + "a" * 64, "5:" + "a" * 63])
def test_a_malformed_expected_head_is_a_usage_error(store: Services, bad: str) -> None:
    code, output = _verify(store.settings.data_dir, "--expect-head", bad)
    assert code == 2
    assert "SEQ:HASH" in output


def test_get_audit_head_answers_seq_and_hash_for_admins(data_dir: Path) -> None:
    settings = Settings(
        data_dir=data_dir, admin_token=SecretStr(ADMIN), operator_token=SecretStr(OPERATOR)
    )
    services = build_services(settings)
    try:
        with TestClient(create_app(settings, services=services)) as client:
            empty = client.get("/ops/audit/head", headers={"Authorization": f"Bearer {ADMIN}"})
            assert empty.status_code == 200
            assert empty.json() == {"seq": 0, "hash": GENESIS}
            auth = {"Authorization": f"Bearer {ADMIN}"}
            assert client.post("/ops/drafts", json={"prompt": "p"}, headers=auth).status_code == 201
            head = client.get("/ops/audit/head", headers=auth).json()
            assert head == services.maintenance.audit_head().model_dump()
            assert head["seq"] == 1
            denied = client.get("/ops/audit/head", headers={"Authorization": f"Bearer {OPERATOR}"})
            assert denied.status_code == 403
    finally:
        services.close()
    code, output = _verify(data_dir, "--expect-head", f"{head['seq']}:{head['hash']}")
    assert code == 0, output
