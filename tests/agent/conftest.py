"""Fixtures for the agent tests: a real git workspace and a tool context on it."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai import RunContext
from pydantic_ai.usage import RunUsage

from agent.context import ToolContext
from agent.models import offline_model
from agent.todos import InMemoryTodoStore


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """An empty git repository with a small source tree, as provisioned for a session."""
    root = (tmp_path / "workspaces" / "sess_1").resolve()
    (root / "src").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / "src" / "app.py").write_text("def greet():\n    return 'hello'\n\nprint(greet())\n")
    (root / "notes.md").write_text("# Notes\nTODO: write tests\n")
    return root


@pytest.fixture
def context(workspace: Path) -> ToolContext:
    return ToolContext(
        workspace=workspace,
        session_id="sess_1",
        todo_store=InMemoryTodoStore(),
        command_timeout_s=10,
        fetch_timeout_s=5,
    )


@pytest.fixture
def ctx(context: ToolContext) -> RunContext[ToolContext]:
    """The RunContext pydantic-ai hands a tool, for calling tool functions directly."""
    return RunContext(deps=context, model=offline_model(), usage=RunUsage())


@pytest.fixture
def serve() -> Iterator[Callable[[type[BaseHTTPRequestHandler]], str]]:
    """Start local HTTP servers for a test: `serve(Handler)` returns the base URL."""
    servers: list[ThreadingHTTPServer] = []

    def start(handler: type[BaseHTTPRequestHandler]) -> str:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


# The keys ai@5.0.0 accepts per chunk type (it rejects unknown keys); `type` is implied.
_CHUNK_KEYS: dict[str, tuple[set[str], set[str]]] = {  # type: (required, optional)
    "start": ({"messageId"}, {"messageMetadata"}),
    "start-step": (set(), set()),
    "finish-step": (set(), set()),
    "finish": (set(), {"messageMetadata"}),
    "error": ({"errorText"}, set()),
    "text-start": ({"id"}, {"providerMetadata"}),
    "text-delta": ({"id", "delta"}, {"providerMetadata"}),
    "text-end": ({"id"}, {"providerMetadata"}),
    "reasoning-start": ({"id"}, {"providerMetadata"}),
    "reasoning-delta": ({"id", "delta"}, {"providerMetadata"}),
    "reasoning-end": ({"id"}, {"providerMetadata"}),
    "tool-input-start": ({"toolCallId", "toolName"}, set()),
    "tool-input-available": ({"toolCallId", "toolName", "input"}, set()),
    "tool-output-available": ({"toolCallId", "output"}, set()),
    "tool-output-error": ({"toolCallId", "errorText"}, set()),
}


def _check_stream(chunks: list[dict[str, Any]]) -> None:
    """Assert the ordering and field rules the AI SDK client enforces (see AI-SDK-STREAM.md)."""
    assert chunks[0]["type"] == "start" and chunks[-1]["type"] == "finish"
    open_ids: set[str] = set()
    tool_inputs: set[str] = set()
    step_open = False
    for chunk in chunks:
        kind = chunk["type"]
        required, optional = _CHUNK_KEYS[kind]
        keys = set(chunk) - {"type"}
        assert required <= keys <= required | optional, chunk
        assert all(v is not None for k, v in chunk.items() if k not in {"input", "output"}), chunk
        json.dumps(chunk, allow_nan=False)
        if kind.endswith("-start") and kind != "tool-input-start":
            open_ids.add(chunk["id"])
        elif kind.endswith(("-delta", "-end")):
            assert chunk["id"] in open_ids, f"{kind} before its start: {chunk}"
            if kind.endswith("-end"):
                open_ids.remove(chunk["id"])
        elif kind in ("tool-input-start", "tool-input-available"):
            tool_inputs.add(chunk["toolCallId"])
        elif kind.startswith("tool-output"):
            assert chunk["toolCallId"] in tool_inputs, f"output before input: {chunk}"
        elif kind == "start-step":
            assert not step_open, "start-step inside an open step"
            step_open = True
        elif kind == "finish-step":
            assert not open_ids, f"finish-step with open parts {open_ids}"
            step_open = False
    assert not step_open and not open_ids


@pytest.fixture
def check_stream() -> Callable[[list[dict[str, Any]]], None]:
    """A checker of the AI SDK UI message stream rules, for any list of chunks."""
    return _check_stream
