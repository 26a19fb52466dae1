"""The gateway under a real uvicorn on a free loopback port, in this test's event loop, and
the two clients that talk to it: the mcp SDK's Streamable HTTP client and an OAuth connector
made of plain HTTP requests."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import re
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
import uvicorn
from fastapi import FastAPI
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

__all__ = [
    "Connector",
    "Grant",
    "free_port",
    "hidden_fields",
    "mcp_client",
    "pkce",
    "redirect_params",
    "serving",
]

REDIRECT = "https://connector.example.test/callback"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def serving(app: FastAPI, port: int) -> AsyncIterator[str]:
    """Run ``app`` (with its lifespan) on 127.0.0.1:``port`` until the block ends."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def mcp_client(url: str, token: str | None, *, mode: str = "auto") -> AsyncIterator[Client]:
    """The SDK's client over Streamable HTTP, sending ``token`` as a bearer header."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode=mode, read_timeout_seconds=30) as client:
            yield client


def pkce() -> tuple[str, str]:
    """(verifier, S256 challenge)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def hidden_fields(page: str) -> dict[str, str]:
    found = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)
    return {name: html.unescape(value) for name, value in found}


@dataclass
class Grant:
    access_token: str
    refresh_token: str
    scope: str
    expires_in: int


@dataclass
class Connector:
    """An MCP connector (as ChatGPT or Claude would be): it discovers the authorization
    server from the 401 of ``/mcp``, registers, and drives the browser through consent."""

    http: httpx.AsyncClient
    base: str
    resource: str = ""
    metadata: dict[str, Any] | None = None
    client_id: str = ""
    client_secret: str | None = None

    async def discover(self) -> dict[str, Any]:
        unauthorized = await self.http.post(f"{self.base}/mcp", json={})
        assert unauthorized.status_code == 401
        header = unauthorized.headers["www-authenticate"]
        match = re.search(r'resource_metadata="([^"]+)"', header)
        assert match, header
        resource = (await self.http.get(match.group(1))).json()
        self.resource = resource["resource"]
        issuer = resource["authorization_servers"][0]
        self.metadata = (
            await self.http.get(f"{issuer}/.well-known/oauth-authorization-server")
        ).json()
        return self.metadata

    def endpoint(self, name: str) -> str:
        assert self.metadata is not None
        return str(self.metadata[f"{name}_endpoint"])

    async def register(self, **fields: Any) -> httpx.Response:
        body = {"client_name": "Test Connector", "redirect_uris": [REDIRECT], **fields}
        answer = await self.http.post(self.endpoint("registration"), json=body)
        if answer.status_code == 201:
            self.client_id = answer.json()["client_id"]
            self.client_secret = answer.json().get("client_secret")
        return answer

    async def authorize(self, challenge: str, **params: str) -> httpx.Response:
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": REDIRECT,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "state-1",
            "scope": "ops:read",
            "resource": self.resource,
            **params,
        }
        return await self.http.get(self.endpoint("authorization"), params=query)

    async def consent(
        self, authorize: httpx.Response, *, token: str | None, decision: str = "allow", **extra: str
    ) -> httpx.Response:
        """Open the consent page the authorize answer points to and submit it."""
        assert authorize.status_code == 302, authorize.text
        page = await self.http.get(f"{self.base}{authorize.headers['location']}")
        assert page.status_code == 200, page.text
        form = hidden_fields(page.text)
        form.update({"role": "actions", "decision": decision, **extra})
        if token is not None:
            form["token"] = token
        return await self.http.post(
            f"{self.base}/console/oauth/consent", data=form, headers={"Origin": self.base}
        )

    async def code(self, token: str, challenge: str) -> str:
        """Authorize and allow as the holder of ``token``; the code from the redirect."""
        answer = await self.consent(await self.authorize(challenge), token=token)
        assert answer.status_code == 303, answer.text
        return redirect_params(answer)["code"]

    def _client_auth(self) -> dict[str, str]:
        auth = {"client_id": self.client_id}
        if self.client_secret:
            auth["client_secret"] = self.client_secret
        return auth

    async def token(self, **form: str) -> httpx.Response:
        return await self.http.post(self.endpoint("token"), data={**self._client_auth(), **form})

    async def exchange(self, code: str, verifier: str, **extra: str) -> httpx.Response:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "resource": self.resource,
            **extra,
        }
        return await self.token(**form)

    async def refresh(self, refresh_token: str) -> httpx.Response:
        return await self.token(grant_type="refresh_token", refresh_token=refresh_token)

    async def revoke(self, token: str) -> httpx.Response:
        return await self.http.post(
            self.endpoint("revocation"), data={**self._client_auth(), "token": token}
        )

    async def grant(self, user_token: str) -> Grant:
        verifier, challenge = pkce()
        answer = await self.exchange(await self.code(user_token, challenge), verifier)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        return Grant(body["access_token"], body["refresh_token"], body["scope"], body["expires_in"])


def redirect_params(answer: httpx.Response) -> dict[str, str]:
    location = answer.headers["location"]
    assert location.startswith(REDIRECT), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
