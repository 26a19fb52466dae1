"""``ops-trigger``: the local commands (init, serve, mcp, worker, token, audit, export,
import, store copy, cleanup) and the remote ones that talk to a gateway over HTTP (status,
plan, drafts, approved, runs: modules ``cli.reads``, ``cli.drafts``, ``cli.runs``;
docs/cli.md).

Every command takes ``--data-dir``. Core errors become one line on stderr and exit code 1.
Commands that start a server import that server's entry point lazily, so ``ops-trigger mcp``
never loads the gateway; the remote command groups are imported only when named. Every
local command but ``init`` refuses a data dir without a store.
"""

from __future__ import annotations

import importlib
import logging
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from core.config import Settings
from core.errors import OpsError, StorageError

if TYPE_CHECKING:
    from core.bootstrap import Services

__all__ = ["main"]

log = logging.getLogger("ops_trigger")


# Remote commands (over HTTP), loaded on first use so local commands stay light.
_REMOTE = {
    "status": "cli.reads:status",
    "plan": "cli.reads:plan",
    "drafts": "cli.drafts:drafts",
    "approved": "cli.reads:approved",
    "runs": "cli.runs:runs",
    "events": "cli.events:events",
    "agent": "cli.agent_exec:agent",
}


class _Cli(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_REMOTE})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _REMOTE and cmd_name not in self.commands:
            module, attr = _REMOTE[cmd_name].split(":")
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
            store = ctx.meta.get(_STORE_KEY)
            if store is not None:  # named after the output, so an error stays one line
                click.echo(f"store: {store}", err=True)
            return result
        except OpsError as exc:
            raise click.ClickException(f"{exc.code}: {exc.message}") from None
        except Exception as exc:
            # A corrupt ops.db, a read-only or missing data directory: one line, no traceback.
            from core.storage.failures import as_storage_error

            error = as_storage_error(exc)
            if error is None:
                raise
            raise click.ClickException(f"{error.code}: {error.message}{_where(ctx)}") from None


def _where(ctx: click.Context) -> str:
    """`` (data dir: D)`` for storage errors, so the user knows which store is meant."""
    data_dir = ctx.meta.get(_DATA_DIR_KEY)
    return f" (data dir: {data_dir})" if data_dir is not None else ""


_DATA_DIR_KEY = "ops_trigger.data_dir"
_STORE_KEY = "ops_trigger.store"  # the store a local command used, named when it is done


def _remember_data_dir(
    ctx: click.Context, _param: click.Parameter, value: Path | None
) -> Path | None:
    """``--data-dir`` is accepted on groups too (``ops-trigger token --data-dir D list``)."""
    if value is not None:
        ctx.meta[_DATA_DIR_KEY] = value
    return value


