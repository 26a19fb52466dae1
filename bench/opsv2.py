"""A baseline modelled on OPS v2, the orchestrator OPS Trigger replaces (not OPS v2 itself:
its code is not in this repository).

What it keeps of OPS v2, as issue 10 describes it: a FastAPI app served by uvicorn that keeps
each item in one JSON file (drafts/, approved/, runs/ under a data dir), written in place with
no fsync and no locking (it "gets concurrency wrong"), a bearer token compared on each
request, and the same three writes the product's writes figure uses: create a draft, approve
it (the draft file rewritten, an approved file written), create a run of the approved item.
No audit chain, no transaction, no durability: what the product adds is what it pays for.

    .venv/bin/python bench/opsv2.py DATA_DIR PORT     (serves until stopped)
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel

TOKEN = "opsv2-bench-token"


class DraftIn(BaseModel):
    prompt: str
    content: str = ""


class ApproveIn(BaseModel):
    auto_run: bool = False


class RunIn(BaseModel):
    approved_id: str


def create_app(data_dir: Path) -> Any:
    for kind in ("drafts", "approved", "runs"):
        (data_dir / kind).mkdir(parents=True, exist_ok=True)

    def check(authorization: str | None) -> None:
        if authorization != f"Bearer {TOKEN}":
            raise HTTPException(status_code=401, detail="bad token")

    def now() -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def write(kind: str, item: dict[str, Any]) -> None:
        (data_dir / kind / f"{item['id']}.json").write_text(json.dumps(item))

    def read(kind: str, item_id: str) -> dict[str, Any]:
        path = data_dir / kind / f"{item_id}.json"
        if not path.exists():
            raise HTTPException(status_code=404, detail=f"no {kind} {item_id}")
        return json.loads(path.read_text())  # type: ignore[no-any-return]

    app = FastAPI(title="OPS v2-like baseline")

    @app.get("/")
    async def root() -> dict[str, str]:
        return {"service": "opsv2-baseline"}

    @app.post("/drafts", status_code=201)
    async def create_draft(body: DraftIn, authorization: str | None = Header(None)) -> Any:
        check(authorization)
        draft = {"id": f"d_{secrets.token_hex(8)}", "prompt": body.prompt,
                 "content": body.content, "status": "draft", "created_at": now()}  # fmt: skip
        write("drafts", draft)
        return draft

    @app.post("/drafts/{draft_id}/approve")
    async def approve(
        draft_id: str, body: ApproveIn, authorization: str | None = Header(None)
    ) -> Any:
        check(authorization)
        draft = read("drafts", draft_id)
        if draft["status"] != "draft":
            raise HTTPException(status_code=409, detail="not a draft")
        digest = hashlib.sha256((draft["prompt"] + draft["content"]).encode()).hexdigest()
        approved = {"id": f"a_{secrets.token_hex(8)}", "draft_id": draft_id,
                    "prompt": draft["prompt"], "content": draft["content"],
                    "content_sha256": digest, "approved_at": now()}  # fmt: skip
        write("approved", approved)
        draft["status"] = "approved"
        write("drafts", draft)
        return {"approved": approved}

    @app.post("/runs", status_code=201)
    async def create_run(body: RunIn, authorization: str | None = Header(None)) -> Any:
        check(authorization)
        approved = read("approved", body.approved_id)
        run = {"id": f"r_{secrets.token_hex(8)}", "approved_id": approved["id"],
               "content_sha256": approved["content_sha256"], "status": "pending",
               "created_at": now()}  # fmt: skip
        write("runs", run)
        return run

    return app


def writes_per_s(url: str, token: str, count: int, *, prefix: str = "/ops") -> float:
    """One client over HTTP: create a draft, approve it, create a run, ``count`` times.
    The same loop for the product (``prefix="/ops"``) and this baseline (``prefix=""``)."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        started = time.perf_counter()
        for i in range(count):
            draft = client.post(f"{prefix}/drafts", json={"prompt": f"w{i}", "content": "c"})
            draft_id = draft.json()["id"]
            approved = client.post(f"{prefix}/drafts/{draft_id}/approve", json={"auto_run": False})
            run = client.post(
                f"{prefix}/runs", json={"approved_id": approved.json()["approved"]["id"]}
            )
            if run.status_code != 201:
                raise SystemExit(f"writes failed at {url}: {run.status_code} {run.text}")
        return count * 3 / (time.perf_counter() - started)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(
        create_app(Path(sys.argv[1])),
        host="127.0.0.1",
        port=int(sys.argv[2]),
        access_log=False,
        log_level="warning",
    )
