"""What every remote command shares: the gateway options, token resolution, the exit codes,
and the one place where an ``ApiError`` becomes one line on stderr and an exit status."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from cli.client import BAD_ANSWER, CONNECTION_ERROR, DEFAULT_URL, ApiError, OpsClient

__all__ = [
    "EXIT_CODES",
    "Gateway",
    "RemoteFailure",
    "executor_options",
    "exit_code_for",
    "json_option",
    "paging_options",
    "remote_command",
    "for_agent",
    "with_executor",
]

# The exit status of a remote command, by the class of what went wrong (docs/cli.md).
EXIT_REFUSED = 1  # not confirmed, or refused locally
EXIT_USAGE = 2  # bad options, no token (click's own usage errors are 2 as well)
EXIT_RUN_ERROR = 20  # runs watch: the run ended in `error`
EXIT_RUN_CANCELLED = 21  # runs watch: the run ended `cancelled`
EXIT_CODES: dict[str, int] = {
    CONNECTION_ERROR: 3,
    BAD_ANSWER: 3,
    "UNAUTHORIZED": 4,
    "FORBIDDEN_ROLE": 5,
    "NOT_FOUND": 6,
    "INVALID_ID": 7,
    "VALIDATION_ERROR": 7,
    "PAYLOAD_TOO_LARGE": 7,
    "CONFLICT_STATE": 8,
    "RUN_ALREADY_ACTIVE": 8,
    "LEASE_LOST": 8,
    "REVISION_MISMATCH": 9,
    "RATE_LIMITED": 10,
}
EXIT_SERVER = 11  # provider or storage errors, 5xx, anything else
_BY_STATUS = {401: 4, 403: 5, 404: 6, 400: 7, 413: 7, 422: 7, 409: 8, 412: 9, 429: 10}

_DATA_DIR_KEY = "ops_trigger.data_dir"  # shared with cli.main: a group's --data-dir
_DEFAULT_DATA_DIR = Path(".orch_data") / "ops"


def exit_code_for(error: ApiError) -> int:
    """The exit status for an error: by its code, else by its HTTP status."""
    if error.code in EXIT_CODES:
        return EXIT_CODES[error.code]
    if error.status is not None and error.status in _BY_STATUS:
        return _BY_STATUS[error.status]
    return EXIT_SERVER


class RemoteFailure(click.ClickException):
    """``CODE: detail`` alone on one stderr line, with the exit status of its class."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click declares a class default

    @classmethod
    def of(cls, error: ApiError) -> RemoteFailure:
        return cls(f"{error.code}: {error.detail}", exit_code_for(error))

    def show(self, file: Any = None) -> None:
        click.echo(self.format_message(), err=True)


@dataclass
class Gateway:
    """Where to send requests and with which token; the client is opened on first use."""

    url: str
    token: str
    _client: OpsClient | None = field(default=None, repr=False)

    @property
    def client(self) -> OpsClient:
        if self._client is None:
            self._client = OpsClient(self.url, self.token)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _resolve_token(ctx: click.Context, token: str | None, token_file: Path | None) -> str:
    """``--token``/``OPS_TOKEN``, else ``--token-file``, else the data dir's operator token."""
    from_cli = ctx.get_parameter_source("token") is ParameterSource.COMMANDLINE
    if token and token_file is not None and from_cli:
        raise RemoteFailure("give --token or --token-file, not both", EXIT_USAGE)
    if token and token_file is None:
        return _checked(token.strip(), "--token/OPS_TOKEN")
    if token_file is None:
        token_file = _default_token_file(ctx)
        if not token_file.is_file():
            raise RemoteFailure(
                "no token: pass --token or --token-file, or set OPS_TOKEN "
                f"(no operator token file at {token_file})",
                EXIT_USAGE,
            )
    try:
        value = token_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise RemoteFailure(f"cannot read token file {token_file}: {reason}", EXIT_USAGE) from None
    return _checked(value, f"token file {token_file}")


