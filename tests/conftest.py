"""Shared fixtures: every test gets its own data directory, store and a clean environment.

The storage, services, worker and gateway suites run on both backends (``backend`` is
parametrised over SQLite and PostgreSQL for the paths in ``BOTH_BACKENDS``); elsewhere, and
for tests marked ``sqlite_only``, the store is SQLite alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.auth import Principal
from core.bootstrap import Services, build_services
from core.config import Settings
from core.models import Role
from tests.backends import (
    REQUIRE_ENV,
    URL_ENV,
    Backend,
    PostgresServer,
    postgres_required,
    postgres_url,
    seed_sqlite,
    sqlite_template,
)

_PREFIXES = ("OPS_", "ORCH_")
BOTH_BACKENDS = (
    "tests/unit/",
    "tests/integration/gateway/",
    "tests/integration/test_store.py",
    "tests/integration/test_store_counters.py",
    "tests/integration/test_policy_migration.py",
    "tests/integration/test_worker.py",
    "tests/integration/test_worker_gateway.py",
    "tests/integration/test_worker_store.py",
    "tests/integration/test_postgres.py",
    "tests/integration/test_approval_race.py",
)
_ROOT = Path(__file__).resolve().parent.parent
_pg_outcomes: dict[str, int] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only: the test checks SQLite itself (files, pragmas, triggers)"
    )
    config.addinivalue_line("markers", "postgres_only: the test checks PostgreSQL itself")
    config.addinivalue_line(
        "markers", "empty_store: on PostgreSQL, the test starts from an empty database"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    where = Path(str(metafunc.definition.path)).resolve().relative_to(_ROOT).as_posix()
    names = ["sqlite", "postgresql"] if where.startswith(BOTH_BACKENDS) else ["sqlite"]
    if metafunc.definition.get_closest_marker("sqlite_only"):
        names = ["sqlite"]
    if metafunc.definition.get_closest_marker("postgres_only"):
        names = ["postgresql"]
    if names != ["sqlite"]:
        metafunc.parametrize("backend", names, indirect=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[pytest.TestReport]:
    report: pytest.TestReport = yield
    params = getattr(getattr(item, "callspec", None), "params", {})
    if params.get("backend") == "postgresql":
        report.user_properties.append(("backend", "postgresql"))
        if report.skipped and postgres_required():
            report.outcome = "failed"
            report.longrepr = (
                f"PostgreSQL case skipped, but {REQUIRE_ENV} is set: {report.longrepr}"
            )
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Counted where the reports arrive: in the one process, or in pytest-xdist's
    controller (the reports carry ``user_properties`` from the workers)."""
    if ("backend", "postgresql") in report.user_properties and (
        report.when == "call" or (report.when == "setup" and not report.passed)
    ):
        _pg_outcomes[report.outcome] = _pg_outcomes.get(report.outcome, 0) + 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _pg_outcomes or postgres_required():
        counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(_pg_outcomes.items()))
        terminalreporter.write_line(f"PostgreSQL cases: {counts or 'none ran'}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer | None]:
    url = postgres_url()
    if url is None:
        yield None
        return
    server = PostgresServer(url)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The store of this test: SQLite in the data dir, or a fresh PostgreSQL database."""
    name = getattr(request, "param", "sqlite")
    if name == "sqlite":
        yield Backend("sqlite", None)
        return
    server: PostgresServer | None = request.getfixturevalue("postgres_server")
    if server is None:
        pytest.skip(f"{URL_ENV} is not set: PostgreSQL cases are skipped")
    empty = request.node.get_closest_marker("empty_store") is not None
    database = server.create(migrated=not empty)
    try:
        yield Backend("postgresql", server.url_of(database))
    finally:
        if empty:
            server.drop(database)
        else:
            server.release(database)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Strip stray product variables and point the data dir at this test's temp dir."""
    for key in list(os.environ):
        if key.startswith(_PREFIXES):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OPS_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def settings(data_dir: Path, backend: Backend) -> Settings:
    return Settings(data_dir=data_dir, database_url=backend.url)


@pytest.fixture
def services(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    if settings.is_sqlite and settings.database_url is None:
        seed_sqlite(settings.data_dir, sqlite_template(tmp_path_factory.getbasetemp()))
    built = build_services(settings)
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def admin() -> Principal:
    return Principal(role=Role.ADMIN, name="alice")


@pytest.fixture
def operator() -> Principal:
    return Principal(role=Role.OPERATOR, name="olga")


@pytest.fixture
def actions() -> Principal:
    return Principal(role=Role.ACTIONS, name="gpt")
