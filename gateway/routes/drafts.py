"""Drafts: list, read, create, edit, approve, reject; revisions and diffs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.requests import Request
from starlette.responses import Response

from core.auth import Action, Principal
from core.bootstrap import Services
from core.models import (
    ApprovalList,
    ApproveIn,
    ApproveResult,
    DraftDiff,
    DraftIn,
    DraftPatch,
    DraftRevision,
    DraftStatus,
    DraftView,
    Page,
    RejectIn,
)
from core.pagination import MAX_LIMIT
from core.services.drafts import MAX_REVISION
from gateway.deps import IfMatchDep, PrincipalDep, ServicesDep, require
from gateway.fastread import FastRead, Loaded, cached, fast
from gateway.offload import read
from gateway.problems import problem_responses
from gateway.render import agree, location, render
from gateway.routes.params import Cursor, Limit, TaskFilter

router = APIRouter(prefix="/ops/drafts", tags=["drafts"])

DraftId = Annotated[str, Path(description="Draft id: 'd_' followed by a ULID.")]
RevisionNumber = Annotated[
    int, Path(ge=1, le=MAX_REVISION, description="Revision number, 1 for the first version.")
]


_LIST_PARAMS = frozenset({"status", "task_id", "limit", "cursor", "waiting"})
_STATUSES = frozenset(status.value for status in DraftStatus)
_BOOLS = {"true": True, "false": False}
_TEXT_MAX = 64  # task_id and cursor, as declared below


def _list_key(request: Request) -> tuple[object, ...] | None:
    """The parameters of a plain list request; None (the FastAPI path) for anything else:
    an unknown, repeated or empty parameter, or a value that is not plainly valid."""
    items = request.query_params.multi_items()
    given = dict(items)
    if len(given) != len(items) or not given.keys() <= _LIST_PARAMS:
        return None
    if any(not value for value in given.values()):
        return None
    status = given.get("status")
    task_id = given.get("task_id")
    cursor = given.get("cursor")
    limit_text = given.get("limit", "50")
    waiting = _BOOLS.get(given.get("waiting", "false"))
    if status is not None and status not in _STATUSES:
        return None
    if any(text is not None and len(text) > _TEXT_MAX for text in (task_id, cursor)):
        return None
    if not (limit_text.isascii() and limit_text.isdigit() and len(limit_text) <= 4):
        return None
    limit = int(limit_text)
    if waiting is None or not 1 <= limit <= MAX_LIMIT:
        return None
    return ("drafts", status, task_id, limit, cursor, waiting)


async def _list_answer(request: Request, principal: Principal, key: tuple[object, ...]) -> Response:
    services: Services = request.app.state.services
    _, status, task_id, limit, cursor, waiting = key

    async def load() -> Loaded:
        page, until = await read(
            services,
            services.drafts.list_until,
            status=DraftStatus(status) if isinstance(status, str) else None,
            task_id=task_id if isinstance(task_id, str) else None,
            limit=limit if isinstance(limit, int) else None,
            cursor=cursor if isinstance(cursor, str) else None,
            waiting=waiting is True,
        )
        return page, until, None

    return await cached(request, key, load)


@router.get("", response_model=Page[DraftView], summary="List drafts")
@fast(FastRead(key=_list_key, answer=_list_answer))
async def list_drafts(
    principal: PrincipalDep,
    services: ServicesDep,
    status: Annotated[DraftStatus | None, Query(description="Only drafts in this status.")] = None,
    task_id: TaskFilter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    waiting: Annotated[
        bool,
        Query(description="Only drafts gathering approvals: some given, quorum not met yet."),
    ] = False,
) -> Response:
    """Drafts, newest first, one page at a time; each with approvals {have, need}."""
    page = await read(
        services,
        services.drafts.list,
        status=status,
        task_id=task_id,
        limit=limit,
        cursor=cursor,
        waiting=waiting,
    )
    return render(page)


def _draft_key(request: Request) -> tuple[str, str]:
    return ("draft", request.path_params["id"])


async def _draft_answer(request: Request, principal: Principal, key: tuple[str, str]) -> Response:
    services: Services = request.app.state.services

    async def load() -> Loaded:
        draft, until = await read(services, services.drafts.get_until, draft_id=key[1])
        return draft, until, draft.revision

    return await cached(request, key, load)


@router.get(
    "/{id}", response_model=DraftView, summary="Get a draft", responses=problem_responses(404)
)
@fast(FastRead(key=_draft_key, answer=_draft_answer))
async def get_draft(id: DraftId, principal: PrincipalDep, services: ServicesDep) -> Response:
    """One draft with its effective scope and content_sha256; the ETag holds its revision."""
    draft = await read(services, services.drafts.get, draft_id=id)
    return render(draft, etag=draft.revision)


@router.post("", response_model=DraftView, status_code=201, summary="Create a draft")
def create_draft(
    body: DraftIn,
    principal: Annotated[Principal, require(Action.DRAFT_WRITE)],
    services: ServicesDep,
) -> Response:
    """Write a draft by hand; it must be approved before anything runs."""
    draft = services.drafts.create(data=body, actor=principal)
    return render(draft, status=201, etag=draft.revision, headers=location("/ops/drafts", draft))


@router.put(
    "/{id}",
    response_model=DraftView,
    summary="Edit a draft",
    responses=problem_responses(404, 409, 412),
)
def update_draft(
    id: DraftId,
    body: DraftPatch,
    principal: Annotated[Principal, require(Action.DRAFT_WRITE)],
    services: ServicesDep,
    revision: IfMatchDep,
) -> Response:
    """Edit a draft or error draft (any subset of fields); each edit bumps the revision."""
    draft = services.drafts.update(draft_id=id, patch=body, actor=principal, if_match=revision)
    return render(draft, etag=draft.revision)


@router.post(
    "/{id}/approve",
    response_model=ApproveResult,
    summary="Approve a draft",
    responses=problem_responses(404, 409, 412),
)
def approve_draft(
    id: DraftId,
    principal: Annotated[Principal, require(Action.APPROVE)],
    services: ServicesDep,
    revision: IfMatchDep,
    body: ApproveIn | None = None,
    auto_run: Annotated[
        bool | None,
        Query(description="Start a run at once; absent means the configured default_auto_run."),
    ] = None,
    expected_revision: Annotated[
        int | None,
        Query(ge=0, description="The draft revision you reviewed; another one is 412."),
    ] = None,
    expected_sha256: Annotated[
        str | None,
        Query(
            pattern=r"^[0-9a-fA-F]{64}$",
            description="The content_sha256 you read on the draft; another hash is 412.",
        ),
    ] = None,
) -> Response:
    """Approve exactly the reviewed revision and hash. Answers approvals {have, need}; the
    approved item (and run) once the quorum is met, else approved null."""
    data = body if body is not None else ApproveIn()
    query_revision = agree(expected_revision, revision, names=("?expected_revision=", "If-Match"))
    result = services.approvals.approve(
        draft_id=id,
        actor=principal,
        auto_run=agree(data.auto_run, auto_run, names=("auto_run in the body", "?auto_run=")),
        expected_revision=agree(
            data.expected_revision,
            query_revision,
            names=("expected_revision in the body", "?expected_revision=/If-Match"),
        ),
        expected_sha256=agree(
            data.expected_sha256.lower() if data.expected_sha256 else None,
            expected_sha256.lower() if expected_sha256 else None,
            names=("expected_sha256 in the body", "?expected_sha256="),
        ),
        note=data.note,
        executor=data.executor,
        agent=data.agent,
    )
    return render(result)


@router.get(
    "/{id}/approvals",
    response_model=ApprovalList,
    summary="List a draft's approvals",
    responses=problem_responses(404),
)
def list_draft_approvals(id: DraftId, principal: PrincipalDep, services: ServicesDep) -> Response:
    """Who approved the draft, when, which hash, with what note, and when each lapses;
    have/need count the approvals toward its quorum."""
    return render(services.approvals.approvals_of(draft_id=id))


@router.post(
    "/{id}/reject",
    response_model=DraftView,
    summary="Reject a draft",
    responses=problem_responses(404, 409),
)
def reject_draft(
    id: DraftId,
    body: RejectIn,
    principal: Annotated[Principal, require(Action.REJECT)],
    services: ServicesDep,
) -> Response:
    """Reject a draft with a reason; it can no longer be approved."""
    draft = services.drafts.reject(draft_id=id, reason=body.reason, actor=principal)
    return render(draft, etag=draft.revision)


@router.get(
    "/{id}/revisions",
    response_model=Page[DraftRevision],
    summary="List a draft's revisions",
    responses=problem_responses(404),
)
def list_revisions(
    id: DraftId,
    principal: PrincipalDep,
    services: ServicesDep,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    """Every revision of a draft, newest first: its text, who wrote it and when."""
    return render(services.drafts.revisions(draft_id=id, limit=limit, cursor=cursor))


@router.get(
    "/{id}/revisions/{n}",
    response_model=DraftRevision,
    summary="Get one revision of a draft",
    responses=problem_responses(404),
)
def get_revision(
    id: DraftId, n: RevisionNumber, principal: PrincipalDep, services: ServicesDep
) -> Response:
    """One immutable revision of a draft: prompt, content, context, task, scope, author."""
    return render(services.drafts.revision(draft_id=id, revision=n))


@router.get(
    "/{id}/diff",
    response_model=DraftDiff,
    summary="Diff two revisions of a draft",
    responses=problem_responses(404),
)
def diff_draft(
    id: DraftId,
    principal: PrincipalDep,
    services: ServicesDep,
    from_: Annotated[
        int | None,
        Query(
            alias="from",
            ge=1,
            le=MAX_REVISION,
            description="Revision to compare from; default: the one before 'to'.",
        ),
    ] = None,
    to: Annotated[
        int | None,
        Query(ge=1, le=MAX_REVISION, description="Revision to compare to; default: the current."),
    ] = None,
) -> Response:
    """Changed fields (before, after) and a unified diff of content between two revisions."""
    return render(services.drafts.diff(draft_id=id, from_revision=from_, to_revision=to))
