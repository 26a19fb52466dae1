"""A thin HTTP client for the ``/ops`` API: JSON in, JSON out, one error type.

Every failure, whether the gateway answered with problem+json, answered something else, or
could not be reached at all, becomes an ``ApiError`` carrying a stable ``code`` and a
one-line ``detail``. Commands stay a few lines each and map that one error once.

    ApiError
      code = a problem code from the gateway (UNAUTHORIZED, NOT_FOUND, ...),
             or CONNECTION_ERROR when no answer came, or HTTP_<status> for a non-problem answer
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx

__all__ = ["DEFAULT_URL", "ApiError", "OpsClient", "segment"]

DEFAULT_URL = "http://127.0.0.1:9325"
CONNECTION_ERROR = "CONNECTION_ERROR"
BAD_ANSWER = "BAD_ANSWER"

Params = Mapping[str, str | int | bool | None]


class ApiError(Exception):
    """A request that did not succeed: ``code`` and a one-line ``detail``."""

    def __init__(self, code: str, detail: str, *, status: int | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = " ".join(detail.split()) or code
        self.status = status


class OpsClient:
    """Calls one gateway with one bearer token; use as a context manager or call ``close``."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        try:
            self._http = httpx.Client(
                base_url=self.url,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                timeout=timeout,
                transport=transport,
                follow_redirects=False,
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError) as exc:
            raise ApiError(CONNECTION_ERROR, f"bad gateway URL {url!r}: {exc}") from None

    def __enter__(self) -> OpsClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def get(self, path: str, params: Params | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(
        self,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        return self.request("POST", path, json=body, headers=headers)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send one request; the decoded JSON body of a 2xx answer, else ``ApiError``."""
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(
                method, path, params=query, json=json, headers=dict(headers or {})
            )
        except httpx.TimeoutException:
            raise ApiError(CONNECTION_ERROR, f"no answer from {self.url} (timed out)") from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise ApiError(CONNECTION_ERROR, f"bad gateway URL {self.url!r}: {exc}") from None
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise ApiError(CONNECTION_ERROR, f"cannot reach {self.url}: {reason}") from None
        return _decode(response)

    def stream(
        self,
        path: str,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Follow a Server-Sent Events answer: each message as ``{event, id, data}`` (data
        decoded from JSON), until the gateway ends the stream; comment lines are skipped."""
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        wanted = {"Accept": "text/event-stream", **dict(headers or {})}
        timeout = httpx.Timeout(self._http.timeout.connect, read=None)
        try:
            with self._http.stream(
                "GET", path, params=query, headers=wanted, timeout=timeout
            ) as response:
                if not response.is_success:
                    response.read()
                    raise _problem(response)
                message: dict[str, Any] = {}
                for line in response.iter_lines():
                    if line == "":
                        if "data" in message:
                            yield message
                        message = {}
                    elif line.startswith(":"):
                        continue
                    else:
                        key, _, value = line.partition(":")
                        value = value.removeprefix(" ")
                        if key == "data":
                            try:
                                message["data"] = jsonlib.loads(value)
                            except ValueError:
                                raise ApiError(BAD_ANSWER, "the event stream is not JSON") from None
                        elif key in ("event", "id"):
                            message[key] = value
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise ApiError(CONNECTION_ERROR, f"lost the stream from {self.url}: {reason}") from None


def segment(value: str) -> str:
    """An id as exactly one URL path segment (the gateway validates what it is)."""
    return quote(value, safe="")


def _param(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _decode(response: httpx.Response) -> Any:
    if response.is_success:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ApiError(
                BAD_ANSWER,
                f"{response.request.method} {response.request.url.path} answered "
                f"{response.status_code} with a body that is not JSON (is this a gateway?)",
                status=response.status_code,
            ) from None
    raise _problem(response)


def _problem(response: httpx.Response) -> ApiError:
    """The problem+json answer as an ``ApiError``; any other answer by its HTTP status."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        detail = body.get("detail") or body.get("title") or f"HTTP {status}"
        return ApiError(body["code"], str(detail), status=status)
    where = f"{response.request.method} {response.request.url.path}"
    reason = response.reason_phrase or "error"
    return ApiError(
        f"HTTP_{status}",
        f"{where} answered {status} {reason} without a problem body (is this a gateway?)",
        status=status,
    )
