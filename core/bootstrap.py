"""The composition root: the one place that names concrete adapters."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from core.config import Settings
from core.crypto import SecretBox
from core.eventhub import EventHub, bus_source, file_watch_source, push_source
from core.events import EVENTS_COMMITTED, EventBus
from core.provider import HttpxLlmProvider
from core.services.access import AccessService
from core.services.agents import AgentService
from core.services.approvals import ApprovalService
from core.services.drafts import DraftService
from core.services.events import EventService
from core.services.generation import GenerationService
from core.services.keys import SecretKeyService
from core.services.maintenance import MaintenanceService
from core.services.oauth import OAuthService
from core.services.plan import PlanService
from core.services.runs import RunService
from core.services.sessions import SessionService
from core.services.settings import ConfigService, ProviderConfigService
from core.services.webhooks import WebhookService
from core.storage.changes import StoreChanges, open_changes
from core.storage.engine import make_engine, sqlite_path, truncate_wal
from core.storage.sql import SqlUnitOfWork
from core.storage.target import open_copy_target
from core.transfer import TransferService

if TYPE_CHECKING:
    from core.ports import LlmProvider
    from core.webhooks.delivery import DispatcherThread
    from core.worker import RunWorker

__all__ = ["Services", "build_event_hub", "build_services", "build_worker", "init_store"]


@dataclass
class Services:
    settings: Settings
    # Private: front doors reach the store through the services only.
    _engine: Engine = field(repr=False)
    events: EventBus
    plan: PlanService
    drafts: DraftService
    approvals: ApprovalService
    runs: RunService
    config: ConfigService
    provider: ProviderConfigService
    access: AccessService
    maintenance: MaintenanceService
    generation: GenerationService
    oauth: OAuthService
    event_log: EventService
    transfer: TransferService
    secrets: SecretKeyService
    sessions: SessionService
    webhooks: WebhookService
    agents: AgentService
    read_only: bool = False
    extras: dict[str, object] = field(default_factory=dict)
    # Commits by any process (file stamp on SQLite, LISTEN/NOTIFY on PostgreSQL).
    changes: StoreChanges = field(default_factory=StoreChanges)

    @property
    def local_store(self) -> bool:
        """Whether reads are of a local file (SQLite, WAL: a read never waits for a writer
        and takes microseconds) rather than round trips to a server."""
        return self._engine.dialect.name == "sqlite"

    def close(self) -> None:
        self.changes.close()
        self._engine.dispose()


def init_store(settings: Settings) -> bool:
    """Create the data directory and bring the schema up to date; True if anything changed."""
    from core.storage import migrate  # Alembic is only needed by writers

    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    engine = make_engine(settings)
    try:
        return migrate.upgrade(engine)
    finally:
        engine.dispose()


def build_services(
    settings: Settings, *, read_only: bool = False, migrate_schema: bool = True
) -> Services:
    """Wire the services; a writer applies pending migrations first, a reader never writes."""
    # A writer makes <data dir>/secret.key on its first start; a reader never needs a key.
    # First, so that a malformed secret key stops the start before the store is touched.
    box = None if read_only else SecretBox(settings, create=True)
    if not read_only and migrate_schema:
        init_store(settings)
    engine = make_engine(settings, read_only=read_only)
    events = EventBus()
    uow = functools.partial(SqlUnitOfWork, engine, on_events=events.committed)
    plan, drafts = PlanService(uow), DraftService(uow)
    provider = ProviderConfigService(uow, box, events)
    if box is not None:
        try:
            if provider.encrypt_plaintext_keys():
                truncate_wal(engine)
        except BaseException:
            engine.dispose()
            raise
    return Services(
        settings=settings,
        _engine=engine,
        events=events,
        plan=plan,
        drafts=drafts,
        approvals=ApprovalService(uow, events),
        runs=RunService(uow, events),
        config=ConfigService(uow, events),
        provider=provider,
        access=AccessService(uow, settings),
        maintenance=MaintenanceService(uow),
        generation=GenerationService(
            plan=plan, drafts=drafts, providers=provider, llm=HttpxLlmProvider()
        ),
        oauth=OAuthService(uow),
        event_log=EventService(uow),
        transfer=TransferService(
            uow,
            provider,
            store_label=settings.database_label,
            open_target=functools.partial(open_copy_target, settings),
        ),
        secrets=SecretKeyService(provider, settings, functools.partial(truncate_wal, engine)),
        sessions=SessionService(uow, settings),
        webhooks=WebhookService(uow, settings=settings, box=box),
        agents=AgentService(uow, lease_s=settings.run_lease_s),
        read_only=read_only,
        changes=open_changes(settings.db_url, sqlite_path(settings)),
    )


def build_event_hub(services: Services) -> EventHub:
    """The process's one event-log reader, woken by this process's commits (the bus), by
    any process's commits (the store's change feed: a SQLite file watch or PostgreSQL
    ``NOTIFY``), and by a slow fallback poll."""
    settings = services.settings
    hub = EventHub(services.event_log, poll_s=settings.event_poll_s)
    hub.add_source(bus_source(services.events.subscribe, EVENTS_COMMITTED))
    changes = services.changes
    if changes.push:
        hub.add_source(push_source(changes.subscribe))
    elif sqlite_path(settings) is not None:
        hub.add_source(file_watch_source(changes.stamp, settings.event_watch_s))
    return hub


def build_worker(
    services: Services,
    *,
    worker_id: str | None = None,
    llm: LlmProvider | None = None,
    webhooks: bool = True,
) -> RunWorker:
    """A run worker given only what it needs: the run service, the provider port, the
    current config and active provider, the cleanup pass and the change feeds."""
    from core.worker import RunWorker, WorkerDeps  # the gateway starts without the worker

    deps = WorkerDeps(
        settings=services.settings,
        runs=services.runs,
        llm=llm if llm is not None else services.generation.llm,
        read_config=services.config.get,
        read_provider=lambda: services.provider.load().active_entry(),
        cleanup=services.maintenance.cleanup,
        subscribe=services.events.subscribe,
        changes=services.changes,
        deliveries=functools.partial(_deliveries, services) if webhooks else None,
    )
    return RunWorker(deps, worker_id=worker_id)


def _deliveries(services: Services, owner: str) -> DispatcherThread:
    """The webhook delivery loop of the worker ``owner``, on a thread of its own."""
    from core.webhooks.delivery import DispatcherThread, WebhookDispatcher

    return DispatcherThread(WebhookDispatcher(services, owner=owner))