def _one_line(exc: ValueError) -> str:
    """A pydantic validation error as one line: ``field: message; …``."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc).splitlines()[0]
    parts = []
    for err in errors():
        field = ".".join(str(p) for p in err.get("loc", ())) or "settings"
        parts.append(f"{field}: {str(err.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return "; ".join(parts)


def _settings(data_dir: Path | None) -> Settings:
    ctx = click.get_current_context(silent=True)
    if data_dir is None and ctx is not None:
        data_dir = ctx.meta.get(_DATA_DIR_KEY)
    try:
        settings = Settings(data_dir=data_dir) if data_dir is not None else Settings()
    except ValueError as exc:  # pydantic ValidationError is a ValueError
        raise click.ClickException(f"invalid settings: {_one_line(exc)}") from None
    if ctx is not None:
        ctx.meta[_DATA_DIR_KEY] = settings.data_dir
    if settings.data_dir.exists() and not settings.data_dir.is_dir():
        raise click.ClickException(f"data dir {settings.data_dir} exists and is not a directory")
    return settings


def _store_settings(data_dir: Path | None) -> Settings:
    """The settings of a command that needs an existing store (every one but ``init``): a
    data dir without one is an error, never a new empty store."""
    from core.storage.presence import locate_store

    settings = _settings(data_dir)
    store = locate_store(settings)
    if not store.exists:
        init = "ops-trigger init"
        if "data_dir" in settings.model_fields_set and settings.database_url is None:
            init += f" --data-dir {shlex.quote(str(settings.data_dir))}"
        raise StorageError(
            f"no store at {store.where}: run '{init}' to create it, or check --data-dir "
            "and OPS_DATA_DIR"
        )
    return settings


def _open_services(data_dir: Path | None) -> Services:
    """The services on an existing store (named on stderr when the command is done)."""
    from core.bootstrap import build_services
    from core.storage.presence import locate_store

    settings = _store_settings(data_dir)
    services = build_services(settings)
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta[_STORE_KEY] = locate_store(settings).where
    return services


def _logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Alembic narrates every plugin and migration step at INFO; keep start-up readable. httpx
    # logs every request at INFO: one line per provider call and webhook delivery, which
    # the run log and the deliveries record already hold.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if not verbose:
        logging.getLogger("httpx").setLevel(logging.WARNING)


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    callback=_remember_data_dir,
    help="Data directory (default: $OPS_DATA_DIR or ./.orch_data/ops).",
)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ops-trigger")
@data_dir_option
def cli(data_dir: Path | None) -> None:
    """OPS Trigger: approval-gated multi-agent trigger."""


@cli.command()
@data_dir_option
def init(data_dir: Path | None) -> None:
    """Create the store, apply migrations and write first-start token files."""
    from core.bootstrap import build_services, init_store

    settings = _settings(data_dir)
    changed = init_store(settings)
    services = build_services(settings, migrate_schema=False)
    try:
        result = services.access.bootstrap()
    finally:
        services.close()
    db = settings.database_label
    if not changed and not result.created:
        click.echo(f"Already initialised: {db} is up to date; nothing changed.")
        for path in result.existing:
            click.echo(f"  token file: {path}")
        return
    click.echo(f"Store ready: {db}" + (" (schema migrated)" if changed else ""))
    for path in result.created:
        click.echo(f"  wrote token file (mode 0600): {path}")


@cli.command()
@data_dir_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=9325, show_default=True, type=click.IntRange(0, 65535))
@click.option("--no-worker", is_flag=True, help="Do not run the embedded run worker.")
def serve(data_dir: Path | None, host: str, port: int, no_worker: bool) -> None:
    """Start the HTTP gateway (with the embedded run worker)."""
    from gateway.server import serve as run_gateway

    settings = _store_settings(data_dir)
    _logging()
    try:
        run_gateway(settings, host=host, port=port, with_worker=not no_worker)
    except KeyboardInterrupt:  # Ctrl-C: uvicorn has already shut down cleanly
        log.info("gateway stopped")


@cli.command()
@data_dir_option
@click.option("--print-config", is_flag=True, help="Print client configuration JSON and exit.")
@click.option(
    "--remote",
    metavar="URL",
    default=None,
    help="With --print-config: configurations for remote clients of the gateway at URL.",
)
def mcp(data_dir: Path | None, print_config: bool, remote: str | None) -> None:
    """Run the read-only MCP stdio server (spawned by MCP clients)."""
    if remote is not None:
        if not print_config:
            raise click.UsageError("--remote goes with --print-config")
        from mcp_server.remote_config import note, render

        click.echo(render(remote), nl=False)
        warning = note(remote)
        if warning:
            click.echo(warning, err=True)
        return
    from mcp_server.main import main as run_mcp

    # The server refuses a missing store itself, naming it (and --print-config notes it).
    run_mcp(_settings(data_dir), print_config=print_config)


@cli.command()
@data_dir_option
@click.option("--worker-id", default=None, help="Name of this worker (default: host-pid).")
def worker(data_dir: Path | None, worker_id: str | None) -> None:
    """Run a standalone run worker until interrupted."""
    from cli.worker_process import run_standalone

    settings = _store_settings(data_dir)
    _logging()
    run_standalone(settings, worker_id=worker_id)


@cli.group()
@data_dir_option
def token(data_dir: Path | None) -> None:
    """Manage named bearer tokens (stored as SHA-256)."""


@token.command("create")
@data_dir_option
@click.option("--role", required=True, type=click.Choice(["actions", "agent", "operator", "admin"]))
@click.option("--name", required=True, help="A unique name; audit entries show role:name.")
def token_create(data_dir: Path | None, role: str, name: str) -> None:
    """Create a token and print it once."""
    from core.models import Role

    services = _open_services(data_dir)
    try:
        info, value = services.access.create_token(role=Role(role), name=name, actor="cli:local")
    finally:
        services.close()
    click.echo(value)
    click.echo(f"Created {info.role.value} token '{info.name}'. It is shown only once.", err=True)


@token.command("list")
@data_dir_option
def token_list(data_dir: Path | None) -> None:
    """List tokens: name, role, created, last used, and for OAuth grants the client and
    the user who allowed it (never the value)."""
    services = _open_services(data_dir)
    try:
        items = services.access.list_tokens()
    finally:
        services.close()
    click.echo(
        f"{'NAME':<32} {'ROLE':<9} {'CREATED':<28} {'LAST USED':<28} {'CLIENT (USER)':<40} STATE"
    )
    for t in items:
        state = "revoked" if t.revoked_at else "active"
        client = f"{t.client} ({t.user})" if t.client else "-"
        click.echo(
            f"{t.name:<32} {t.role.value:<9} {t.created_at:<28} {t.last_used_at or '-':<28} "
            f"{client:<40} {state}"
        )


@token.command("revoke")
@data_dir_option
@click.argument("name")
def token_revoke(data_dir: Path | None, name: str) -> None:
    """Revoke a token by name."""
    services = _open_services(data_dir)
    try:
        services.access.revoke_token(name=name, actor="cli:local")
    finally:
        services.close()
    click.echo(f"Revoked token '{name}'.")


@cli.group()
@data_dir_option
def audit(data_dir: Path | None) -> None:
    """Inspect the hash-chained audit log."""


def _parse_head(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> tuple[int, str] | None:
    if value is None:
        return None
    seq, sep, digest = value.strip().partition(":")
    if not sep or not seq.isdigit() or len(digest) != 64 or not _is_hex(digest):
        raise click.BadParameter(
            "expected SEQ:HASH, e.g. 42:3f1c… (the seq and 64-hex hash of "
            "GET /ops/audit/head or of an earlier 'audit verify')"
        )
    return int(seq), digest.lower()


def _is_hex(text: str) -> bool:
    return all(ch in "0123456789abcdefABCDEF" for ch in text)


@audit.command("verify")
@data_dir_option
@click.option(
    "--expect-head",
    metavar="SEQ:HASH",
    callback=_parse_head,
    help="A head recorded earlier (GET /ops/audit/head): fail unless the chain reaches it "
    "with that hash, so that deleted newest entries are caught.",
)
def audit_verify(data_dir: Path | None, expect_head: tuple[int, str] | None) -> None:
    """Verify every link and hash of the audit chain; print the head it verified."""
    services = _open_services(data_dir)
    try:
        result = services.maintenance.verify_audit(expect_head=expect_head)
    finally:
        services.close()
    if not result.ok:
        raise click.ClickException(f"audit chain broken: {result.reason}")
    click.echo(
        f"Audit chain ok: {result.entries} entries verified; "
        f"head seq {result.head_seq} hash {result.head_hash}"
        + (f"; reaches the expected head seq {expect_head[0]}." if expect_head else ".")
    )


@cli.group()
@data_dir_option
def secrets(data_dir: Path | None) -> None:
    """Manage the secret key that encrypts provider api keys at rest."""


@secrets.command("new-key")
def secrets_new_key() -> None:
    """Print a fresh secret key (for OPS_SECRET_KEY or OPS_NEW_SECRET_KEY)."""
    from core.crypto import new_secret_key

    click.echo(new_secret_key())


@secrets.command("rotate")
@data_dir_option
def secrets_rotate(data_dir: Path | None) -> None:
    """Re-encrypt every stored provider key under a new secret key."""
    services = _open_services(data_dir)
    try:
        outcome = services.secrets.rotate(actor="cli:secrets")
    finally:
        services.close()
    click.echo(outcome)


@cli.command("export")
@data_dir_option
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def export_cmd(data_dir: Path | None, directory: Path) -> None:
    """Write the legacy file layout (provider keys redacted) to DIRECTORY."""
    services = _open_services(data_dir)
    try:
        counts = services.transfer.export_layout(directory=directory)
    finally:
        services.close()
    click.echo(f"Exported to {directory}: " + ", ".join(f"{n} {k}" for k, n in counts.items()))


@cli.command("import")
@data_dir_option
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--unhashed-as-drafts",
    is_flag=True,
    help="Import approved items without content_sha256 as drafts to review again "
    "(refused otherwise); their runs are skipped.",
)
def import_cmd(data_dir: Path | None, directory: Path, unhashed_as_drafts: bool) -> None:
    """Read a legacy file layout (also from older orchestrators) into the store."""
    services = _open_services(data_dir)
    try:
        counts = services.transfer.import_layout(
            directory=directory, actor="cli:import", unhashed_as_drafts=unhashed_as_drafts
        )
    finally:
        services.close()
    click.echo(f"Imported from {directory}: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    if counts.get("provider_keys_to_set_again"):
        click.echo(
            "Note: the provider config had api keys that an export leaves out "
            "(api_key_set: true); set them again with PUT /ops/provider.",
            err=True,
        )
    drafts = counts.get("expire_at_next_cleanup_drafts", 0)
    runs = counts.get("expire_at_next_cleanup_runs", 0)
    if drafts or runs:
        click.echo(
            f"Note: {drafts} rejected/error drafts and {runs} finished runs are older than "
            "draft_ttl_days/run_ttl_days: the next cleanup pass (when serve or worker starts, "
            "or 'ops-trigger cleanup') deletes them.\nTo keep them, raise the two TTLs "
            "first: 'ops-trigger serve --no-worker', then PUT /ops/config.",
            err=True,
        )


@cli.group()
@data_dir_option
def store(data_dir: Path | None) -> None:
    """The store as a whole: copy it to another database."""


# Exit code of 'store copy' when the target is not empty (the remote commands' 409 code).
_TARGET_NOT_EMPTY = 8


@store.command("copy")
@data_dir_option
@click.option(
    "--to",
    "url",
    required=True,
    help="The empty database to copy into: sqlite:////path/ops.db or "
    "postgresql+psycopg://user@host/db.",
)
def store_copy(data_dir: Path | None, url: str) -> None:
    """Copy the whole store to an empty database (SQLite or PostgreSQL) and verify it."""
    from core.errors import ConflictStateError

    services = _open_services(data_dir)
    try:
        result = services.transfer.copy_to(url=url, actor="cli:store-copy")
    except ConflictStateError as exc:
        click.echo(f"Error: {exc.code}: {exc.message}", err=True)
        sys.exit(_TARGET_NOT_EMPTY)
    finally:
        services.close()
    total = sum(result.rows.values())
    click.echo(
        f"Copied {result.source} to {result.target}: {total} rows in {len(result.rows)} tables"
    )
    for name, count in result.rows.items():
        click.echo(f"  {name:<16} {count}")
    seq, head = result.audit_head
    click.echo(f"Verified: row counts of every table, audit chain up to seq {seq} ({head[:16]}…)")
    settings = services.settings
    where = "OPS_SECRET_KEY" if settings.secret_key is not None else str(settings.secret_key_path)
    click.echo(
        f"Provider keys and webhook secrets stay encrypted under the secret key ({where}): "
        "give every process "
        "that uses the copy the same key (copy secret.key into its data dir, or set "
        "OPS_SECRET_KEY), then point it at the copy with OPS_DATABASE_URL.",
        err=True,
    )


@cli.command()
@data_dir_option
def cleanup(data_dir: Path | None) -> None:
    """Delete old rejected/error drafts and old finished runs (approved items are kept)."""
    services = _open_services(data_dir)
    try:
        result = services.maintenance.cleanup(actor="cli:cleanup")
    finally:
        services.close()
    click.echo(f"Deleted {result.drafts} drafts and {result.runs} runs.")
    if result.approvals_lapsed or result.approved_expired:
        click.echo(
            f"Lapsed {result.approvals_lapsed} approvals; "
            f"{result.approved_expired} approved items expired (never run)."
        )


def main() -> None:
    """The console script: like click's standalone mode, but a usage error (a bad role, an
    unknown option, a data dir that is a file) is one line on stderr too."""
    try:
        result = cli.main(prog_name="ops-trigger", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # a bare group: its help, as usual
        exc.show()
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "ops-trigger"
        click.echo(f"Error: {exc.format_message()} (see '{where} --help')", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)
