"""Run tests: one app per module and backend, chats with sandboxes, scripted models, SSE checks."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.testclient import TestClient

from server.app import create_app
from server.config import Settings
from tests.conftest import Caller, fresh_database

DONE = "[DONE]"
KEEP_ALIVE = ": keep-alive"
HEADERS = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "connection": "keep-alive",
    "x-vercel-ai-ui-message-stream": "v1",
    "x-accel-buffering": "no",
}
# The keys ai@5.0.0 accepts in each chunk the server sends: optional ones are never sent.
CHUNK_KEYS = {
    "start": {"type", "messageId"},
    "start-step": {"type"},
    "text-start": {"type", "id"},
    "text-delta": {"type", "id", "delta"},
    "text-end": {"type", "id"},
    "reasoning-start": {"type", "id"},
    "reasoning-delta": {"type", "id", "delta"},
    "reasoning-end": {"type", "id"},
    "tool-input-start": {"type", "toolCallId", "toolName"},
    "tool-input-available": {"type", "toolCallId", "toolName", "input"},
    "tool-output-available": {"type", "toolCallId", "output"},
    "tool-output-error": {"type", "toolCallId", "errorText"},
    "error": {"type", "errorText"},
    "finish-step": {"type"},
    "finish": {"type"},
}


def parse_sse(body: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The chunks of an SSE body, and every frame as sent (``[DONE]`` and comments included)."""
    frames = [frame for frame in body.split("\n\n") if frame]
    chunks = [
        json.loads(frame.removeprefix("data: "))
        for frame in frames
        if frame.startswith("data: ") and frame != f"data: {DONE}"
    ]
    return chunks, frames


def assert_valid_stream(chunks: list[dict[str, Any]]) -> None:
    """The order and the fields the AI SDK client enforces on a whole stream."""
    assert chunks[0]["type"] == "start" and chunks[0]["messageId"], chunks[:1]
    assert chunks[-1] == {"type": "finish"}, chunks[-3:]
    open_parts: set[str] = set()
    tool_inputs: set[str] = set()
    for chunk in chunks:
        kind = chunk["type"]
        assert set(chunk) == CHUNK_KEYS[kind], chunk
        assert all(value is not None for key, value in chunk.items() if key != "input"), chunk
        if kind.endswith("-start") and "id" in chunk:
            open_parts.add(chunk["id"])
        elif kind.endswith(("-delta", "-end")) and "id" in chunk:
            assert chunk["id"] in open_parts, chunk
        elif kind == "tool-input-start":
            tool_inputs.add(chunk["toolCallId"])
        elif kind.startswith("tool-output") or kind == "tool-input-available":
            assert chunk["toolCallId"] in tool_inputs, chunk


@dataclass
class Streamed:
    """A stream read on a thread: chunks as they arrive, then the whole response."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[dict[str, Any]] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)
    seen: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def wait_for(self, kind: str, timeout: float = 20) -> None:
        """Block until a chunk of this type arrived."""
        self.seen.wait(timeout)
        for _ in range(int(timeout * 100)):
            if any(chunk["type"] == kind for chunk in self.chunks):
                return
            threading.Event().wait(0.01)
        raise AssertionError(f"no {kind} chunk in {self.chunks}")

    def join(self, timeout: float = 30) -> Streamed:
        assert self.thread is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the stream did not end"
        return self


@dataclass(frozen=True)
class RunChat:
    """A chat whose session has a sandbox, driven through the real app as its owner."""

    client: TestClient
    caller: Caller
    session_id: str
    chat_id: str

    def body(self, text: str = "hello", **extra: Any) -> dict[str, Any]:
        message = {"id": extra.pop("user_message_id", "user-1"), "role": "user"}
        message["parts"] = [{"type": "text", "text": text}]
        return {"chatId": self.chat_id, "sessionId": self.session_id, "messages": [message]} | extra

    def post(self, body: dict[str, Any], caller: Caller | None = None) -> Any:
        headers = (caller or self.caller).headers
        return self.client.post("/api/chat", headers=headers, json=body)

    def stream_in_background(self, method: str, path: str, **kwargs: Any) -> Streamed:
        """Read a streamed response on a thread, chunk by chunk."""
        streamed = Streamed()

        def read() -> None:
            with self.client.stream(method, path, headers=self.caller.headers, **kwargs) as r:
                streamed.status, streamed.headers = r.status_code, dict(r.headers)
                buffer = ""
                for text in r.iter_text():
                    buffer += text
                    *complete, buffer = buffer.split("\n\n")
                    for frame in complete:
                        streamed.frames.append(frame)
                        if frame.startswith("data: {"):
                            streamed.chunks.append(json.loads(frame.removeprefix("data: ")))
                    streamed.seen.set()
                streamed.seen.set()

        streamed.thread = threading.Thread(target=read, daemon=True)
        streamed.thread.start()
        return streamed

    def set_model(self, model_id: str) -> None:
        response = self.client.patch(
            f"/api/sessions/{self.session_id}/chats/{self.chat_id}",
            headers=self.caller.headers,
            json={"modelId": model_id},
        )
        assert response.status_code == 200, response.text

    def detail(self) -> dict[str, Any]:
        response = self.client.get(
            f"/api/sessions/{self.session_id}/chats/{self.chat_id}", headers=self.caller.headers
        )
        assert response.status_code == 200, response.text
        return response.json()


def sandboxed_chat(client: TestClient, caller: Caller) -> RunChat:
    """A new session with a provisioned sandbox, and its first chat."""
    created = client.post("/api/sandbox", headers=caller.headers, json={})
    assert created.status_code == 200, created.text
    session_id = created.json()["sessionId"]
    listed = client.get(f"/api/sessions/{session_id}/chats", headers=caller.headers)
    return RunChat(client, caller, session_id, listed.json()["chats"][0]["id"])


@pytest.fixture(scope="module", autouse=True)
def scripted_models() -> Iterator[None]:
    """The `test/*` models (runs/models.py), fast unless a test slows them down."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECOUP_TEST_MODELS", "1")
        patch.setenv("RECOUP_TEST_MODEL_DELAY", "0.02")
        yield


@pytest.fixture(scope="module")
def settings(
    request: pytest.FixtureRequest, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    data_dir = tmp_path_factory.mktemp("runs") / "data"
    with fresh_database(request, backend, data_dir) as url:
        yield Settings(
            data_dir=data_dir, database_url=url, validate_responses=True, stream_keep_alive_s=0.3
        )


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def chat(client: TestClient, alice: Caller) -> RunChat:
    return sandboxed_chat(client, alice)
