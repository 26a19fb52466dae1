"""The lean HTTP/1.1 client of plain-HTTP providers (core.lite_http) against a raw asyncio
server on loopback: framing, keep-alive, a connection the server closed, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from core.lite_http import LiteError, LitePool

pytestmark = pytest.mark.anyio

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], object]


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[int]:
    srv = await asyncio.start_server(handler, "127.0.0.1", 0)  # type: ignore[arg-type]
    port = srv.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        srv.close()
        await srv.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return await reader.readexactly(length) if length else b""


async def ask(pool: LitePool, port: int, body: bytes = b"{}", timeout_s: float = 5.0) -> object:
    return await pool.request(
        "POST", "127.0.0.1", port, f"127.0.0.1:{port}", "/v1/chat/completions",
        [("Content-Type", "application/json")], body, timeout_s=timeout_s, connect_s=2.0,
    )  # fmt: skip


async def test_chunked_answers_are_read_whole_and_the_connection_is_kept() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                body = await read_request(reader)
            except asyncio.IncompleteReadError:
                break
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Echo: yes\r\n\r\n"
                + f"{len(body):x}\r\n".encode()
                + body
                + b"\r\n0\r\n\r\n"
            )
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    pool = LitePool()
    async with server(handler) as port:
        first = await ask(pool, port, b'{"a": 1}')
        second = await ask(pool, port, b'{"b": 2}')
        await pool.aclose()
    assert first.status_code == 200 and first.json() == {"a": 1}  # type: ignore[attr-defined]
    assert second.headers["x-echo"] == "yes"  # type: ignore[attr-defined]
    assert connections == 1


async def test_a_keep_alive_connection_the_server_closed_is_replaced() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()  # without saying "Connection: close"
        await writer.wait_closed()

    pool = LitePool()
    async with server(handler) as port:
        for _ in range(3):
            answer = await ask(pool, port)
            assert answer.status_code == 200  # type: ignore[attr-defined]
        await pool.aclose()
    assert connections == 3


async def test_a_cancelled_request_hangs_up() -> None:
    hung_up = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if await reader.read(1) == b"":  # the client closed while we "think"
            hung_up.set()
        writer.close()
        await writer.wait_closed()

    pool = LitePool()
    async with server(handler) as port:
        call = asyncio.create_task(ask(pool, port))
        await asyncio.sleep(0.2)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await asyncio.wait_for(hung_up.wait(), timeout=5)
        await pool.aclose()


async def test_no_answer_is_a_read_timeout_and_no_server_a_connect_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read(1)
        writer.close()
        await writer.wait_closed()

    pool = LitePool()
    async with server(handler) as port:
        with pytest.raises(LiteError) as caught:
            await ask(pool, port, timeout_s=0.2)
        assert caught.value.kind == "read_timeout"
    with pytest.raises(LiteError) as caught:
        await ask(pool, port)
    assert caught.value.kind == "connect"
    await pool.aclose()
