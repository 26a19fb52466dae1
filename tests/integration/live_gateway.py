"""The real gateway (``create_app`` with its embedded run worker) served by uvicorn on a free
127.0.0.1 port in a thread: what the remote CLI talks to in tests, over a real socket."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from pydantic import SecretStr

from core.config import Settings
from gateway.app import create_app

__all__ = ["ACTIONS", "ADMIN", "OPERATOR", "LiveGateway"]

ADMIN = "cli-admin-token-0123456789abcdef"
OPERATOR = "cli-operator-token-0123456789abcdef"
ACTIONS = "cli-actions-token-0123456789abcdef"


class LiveGateway:
    """``with LiveGateway(data_dir) as gw:`` -- ``gw.url``, and ``gw.admin`` for test setup."""

    def __init__(self, data_dir: Path) -> None:
        self.settings = Settings(
            data_dir=data_dir,
            admin_token=SecretStr(ADMIN),
            operator_token=SecretStr(OPERATOR),
            actions_token=SecretStr(ACTIONS),
            rate_limit_per_minute=1_000_000,
        )
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(self.settings, with_worker=True),
            log_level="warning",
            lifespan="on",
            ws="none",
            http="h11",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self.admin = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10
        )

    def __enter__(self) -> LiveGateway:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the gateway did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.admin.close()
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._sock.close()

    # --- setup through the API, as an admin -----------------------------------------------

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.admin.request(method, path, **kwargs)
        assert response.is_success, response.text
        return response.json() if response.content else None

    def draft(self, prompt: str, content: str = "the content", **fields: Any) -> dict[str, Any]:
        body = {"prompt": prompt, "content": content, **fields}
        created: dict[str, Any] = self.call("POST", "/ops/drafts", json=body)
        return created

    def token(self, role: str, name: str) -> str:
        """A named token made in the gateway's store, as ``ops-trigger token create`` does."""
        from core.bootstrap import build_services
        from core.models import Role

        services = build_services(self.settings)
        try:
            _, value = services.access.create_token(role=Role(role), name=name, actor="cli:test")
        finally:
            services.close()
        return value

    def use_provider(self, base_url: str, **entry: Any) -> None:
        values = {"base_url": base_url + "/v1", "model": "fake-model", "max_retries": 0} | entry
        self.call("PUT", "/ops/provider", json={"active": "fake", "providers": {"fake": values}})

    def wait_run(self, run_id: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run: dict[str, Any] = self.call("GET", f"/ops/runs/{run_id}")
            if run["status"] in ("done", "error", "cancelled"):
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"run stuck: {run}")
            time.sleep(0.02)
