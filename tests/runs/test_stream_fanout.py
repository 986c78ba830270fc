"""Many clients of one run: one read of its stream per process, fanned out to all of them.

Requests go straight to the app (ASGI) on its own event loop, so that hundreds of them can be
open at once without a thread each; a client "disconnects" as a server sees it, with
``http.disconnect``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from starlette.testclient import TestClient

from runs import fanout, runtime
from storage import runs as run_store
from storage.models import Chat, Run, utc_now
from tests.conftest import Accounts
from tests.runs.conftest import RunChat, assert_valid_stream, parse_sse

READERS = 200
WAIT_S = 60.0  # bound on each whole scenario


@dataclass
class Answer:
    """One request as the server answered it."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    chunks: int = 0  # data frames received so far
    progressed: asyncio.Event = field(default_factory=asyncio.Event)

    async def has(self, count: int) -> None:
        """Wait until ``count`` data frames arrived."""
        await self.answered.wait()
        assert self.status == 200, (self.status, bytes(self.body))
        while self.chunks < count:
            self.progressed.clear()
            await self.progressed.wait()

    @property
    def data_frames(self) -> list[str]:
        """The frames that carry data (keep-alive comments left out), in order."""
        return [frame for frame in parse_sse(self.body.decode())[1] if frame.startswith("data: ")]


async def _request(
    app: Any,
    method: str,
    path: str,
    headers: dict[str, str],
    *,
    body: bytes = b"",
    answer: Answer | None = None,
    leave_after: int | None = None,
) -> Answer:
    """Send one request to the app; ``leave_after``: disconnect after that many data frames."""
    answer = answer or Answer()
    gone = asyncio.Event()
    sent_request = False
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        + [(b"host", b"testserver"), (b"content-length", str(len(body)).encode())]
        + ([(b"content-type", b"application/json")] if body else []),
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }

    async def receive() -> dict[str, Any]:
        nonlocal sent_request
        if not sent_request:
            sent_request = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = {k.decode(): v.decode() for k, v in message.get("headers", [])}
            answer.answered.set()
        elif message["type"] == "http.response.body":
            answer.body += message.get("body", b"")
            answer.chunks = answer.body.count(b"data: {")
            answer.progressed.set()
            if leave_after is not None and answer.chunks >= leave_after:
                gone.set()

    try:
        await app(scope, receive, send)
    finally:
        answer.answered.set()
        answer.progressed.set()
        gone.set()
    return answer


def _on_app_loop(client: TestClient, scenario: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``scenario`` on the app's event loop, boundedly."""

    async def bounded() -> Any:
        return await asyncio.wait_for(scenario(), WAIT_S)

    return client.portal.call(bounded)  # type: ignore[union-attr]


@dataclass
class ReadCounter:
    """Calls into the tails' read of the DBOS stream, per run: those that read its first chunks,
    and the most made at once."""

    from_start: dict[str, int] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)
    most_at_once: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[ReadCounter]:
    counter, read = ReadCounter(), fanout.read_chunks

    def counting(sys_db: Any, run_id: str, offset: int) -> Any:
        with counter.lock:
            counter.in_flight[run_id] = at_once = counter.in_flight.get(run_id, 0) + 1
            counter.most_at_once[run_id] = max(counter.most_at_once.get(run_id, 0), at_once)
        try:
            time.sleep(0.002)  # readers of their own would overlap here
            status, chunks, closed = read(sys_db, run_id, offset)
            if offset == 0 and chunks:
                with counter.lock:
                    counter.from_start[run_id] = counter.from_start.get(run_id, 0) + 1
            return status, chunks, closed
        finally:
            with counter.lock:
                counter.in_flight[run_id] -= 1

    monkeypatch.setattr(fanout, "read_chunks", counting)
    yield counter


@pytest.fixture
def slow_chat(chat: RunChat, monkeypatch: pytest.MonkeyPatch) -> RunChat:
    monkeypatch.setenv("RECOUP_TEST_MODEL_DELAY", "0.05")
    chat.set_model("test/slow")
    return chat


async def _start(chat: RunChat) -> tuple[asyncio.Task[Answer], Answer]:
    """POST the chat's turn; its stream is read to the end on a task."""
    original = Answer()
    task = asyncio.create_task(
        _request(
            chat.client.app,
            "POST",
            "/api/chat",
            chat.caller.headers,
            body=json.dumps(chat.body()).encode(),
            answer=original,
        )
    )
    await original.has(3)  # the run is live: it has streamed its first text
    return task, original