def _default_token_file(ctx: click.Context) -> Path:
    data_dir = ctx.find_root().meta.get(_DATA_DIR_KEY) or ctx.meta.get(_DATA_DIR_KEY)
    if data_dir is None:
        env = os.environ.get("OPS_DATA_DIR")
        data_dir = Path(env) if env else _DEFAULT_DATA_DIR
    return (Path(data_dir).expanduser() / "tokens" / "operator.token").absolute()


def _checked(value: str, where: str) -> str:
    if not value:
        raise RemoteFailure(f"the token from {where} is empty", EXIT_USAGE)
    if not value.isascii() or not value.isprintable() or any(c.isspace() for c in value):
        raise RemoteFailure(f"the token from {where} has characters a token never has", EXIT_USAGE)
    return value


def _remember_data_dir(
    ctx: click.Context, _param: click.Parameter, value: Path | None
) -> Path | None:
    if value is not None:
        ctx.meta[_DATA_DIR_KEY] = value
    return value


def remote_command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command ``--url``, ``--token``, ``--token-file`` and ``--data-dir``; it receives
    a ``Gateway`` first, and an ``ApiError`` it raises becomes one line and an exit status."""

    @functools.wraps(fn)
    def wrapper(
        *args: Any, url: str, token: str | None, token_file: Path | None, **kwargs: Any
    ) -> Any:
        kwargs.pop("data_dir", None)
        ctx = click.get_current_context()
        gateway = Gateway(url=url, token=_resolve_token(ctx, token, token_file))
        try:
            return fn(gateway, *args, **kwargs)
        except ApiError as error:
            raise RemoteFailure.of(error) from None
        finally:
            gateway.close()

    options = [
        click.option(
            "--url",
            envvar="OPS_URL",
            default=DEFAULT_URL,
            show_default=True,
            help="Gateway base URL (env OPS_URL).",
        ),
        click.option(
            "--token", envvar="OPS_TOKEN", default=None, help="Bearer token (env OPS_TOKEN)."
        ),
        click.option(
            "--token-file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="File holding the token (default: <data dir>/tokens/operator.token).",
        ),
        click.option(
            "--data-dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            callback=_remember_data_dir,
            expose_value=True,
            help="Where to look for the default token file (default: $OPS_DATA_DIR).",
        ),
    ]
    decorated: Callable[..., Any] = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return decorated


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON for scripts (stdout holds only JSON)."
)


def paging_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--limit``, ``--cursor`` and ``--all`` for list commands."""
    for option in reversed(
        [
            click.option(
                "--limit",
                type=click.IntRange(1, 200),
                default=50,
                show_default=True,
                help="Items per page.",
            ),  # fmt: skip
            click.option("--cursor", default=None, help="Continue from a page's next_cursor."),
            click.option("--all", "all_pages", is_flag=True, help="Follow every page."),
        ]
    ):
        fn = option(fn)
    return fn


def executor_options(fn: Any) -> Any:
    """``--executor provider|agent`` and ``--agent NAME`` (SPEC section 14)."""
    fn = click.option(
        "--agent", default=None, metavar="NAME",
        help="The agent that runs it (implies --executor agent; must be in the item's "
        "scope.agents when that is not empty).",
    )(fn)  # fmt: skip
    return click.option(
        "--executor", type=click.Choice(("provider", "agent")), default=None,
        help="Who executes the run (default: the gateway's default_executor).",
    )(fn)  # fmt: skip


def with_executor(body: dict[str, Any], executor: str | None, agent: str | None) -> dict[str, Any]:
    """``body`` with ``executor`` and ``agent`` when given (the gateway resolves the rest)."""
    if executor is not None:
        body["executor"] = executor
    if agent is not None:
        body["agent"] = agent
    return body


def for_agent(run: dict[str, Any]) -> str:
    """`` for agent NAME`` for an agent run, else nothing."""
    return f" for agent {run.get('agent')}" if run.get("executor") == "agent" else ""
