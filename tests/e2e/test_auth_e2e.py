"""SPEC section 4 hardening against a real ``ops-trigger serve``: raw header bytes over a
raw socket, X-Forwarded-For only from OPS_TRUSTED_PROXIES (uvicorn is told the same), and
no token or key from a URL query in the access log."""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_gateway_e2e import (
    Gateway,
    _env,
    _executable,
    _free_port,
    _init,
    _wait_until_up,
)

ADMIN = "e2e-admin-token-0123456789"


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    started: list[Gateway] = []

    def start(**env: str) -> Gateway:
        port = _free_port()
        name = f"g{len(started)}"
        data_dir = _init(tmp_path / name)
        stderr = tmp_path / f"{name}.stderr"
        with stderr.open("wb") as sink:
            process = subprocess.Popen(
                [
                    _executable(),
                    "serve",
                    "--port",
                    str(port),
                    "--data-dir",
                    str(data_dir),
                    "--no-worker",
                ],  # fmt: skip
                stdout=subprocess.DEVNULL,
                stderr=sink,
                env=_env(ORCH_TOKEN=ADMIN, **env),
                cwd=tmp_path,
            )
        gateway = Gateway(f"http://127.0.0.1:{port}", data_dir, stderr, process)
        started.append(gateway)
        _wait_until_up(gateway)
        return gateway

    yield start
    for gateway in started:
        if gateway.process.poll() is None:
            gateway.process.send_signal(signal.SIGINT)
            try:
                gateway.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                gateway.process.kill()
                gateway.process.wait()


def _raw_get(gateway: Gateway, path: bytes, *headers: bytes) -> bytes:
    port = int(gateway.url.rsplit(":", 1)[1])
    request = b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    request += b"".join(h + b"\r\n" for h in headers) + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _denials(gateway: Gateway) -> list[dict[str, object]]:
    page = httpx.get(
        f"{gateway.url}/ops/audit?limit=200", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert page.status_code == 200, page.text
    return [
        entry["detail"]
        for entry in page.json()["items"]
        if entry["actor"] == "anonymous" and entry["outcome"] == "denied"
    ]


def test_raw_authorization_bytes_get_401_from_a_real_server(
    start_gateway: Callable[..., Gateway],
) -> None:
    gateway = start_gateway()
    hostile = [b"Bearer \xe9", b"Bearer \xc3\xa9\xff\xfe", b"Bearer \x01\x1b[31m\x7f", b"\xe9 \xe9"]
    for value in hostile:
        answer = _raw_get(gateway, b"/ops/status", b"Authorization: " + value)
        head = answer.split(b"\r\n\r\n", 1)[0].lower()
        assert head.startswith(b"http/1.1 401"), answer[:300]
        assert b"www-authenticate: bearer" in head
        assert b'"code":"UNAUTHORIZED"' in answer
    assert len(_denials(gateway)) == len(hostile)
    log = gateway.log()
    assert "Traceback" not in log
    assert " 500" not in log


def test_x_forwarded_for_from_localhost_is_ignored_without_trusted_proxies(
    start_gateway: Callable[..., Gateway],
) -> None:
    gateway = start_gateway()
    for i in range(3):
        _raw_get(gateway, b"/ops/status", b"X-Forwarded-For: 198.51.100.%d" % i)
    assert {d["client"] for d in _denials(gateway)} == {"127.0.0.1"}
    assert "198.51.100" not in gateway.log()  # nor in uvicorn's access log


def test_x_forwarded_for_counts_from_a_trusted_proxy_on_a_real_server(
    start_gateway: Callable[..., Gateway],
) -> None:
    gateway = start_gateway(OPS_TRUSTED_PROXIES="127.0.0.1")
    _raw_get(gateway, b"/ops/status", b"X-Forwarded-For: 6.6.6.6, 198.51.100.7")
    assert [d["client"] for d in _denials(gateway)] == ["198.51.100.7"]
    # uvicorn was told the same: its access log names the forwarded client.
    assert "198.51.100.7" in gateway.log()


def test_the_access_log_never_shows_a_query_with_a_token_or_key(
    start_gateway: Callable[..., Gateway],
) -> None:
    gateway = start_gateway()
    secret = "query-secret-5f1e2d3c4b5a69788796"
    for query in (
        f"access_token={secret}",
        f"token={secret}",
        f"api_key={secret}",
        f"x=1&KEY={secret}",
        f"a%5Ftoken={secret}",
    ):
        answer = httpx.get(f"{gateway.url}/ops/status?{query}")
        assert answer.status_code == 401  # a query token never authenticates
    as_admin = httpx.get(
        f"{gateway.url}/ops/status?access_token={ADMIN}",
        headers={"Authorization": "Bearer not-the-token"},
    )
    assert as_admin.status_code == 401
    harmless = httpx.get(f"{gateway.url}/ops/runs?status=done&limit=5")
    assert harmless.status_code == 401
    log = gateway.log()
    assert secret not in log
    assert ADMIN not in log
    assert "GET /ops/status?[redacted] HTTP/1.1" in log
    assert "GET /ops/runs?status=done&limit=5 HTTP/1.1" in log  # other queries are kept
