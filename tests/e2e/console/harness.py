"""What the browser tests of the console stand on: a real ``ops-trigger serve`` on a free
loopback port (embedded run worker, the fake LLM as provider) and Debian's Chromium driven
by Playwright's sync API, with every request outside the gateway refused and recorded.

Chromium is ``/usr/bin/chromium`` (``make test`` installs it with apt-get as root). Where no
browser can be had the tests are skipped with the reason; under ``CI=true`` they fail.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.fake_llm import FakeLlmServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKENS = {
    "admin": "console-admin-token-0123456789abcdef",
    "operator": "console-operator-token-0123456789abcdef",
    "actions": "console-actions-token-0123456789abcdef",
}
STARTUP_S = 30.0
ROOT = Path(__file__).resolve().parents[3]


def chromium_or_skip() -> Path:
    """The browser, or skip (fail under CI=true) saying why."""
    if CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    reason = (
        f"{CHROMIUM} is missing: install Debian's chromium (make test does it as root: "
        "apt-get install chromium chromium-driver)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests must run under CI: {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _executable() -> str:
    import sys

    beside = Path(sys.executable).parent / "ops-trigger"
    found = str(beside) if beside.exists() else shutil.which("ops-trigger")
    assert found, "ops-trigger is not installed in this environment"
    return found


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPS_", "ORCH_"))}
    env.update(
        ORCH_TOKEN=TOKENS["admin"],
        ORCH_OPERATOR_TOKEN=TOKENS["operator"],
        ORCH_ACTIONS_TOKEN=TOKENS["actions"],
        OPS_DATA_DIR=str(data_dir),
        OPS_RATE_LIMIT_PER_MINUTE="1000000",
        # The webhook test posts to a closed loopback port: nothing leaves the machine.
        OPS_WEBHOOK_ALLOW_PRIVATE="true",
    )
    return env


@dataclass
class ConsoleServer:
    """``ops-trigger serve`` with the embedded worker, and an admin API client for set-up."""

    url: str
    data_dir: Path
    stderr: Path
    process: subprocess.Popen[bytes]
    llm: FakeLlmServer
    api: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.api = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {TOKENS['admin']}"}, timeout=15
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.api.request(method, path, **kwargs)
        assert response.is_success, response.text
        return response.json() if response.content else None

    def draft(self, prompt: str, content: str = "the content", **fields: Any) -> dict[str, Any]:
        created: dict[str, Any] = self.call(
            "POST", "/ops/drafts", json={"prompt": prompt, "content": content, **fields}
        )
        return created

    def log(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")

    def create_token(self, role: str, name: str) -> str:
        """A registry token made by ``ops-trigger token create`` (printed once)."""
        made = subprocess.run(
            [_executable(), "token", "create", "--role", role, "--name", name],
            env=_env(self.data_dir), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        return made.stdout.strip()


def start_server(root: Path) -> Iterator[ConsoleServer]:
    data_dir = root / "data"
    env = _env(data_dir)
    init = subprocess.run(
        [_executable(), "init"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert init.returncode == 0, init.stderr
    llm = FakeLlmServer().start()
    port = _free_port()
    stderr = root / "serve.stderr"
    with stderr.open("wb") as sink:
        process = subprocess.Popen(
            [_executable(), "serve", "--host", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=sink,
            env=env,
            cwd=root,
        )
    server = ConsoleServer(f"http://127.0.0.1:{port}", data_dir, stderr, process, llm)
    try:
        deadline = time.monotonic() + STARTUP_S
        while "console:" not in server.log():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"serve did not come up:\n{server.log()}")
            time.sleep(0.1)
        provider = {"base_url": llm.url + "/v1", "model": "fake-model", "max_retries": 0}
        server.call(
            "PUT", "/ops/provider", json={"active": "fake", "providers": {"fake": provider}}
        )
        yield server
    finally:
        server.api.close()
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        llm.stop()


@dataclass
class Browser:
    """One Chromium (a fresh profile) for a test module; pages that refuse foreign hosts."""

    context: Any
    server: ConsoleServer
    foreign: list[str] = field(default_factory=list)
    shots: Path | None = None

    def page(self) -> Any:
        page = self.context.new_page()
        page.set_default_timeout(15_000)
        return page

    def sign_in(
        self, page: Any, role: str, *, next_path: str = "", token: str | None = None
    ) -> None:
        """Sign in with the env token of ``role`` (or ``token``, say a registry token)."""
        self.context.clear_cookies()
        page.goto(
            f"{self.server.url}/console/sign-in" + (f"?next={next_path}" if next_path else "")
        )
        page.fill("#token", token or TOKENS[role])
        page.click("button[type=submit]")
        page.wait_for_selector("[data-actor]")

    def shot(self, page: Any, name: str, *, full_page: bool = True) -> Path:
        """A screenshot under the test's temp dir; with ``CONSOLE_SCREENSHOTS=DIR`` (``make
        screenshots``: docs/img) also copied there as ``console-<name>.png``."""
        assert self.shots is not None
        path = self.shots / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        wanted = os.environ.get("CONSOLE_SCREENSHOTS")
        if wanted:
            target = ROOT / wanted / f"console-{name}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        return path


def start_browser(server: ConsoleServer, shots: Path) -> Iterator[Browser]:
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    profile = Path(tempfile.mkdtemp(prefix="ops-chromium-"))
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(executable),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
        )
        browser = Browser(context=context, server=server, shots=shots)
        _refuse_foreign(browser)
        try:
            yield browser
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


def _refuse_foreign(browser: Browser) -> None:
    """Abort (and record) every request of ``browser`` to a host other than the gateway."""
    own = urlsplit(browser.server.url)

    def guard(route: Any) -> None:
        target = urlsplit(route.request.url)
        if target.scheme in ("data", "blob", "about"):
            route.continue_()
        elif (target.hostname, target.port) == (own.hostname, own.port):
            route.continue_()
        else:
            browser.foreign.append(route.request.url)
            route.abort()

    browser.context.route("**/*", guard)


@dataclass
class People:
    """One Chromium holding several isolated contexts: people signed in at the same time
    with different tokens (their cookies, storage and sessions are apart)."""

    chromium: Any
    server: ConsoleServer
    shots: Path
    contexts: list[Browser] = field(default_factory=list)

    def person(self) -> Browser:
        context = self.chromium.new_context(viewport={"width": 1280, "height": 900})
        browser = Browser(context=context, server=self.server, shots=self.shots)
        _refuse_foreign(browser)
        self.contexts.append(browser)
        return browser

    @property
    def foreign(self) -> list[str]:
        return [url for browser in self.contexts for url in browser.foreign]

    def shot(self, page: Any, name: str) -> Path:
        """As ``Browser.shot`` (the page may be of any of the contexts)."""
        return Browser(context=None, server=self.server, shots=self.shots).shot(page, name)


def start_people(server: ConsoleServer, shots: Path) -> Iterator[People]:
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(executable), args=CHROMIUM_ARGS, headless=True
        )
        people = People(chromium=chromium, server=server, shots=shots)
        try:
            yield people
        finally:
            for browser in people.contexts:
                browser.context.close()
            chromium.close()
