"""The run worker (SPEC section 9) as a small package: the dispatch loop (``dispatch``),
one run attempt (``attempt``), the periodic passes (``passes``) and what it is given
(``deps``). ``core.bootstrap.build_worker`` wires one from the services."""

from core.worker.deps import WorkerDeps
from core.worker.dispatch import RunWorker
from core.worker.job import default_worker_id, run_messages

__all__ = ["RunWorker", "WorkerDeps", "default_worker_id", "run_messages"]
