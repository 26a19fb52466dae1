"""A lean HTTP/1.1 client for plain ``http://`` providers (a local Ollama, vLLM, llama.cpp).

``httpx`` costs about 2 ms of CPU per chat completion on the development machine (its client
layers, and httpcore looking up ``sniffio`` with a failing import several times per
request), more than the rest of a run's work together. This client does what a provider call
needs and nothing more: keep-alive connections per host on the running event loop, ``h11``
for the framing (content length, chunked, connection close), a connect timeout and a timeout
per read, gzip/deflate answers decoded. TLS, proxies and anything else stay with httpx:
``core.provider`` only sends here when the URL is plain HTTP and no proxy variable is set.

A cancelled request closes its connection, so the provider sees the hang-up.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from dataclasses import dataclass
from typing import Any

import h11

__all__ = ["LiteAnswer", "LiteError", "LitePool"]

MAX_IDLE = 64  # idle keep-alive connections kept per host
READ_CHUNK = 65536


class LiteError(Exception):
    """A request that got no answer. ``kind``: ``connect`` (no connection was made),
    ``connect_timeout``, ``write_timeout``, ``read_timeout`` or ``transport`` (the
    connection failed later)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class LiteAnswer:
    """An answer as ``core.provider`` reads it (the names of httpx's ``Response``)."""

    status_code: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class _Conn:
    __slots__ = ("h11", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT)

    def usable(self) -> bool:
        """Still open: the server did not close it while it was idle."""
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


class LitePool:
    """Keep-alive connections by (host, port), for one event loop."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[_Conn]] = {}

    async def request(
        self,
        method: str,
        host: str,
        port: int,
        authority: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        *,
        timeout_s: float,
        connect_s: float,
    ) -> LiteAnswer:
        """Send one request and read the whole answer. A reused connection that the server
        closed before answering is replaced once by a new one."""
        key = (host, port)
        hdrs = [("Host", authority), *headers]
        if body is not None:
            hdrs.append(("Content-Length", str(len(body))))
        while True:
            conn, reused = self._take(key), True
            if conn is None:
                conn, reused = await self._connect(host, port, connect_s), False
            try:
                answer = await self._exchange(conn, method, target, hdrs, body, timeout_s)
            except _Stale:
                conn.close()
                if reused:
                    continue
                raise LiteError(
                    "transport", "the server closed the connection without answering"
                ) from None
            except BaseException:
                conn.close()  # cancelled or failed mid-way: the provider sees the hang-up
                raise
            self._give_back(key, conn)
            return answer

    def _take(self, key: tuple[str, int]) -> _Conn | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.usable():
                return conn
            conn.close()
        return None

    def _give_back(self, key: tuple[str, int], conn: _Conn) -> None:
        if conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE:
            conn.h11.start_next_cycle()
            idle = self._idle.setdefault(key, [])
            if len(idle) < MAX_IDLE:
                idle.append(conn)
                return
        conn.close()

    async def _connect(self, host: str, port: int, connect_s: float) -> _Conn:
        try:
            async with asyncio.timeout(connect_s):
                reader, writer = await asyncio.open_connection(host, port, limit=READ_CHUNK * 4)
        except TimeoutError:
            raise LiteError("connect_timeout", f"no connection within {connect_s:g} s") from None
        except OSError as exc:
            raise LiteError("connect", str(exc) or type(exc).__name__) from None
        return _Conn(reader, writer)

    async def _exchange(
        self,
        conn: _Conn,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        timeout_s: float,
    ) -> LiteAnswer:
        proto = conn.h11
        try:
            out = proto.send(h11.Request(method=method, target=target, headers=headers))
            if body:
                out += proto.send(h11.Data(data=body))
            out += proto.send(h11.EndOfMessage())
            conn.writer.write(out)
            if conn.writer.transport.get_write_buffer_size() > READ_CHUNK:
                try:
                    async with asyncio.timeout(timeout_s):
                        await conn.writer.drain()
                except TimeoutError:
                    raise LiteError("write_timeout", f"not sent within {timeout_s:g} s") from None
            status = 0
            answer_headers: dict[str, str] = {}
            chunks: list[bytes] = []
            received = False
            while True:
                event = proto.next_event()
                if event is h11.NEED_DATA:
                    try:
                        async with asyncio.timeout(timeout_s):
                            data = await conn.reader.read(READ_CHUNK)
                    except TimeoutError:
                        raise LiteError(
                            "read_timeout", f"no answer within {timeout_s:g} s"
                        ) from None
                    if not data and not received:
                        raise _Stale
                    received = True
                    proto.receive_data(data)
                elif isinstance(event, h11.Response):
                    status = event.status_code
                    answer_headers = {
                        name.decode("latin-1").lower(): value.decode("latin-1")
                        for name, value in event.headers
                    }
                elif isinstance(event, h11.Data):
                    chunks.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise LiteError("transport", "the server closed the connection mid-answer")
        except (h11.ProtocolError, OSError) as exc:
            raise LiteError("transport", f"{type(exc).__name__}: {exc}") from None
        content = b"".join(chunks)
        coding = answer_headers.get("content-encoding", "").strip().lower()
        if coding in ("gzip", "deflate"):
            try:
                content = zlib.decompress(content, zlib.MAX_WBITS | 32)  # either header
            except zlib.error as exc:
                raise LiteError("transport", f"undecodable {coding} answer: {exc}") from None
        return LiteAnswer(status_code=status, headers=answer_headers, content=content)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        conns = [conn for group in idle.values() for conn in group]
        for conn in conns:
            conn.close()
        for conn in conns:
            try:
                await conn.writer.wait_closed()
            except OSError:
                pass


class _Stale(Exception):
    """The connection was closed before any byte of an answer came."""
