"""The `fetch` tool against a local HTTP server: private addresses, caps, redirects."""

from __future__ import annotations

import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from pydantic_ai import RunContext, ToolFailed
from pydantic_ai.usage import RunUsage

from agent.context import ToolContext
from agent.models import offline_model
from agent.todos import InMemoryTodoStore
from agent.tools.web import fetch


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        if self.path == "/big":
            self._send(200, b"x" * 10_000, "text/plain")
        elif self.path == "/slow":
            time.sleep(1)
            self._send(200, b"late", "text/plain")
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/hello")
            self.end_headers()
        elif self.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.end_headers()
        elif self.path == "/image":
            self._send(200, b"\x89PNG....", "image/png")
        else:
            body = f"hello from {self.headers['Host']}".encode()
            self._send(200, body, "text/plain; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(serve: Callable[[type[BaseHTTPRequestHandler]], str]) -> str:
    return serve(_Handler)


def _ctx(workspace: Path, **limits: object) -> RunContext[ToolContext]:
    context = ToolContext(
        workspace=workspace,
        session_id="s",
        todo_store=InMemoryTodoStore(),
        **limits,  # type: ignore[arg-type]
    )
    return RunContext(deps=context, model=offline_model(), usage=RunUsage())


async def test_loopback_and_private_addresses_are_refused(server: str, workspace: Path) -> None:
    ctx = _ctx(workspace, fetch_allow_private=False)
    port = server.rsplit(":", 1)[1]
    for url in [
        server,
        f"http://localhost:{port}/",
        "http://10.0.0.1/",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/",
    ]:
        with pytest.raises(ToolFailed, match="non-public address"):
            await fetch(ctx, url)


async def test_only_http_urls_are_fetched(workspace: Path) -> None:
    ctx = _ctx(workspace, fetch_allow_private=True)
    for url in ["file:///etc/passwd", "ftp://example.com/", "not a url"]:
        with pytest.raises(ToolFailed, match="only http"):
            await fetch(ctx, url)


async def test_private_fetch_allowed_by_environment(
    server: str, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECOUP_FETCH_ALLOW_PRIVATE", "1")
    result = await fetch(_ctx(workspace), server + "/hello")
    host = server.removeprefix("http://")
    assert result == {
        "url": server + "/hello",
        "status": 200,
        "content_type": "text/plain",
        "content": f"hello from {host}",
        "truncated": False,
    }


async def test_size_cap_redirects_and_binary(server: str, workspace: Path) -> None:
    ctx = _ctx(workspace, fetch_allow_private=True, fetch_max_bytes=1000)
    big = await fetch(ctx, server + "/big")
    assert big["truncated"] and big["content"] == "x" * 1000
    redirected = await fetch(ctx, server + "/redirect")
    assert redirected["url"] == server + "/hello" and redirected["status"] == 200
    with pytest.raises(ToolFailed, match="redirects"):
        await fetch(ctx, server + "/loop")
    assert (await fetch(ctx, server + "/image"))["content"] == "<8 bytes of image/png not shown>"


async def test_time_cap(server: str, workspace: Path) -> None:
    ctx = _ctx(workspace, fetch_allow_private=True, fetch_timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(ToolFailed, match="took longer|timed out|failed"):
        await fetch(ctx, server + "/slow")
    assert time.monotonic() - started < 1.5
