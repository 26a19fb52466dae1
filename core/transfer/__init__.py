"""The legacy file layout of SPEC section 3: export a store to it and import it back.

Modules: ``export`` (store to files), ``files`` and ``fields`` (reading files safely),
``parse`` (one file to one core model), ``load`` (files into the store), ``service``.

Layout of DIRECTORY::

    plan.json              the plan
    config.json            the runtime config
    provider.json          provider config; keys redacted (``api_key_set`` instead of ``api_key``)
    drafts/<id>.json       one draft per file
    approved/<id>.json     one approved item per file
    runs/<id>.json         one run per file, its log lines under ``log``

Import rules (also for files written by older orchestrators):

- All or nothing: every file is read and checked first, then everything is written in one
  write transaction with one ``store.import`` audit entry carrying the counts. A file that is
  not JSON, has wrong types, an id that is not an id (path separators, NUL, ...), or a field
  over its limit stops the import with an ``InputValidationError`` naming the file; nothing
  is written.
- Items whose id already exists in the store are skipped and counted (``skipped_*``); the
  plan, config and provider config are imported only into a store that has none yet.
- Legacy ids (``d_1707000000000_ab12cd``), statuses, missing optional fields and timestamps
  given as epoch seconds, epoch milliseconds or ISO strings are accepted.
- An approved item without ``content_sha256`` is refused: nothing proves what was approved.
  With ``unhashed_as_drafts`` (``import --unhashed-as-drafts``) it becomes a ``draft`` to
  review and approve again, and its runs are skipped. One whose stored hash does not match
  its prompt, content, scope (and context, for ``hash_version`` 2) is refused, never
  trusted. ``hash_version`` absent means 1 (files from before ``context`` was hashed); each
  item keeps its version, and the export writes it.
- Nothing is read through a symbolic link: a link (even a broken one) in the directory is an
  error naming it. Numbers beyond 20 digits or out of float range, and text that is not
  valid Unicode (a lone surrogate), are errors naming the file and field.
- Runs left ``pending`` or ``running`` by the old system are imported as ``cancelled``, with
  the reason in ``error`` and a warning log line: an import never makes anything execute.
  (``cancelled`` rather than ``error``: nothing failed, the run was simply not carried over.)
  Create a new run from the approved item to execute it again.
- Timestamps are kept as the files give them (a finished run without ``finished_at`` gets the
  latest time its file does give). Rejected/error drafts and finished runs older than
  ``draft_ttl_days``/``run_ttl_days`` are therefore deleted by the next cleanup pass; the
  counts report them (``expire_at_next_cleanup_drafts``/``_runs``) and the CLI says so.
"""

from core.transfer.service import TransferService

__all__ = ["TransferService"]
