"""Durable runs: `recoup-api serve` killed with SIGKILL mid-run, restarted, and the run finishes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.e2e.served import Served
from tests.runs.conftest import assert_valid_stream, parse_sse


@dataclass
class Interrupted:
    """A run as the client saw it before the kill, as resumed after the restart, and as saved."""

    before: list[dict[str, Any]]
    after: list[dict[str, Any]]
    detail: dict[str, Any]
    status: str


class _Reader(threading.Thread):
    """Reads `POST /api/chat` until the server goes away."""

    def __init__(self, http: httpx.Client, body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.http, self.body = http, body
        self.chunks: list[dict[str, Any]] = []
        self.headers: dict[str, str] = {}

    def run(self) -> None:
        try:
            with self.http.stream("POST", "/api/chat", json=self.body, timeout=30) as response:
                self.headers = dict(response.headers)
                for line in response.iter_lines():
                    if line.startswith("data: {"):
                        self.chunks.append(json.loads(line.removeprefix("data: ")))
        except httpx.HTTPError:
            pass  # the server was killed

    def wait_for(self, predicate: Any, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.chunks):
            assert time.monotonic() < deadline, self.chunks
            time.sleep(0.02)


def _start(http: httpx.Client, model: str, text: str) -> tuple[str, str, _Reader]:
    session_id = http.post("/api/sandbox", json={}).json()["sessionId"]
    chat_id = http.get(f"/api/sessions/{session_id}/chats").json()["chats"][0]["id"]
    http.patch(f"/api/sessions/{session_id}/chats/{chat_id}", json={"modelId": model})
    message = {"id": "user-1", "role": "user", "parts": [{"type": "text", "text": text}]}
    reader = _Reader(http, {"chatId": chat_id, "sessionId": session_id, "messages": [message]})
    reader.start()
    return session_id, chat_id, reader


def _resume(http: httpx.Client, session_id: str, chat_id: str, reader: _Reader) -> Interrupted:
    resumed = http.get(f"/api/chat/{chat_id}/stream")
    assert resumed.status_code == 200, resumed.text
    run_id = reader.headers["x-workflow-run-id"]
    assert resumed.headers["x-workflow-run-id"] == run_id
    deadline = time.monotonic() + 15
    detail = http.get(f"/api/sessions/{session_id}/chats/{chat_id}").json()
    while detail["isStreaming"] and time.monotonic() < deadline:
        time.sleep(0.05)
        detail = http.get(f"/api/sessions/{session_id}/chats/{chat_id}").json()
    status = http.get(f"/api/chat/runs/{run_id}").json()["status"]
    return Interrupted(reader.chunks, parse_sse(resumed.text)[0], detail, status)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Interrupted]]:
    """Two runs, one in a slow tool call and one mid-text, when the server gets SIGKILL."""
    data_dir = tmp_path_factory.mktemp("durable") / "data"
    served = Served(data_dir, f"sqlite+aiosqlite:///{data_dir.resolve()}/recoup.db")
    # Paced so that both runs are still going when the restarted server answers.
    served.env |= {"RECOUP_TEST_MODELS": "1", "RECOUP_TEST_MODEL_DELAY": "0.3"}
    served.start()
    http = httpx.Client(
        base_url=served.base_url, headers={"x-api-key": served.first_start_key()}, timeout=30
    )
    try:
        tool = _start(http, "test/slow", "/bash sleep 4 && echo slept")
        text = _start(http, "test/slow", "hello")
        tool[2].wait_for(lambda chunks: any(c["type"] == "tool-input-available" for c in chunks))
        text[2].wait_for(lambda chunks: sum(c["type"] == "text-delta" for c in chunks) >= 4)
        assert served.process is not None
        served.process.kill()
        served.process.wait(timeout=10)
        served.start()
        yield {"tool": _resume(http, *tool), "text": _resume(http, *text)}
    finally:
        http.close()
        served.stop()


def test_a_run_killed_during_a_tool_call_finishes_after_a_restart(
    interrupted: dict[str, Interrupted],
) -> None:
    run = interrupted["tool"]

    assert run.status == "completed"
    assert run.after[: len(run.before)] == run.before
    assert_valid_stream(run.after)
    [output] = [c for c in run.after if c["type"] == "tool-output-available"]
    assert output["output"]["output"] == "slept\n"
    assert run.detail["isStreaming"] is False
    parts = run.detail["messages"][1]["parts"]
    assert [p["type"] for p in parts] == ["step-start", "tool-bash", "step-start", "text"]


def test_a_run_killed_mid_text_resends_the_step_and_saves_it_once(
    interrupted: dict[str, Interrupted],
) -> None:
    run = interrupted["text"]

    assert run.status == "completed"
    assert run.after[: len(run.before)] == run.before
    assert_valid_stream(run.after)
    # The interrupted step's text is in the stream as far as it got, then whole after the restart.
    assert [c["type"] for c in run.after].count("text-start") == 2
    [part] = [p for p in run.detail["messages"][1]["parts"] if p["type"] == "text"]
    full = "".join(c["delta"] for c in run.after if c["type"] == "text-delta")
    assert full.endswith(part["text"]) and part["state"] == "done"
    assert part["text"].startswith("[offline model] no command.")