def _resume(chat: RunChat, **kwargs: Any) -> Awaitable[Answer]:
    path = f"/api/chat/{chat.chat_id}/stream"
    return _request(chat.client.app, "GET", path, chat.caller.headers, **kwargs)


def test_many_resumed_readers_get_the_whole_stream_from_one_read(
    slow_chat: RunChat, reads: ReadCounter
) -> None:
    async def scenario() -> tuple[Answer, list[Answer]]:
        posted, original = await _start(slow_chat)
        resumed = await asyncio.gather(*(_resume(slow_chat) for _ in range(READERS)))
        return await posted, list(resumed)

    original, resumed = _on_app_loop(slow_chat.client, scenario)

    assert original.status == 200
    frames = original.data_frames
    assert frames[-1] == "data: [DONE]"
    assert_valid_stream(parse_sse(original.body.decode())[0])
    assert sorted({answer.status for answer in resumed}) == [200]
    assert all(answer.data_frames == frames for answer in resumed)
    run_id = original.headers["x-workflow-run-id"]
    # One read loop for the run: it read the first chunks once, and never twice at a time.
    assert reads.from_start == {run_id: 1}
    assert reads.most_at_once == {run_id: 1}
    assert run_id not in fanout.tails()  # dropped with its last client


def test_a_client_leaving_midway_disturbs_no_other(slow_chat: RunChat, reads: ReadCounter) -> None:
    async def scenario() -> tuple[Answer, Answer, list[Answer]]:
        posted, original = await _start(slow_chat)
        leaving = _resume(slow_chat, leave_after=original.chunks + 2)
        staying = [_resume(slow_chat) for _ in range(20)]
        left, *stayed = await asyncio.gather(leaving, *staying)
        return await posted, left, stayed

    original, left, stayed = _on_app_loop(slow_chat.client, scenario)

    frames = original.data_frames
    assert frames[-1] == "data: [DONE]"
    assert left.status == 200 and "data: [DONE]" not in left.data_frames
    assert left.data_frames == frames[: len(left.data_frames)]
    assert all(answer.status == 200 and answer.data_frames == frames for answer in stayed)
    run_id = original.headers["x-workflow-run-id"]
    assert reads.from_start == {run_id: 1}
    assert run_id not in fanout.tails()


def test_a_resume_answers_while_the_write_transaction_is_held(slow_chat: RunChat) -> None:
    async def scenario() -> tuple[Answer, Answer]:
        posted, original = await _start(slow_chat)
        holding, release = asyncio.Event(), asyncio.Event()

        async def hold() -> None:
            # On SQLite this takes the process's write gate, as any writing request does.
            async with runtime.database().transaction():
                holding.set()
                await release.wait()

        holder = asyncio.create_task(hold())
        await holding.wait()
        resumed = Answer()
        reading = asyncio.create_task(_resume(slow_chat, answer=resumed))
        try:
            await asyncio.wait_for(resumed.answered.wait(), 5.0)
        finally:
            release.set()
            await holder
        return await posted, await reading

    original, resumed = _on_app_loop(slow_chat.client, scenario)

    assert resumed.status == 200
    assert resumed.data_frames == original.data_frames


def test_a_resume_clears_a_dead_slot_and_is_204(chat: RunChat, people: Accounts) -> None:
    run_id = "wrun_" + "d" * 32
    long_ago = utc_now() - timedelta(hours=1)

    async def dead_run(tx: Any) -> None:
        await run_store.record_run(
            tx,
            run_id=run_id,
            chat_id=chat.chat_id,
            session_id=chat.session_id,
            account_id=chat.caller.id,
            message_id="msg_dead",
        )
        await tx.execute(
            update(Run).where(Run.id == run_id).values(status="running", created_at=long_ago)
        )
        await tx.execute(
            update(Chat).where(Chat.id == chat.chat_id).values(active_stream_id=run_id)
        )

    people.run(dead_run)
    assert chat.detail()["isStreaming"] is True

    response = chat.client.get(f"/api/chat/{chat.chat_id}/stream", headers=chat.caller.headers)

    assert (response.status_code, response.text) == (204, "")
    assert chat.detail()["isStreaming"] is False

    async def status(tx: Any) -> tuple[str, str | None]:
        run = await run_store.get_run(tx, run_id=run_id)
        assert run is not None
        return run.status, run.error

    assert people.run(status) == ("failed", "interrupted")
    # The slot is free again: a new turn starts.
    assert chat.post(chat.body()).status_code == 200
