"""Settings from the environment and the command line, built at the edge and passed down."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_DATA_DIR", "POSTGRES_SCHEME", "Network", "Settings", "parse_networks"]

DEFAULT_DATA_DIR = Path(".orch_data") / "ops"
POSTGRES_SCHEME = "postgresql+psycopg"
# postgresql:// and postgres:// mean the same server; psycopg 3 is the one driver shipped.
_POSTGRES_SCHEMES = (POSTGRES_SCHEME, "postgresql", "postgres")
_URL_HELP = (
    "OPS_DATABASE_URL must be a SQLite URL such as sqlite:////path/to/ops.db or a PostgreSQL "
    "URL such as postgresql+psycopg://user:password@host:5432/dbname"
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(value: str) -> list[Network]:
    """Comma-separated addresses or CIDRs (``10.0.0.1, 10.1.0.0/16, ::1``) as networks."""
    networks: list[Network] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"{item[:80]!r} is not an IP address or CIDR (e.g. 10.0.0.1 or 10.0.0.0/8)"
            ) from None
    return networks


class Settings(BaseSettings):
    """Process settings. Nothing is read until an instance is created."""

    model_config = SettingsConfigDict(env_prefix="OPS_", extra="ignore", populate_by_name=True)

    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str | None = None

    admin_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("ORCH_TOKEN", "admin_token")
    )
    operator_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("ORCH_OPERATOR_TOKEN", "operator_token")
    )
    actions_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("ORCH_ACTIONS_TOKEN", "actions_token")
    )

    # Encrypts provider keys at rest; without it, <data dir>/secret.key (made on first start).
    secret_key: SecretStr | None = None
    # Only for 'ops-trigger secrets rotate' when the key comes from OPS_SECRET_KEY.
    new_secret_key: SecretStr | None = None

    public_url: str = "http://127.0.0.1:9325"
    cors_origins: str = ""
    # Peers whose X-Forwarded-For names the client address (a reverse proxy); none by default.
    trusted_proxies: str = ""

    # Requests per minute per token, and failed authentications per minute per client address.
    rate_limit_per_minute: int = Field(default=1200, ge=1)
    auth_fail_limit_per_minute: int = Field(default=30, ge=1)

    # Run worker: lease length, heartbeat, and the cross-process poll.
    run_lease_s: float = Field(default=30.0, gt=0)
    run_heartbeat_s: float = Field(default=5.0, gt=0)
    worker_poll_s: float = Field(default=0.5, gt=0)
    cleanup_interval_s: float = Field(default=3600.0, gt=0)
    # On a graceful stop, runs in flight get this long to finish before they are handed back.
    worker_stop_grace_s: float = Field(default=10.0, ge=0)

    # Event streams: keep-alive comment interval, the hub's fallback poll, and how often
    # the SQLite files are looked at for commits by other processes.
    event_keepalive_s: float = Field(default=15.0, gt=0)
    event_poll_s: float = Field(default=1.0, gt=0)
    event_watch_s: float = Field(default=0.02, gt=0)

    # Web console: a session ends after this long without a request (12 h).
    console_idle_s: float = Field(default=12 * 3600.0, gt=0)

    # Webhooks: OPS_WEBHOOK_ALLOW_PRIVATE=true lets a webhook target private, loopback and
    # link-local addresses (refused by default: a webhook must not reach internal services);
    # each delivery attempt is bounded by the timeout.
    webhook_allow_private: bool = False
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=60)

    # MCP server: how often it looks for changes to the approved set.
    mcp_watch_s: float = Field(default=1.0, gt=0)

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str | None) -> str | None:
        # Two adapters of the same code: SQLite (the default) and PostgreSQL through psycopg 3.
        # Anything else is refused here, in one line, rather than later on a missing driver.
        if value is None or not value.strip():
            return None
        value = value.strip()
        scheme, sep, rest = value.partition("://")
        scheme = scheme.lower()
        if not sep:
            raise ValueError(_URL_HELP)
        if scheme in ("sqlite", "sqlite+pysqlite"):
            return value
        if scheme in _POSTGRES_SCHEMES:
            if not rest.strip("/"):
                raise ValueError(_URL_HELP)
            return f"{POSTGRES_SCHEME}://{rest}"
        raise ValueError(_URL_HELP)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        parse_networks(value)
        return value.strip()

    @property
    def trusted_proxy_networks(self) -> list[Network]:
        return parse_networks(self.trusted_proxies)

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ops.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.db_url.startswith("sqlite")

    @property
    def database_label(self) -> str:
        """The store as a person should see it: the SQLite file, or the PostgreSQL URL with
        its password masked."""
        url = self.db_url
        if self.is_sqlite:
            return url.split(":///", 1)[-1]
        scheme, _, rest = url.partition("://")
        auth, at, host = rest.rpartition("@")
        if at and ":" in auth:
            auth = auth.split(":", 1)[0] + ":***"
        return f"{scheme}://{auth}{at}{host}"

    @property
    def secret_key_path(self) -> Path:
        return self.data_dir / "secret.key"

    @property
    def tokens_dir(self) -> Path:
        return self.data_dir / "tokens"

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]
