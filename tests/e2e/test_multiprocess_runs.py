"""Runs across several `recoup-api serve` processes on one PostgreSQL database.

The run slot is one compare-and-set in the shared database, a run's chunks are in DBOS's tables
of that database, and each process runs under its own DBOS executor id and lease
(runs/executors.py). So a chat has one run whichever process is asked, any process replays and
follows any run, a process starting up leaves its peers' runs alone, and a live process finishes
the runs of one that was killed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from storage.db import Database
from storage.models import Chat, Executor, Run, Session
from tests.e2e.served import KEY_LINE, Served
from tests.postgres import PostgresCluster
from tests.runs.conftest import assert_valid_stream, parse_sse

RACERS = 10
DONE_FRAME = "data: [DONE]"
CONFLICT = {"status": "error", "message": "A response is already streaming for this chat"}
# Short leases, so that a killed process's runs are taken over within seconds.
LEASES = {"RECOUP_EXECUTOR_HEARTBEAT_SECONDS": "0.5", "RECOUP_EXECUTOR_LEASE_SECONDS": "3"}
# What a tool call and its answer stream exactly once, unless the run ran twice.
ONCE_PER_RUN = ("tool-input-available", "tool-output-available", "text-start", "finish")
# A bound for correctness (the run must end), far above the few seconds a takeover takes.
RUN_BOUND_S = 90


Chunks = list[dict[str, Any]]


class Cluster:
    """Server processes over one database, and the developer key one of them created."""

    def __init__(self, url: str, servers: list[Served]) -> None:
        self.url = url
        self.servers = servers
        [self.key] = [key for s in servers for key in KEY_LINE.findall(s.output.read_text())]
        self.headers = {"x-api-key": self.key}

    def http(self, server: Served) -> httpx.Client:
        return httpx.Client(base_url=server.base_url, headers=self.headers, timeout=RUN_BOUND_S)

    def sandboxed_chat(self, model: str) -> tuple[str, str]:
        """A new session with a sandbox, its first chat set to ``model``: (session, chat) ids."""
        with self.http(self.servers[0]) as http:
            session_id = http.post("/api/sandbox", json={}).json()["sessionId"]
            chat_id = http.get(f"/api/sessions/{session_id}/chats").json()["chats"][0]["id"]
            patched = http.patch(
                f"/api/sessions/{session_id}/chats/{chat_id}", json={"modelId": model}
            )
            assert patched.status_code == 200, patched.text
        return session_id, chat_id

    def scalar(self, statement: Any) -> Any:
        """One value read straight from the database, not through any server."""

        async def go() -> Any:
            database = Database(self.url)
            try:
                async with database.transaction() as tx:
                    return await tx.scalar(statement)
            finally:
                await database.dispose()

        return asyncio.run(go())

    def slot(self, chat_id: str) -> str | None:
        return self.scalar(select(Chat.active_stream_id).where(Chat.id == chat_id))

    def wait_for_free_slot(self, chat_id: str) -> None:
        deadline = time.monotonic() + RUN_BOUND_S
        while self.slot(chat_id) is not None:
            assert time.monotonic() < deadline, "the run slot was never cleared"
            time.sleep(0.1)


def chat_body(session_id: str, chat_id: str, text: str, message_id: str) -> dict[str, Any]:
    message = {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}
    return {"chatId": chat_id, "sessionId": session_id, "messages": [message]}


class StreamReader(threading.Thread):
    """Reads one streamed response on a thread, chunk by chunk, until it ends or breaks."""

    def __init__(self, cluster: Cluster, server: Served, method: str, path: str, **kw: Any):
        super().__init__(daemon=True)
        self.cluster, self.server, self.request = cluster, server, (method, path, kw)
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks: Chunks = []
        self.frames: list[str] = []

    def run(self) -> None:
        method, path, kw = self.request
        try:
            with self.cluster.http(self.server) as http, http.stream(method, path, **kw) as r:
                self.status, self.headers = r.status_code, dict(r.headers)
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        self.frames.append(line)
                    if line.startswith("data: {"):
                        self.chunks.append(json.loads(line.removeprefix("data: ")))
        except httpx.HTTPError:
            pass  # the server was killed

    def wait_for(self, predicate: Callable[[Chunks], bool], timeout: float = 30) -> Chunks:
        """Wait until the chunks so far satisfy ``predicate``; a copy of them."""
        deadline = time.monotonic() + timeout
        while not predicate(self.chunks):
            assert time.monotonic() < deadline, self.chunks
            time.sleep(0.02)
        return list(self.chunks)

    def finish(self) -> Chunks:
        """Wait (bounded) for the response to end; its chunks."""
        self.join(RUN_BOUND_S)
        assert not self.is_alive(), f"the stream did not end: {self.chunks[-3:]}"
        return self.chunks


def deltas(at_least: int) -> Callable[[Chunks], bool]:
    return lambda chunks: sum(c["type"] == "text-delta" for c in chunks) >= at_least


def streamed_text(chunks: Chunks) -> str:
    return "".join(c["delta"] for c in chunks if c["type"] == "text-delta")


def scripted(server: Served, delay: str) -> Served:
    """The server with the scripted models, paced ``delay`` seconds a word, and short leases."""
    server.env |= {"RECOUP_TEST_MODELS": "1", "RECOUP_TEST_MODEL_DELAY": delay, **LEASES}
    return server


@contextmanager
def cluster_of(
    postgres: PostgresCluster, root: Path, names: list[str], delay: str
) -> Iterator[Cluster]:
    """Servers started together on a new database, scripted models paced ``delay``."""
    with postgres.database() as url:
        servers = [scripted(Served(root / name, url, name=name), delay) for name in names]
        try:
            for server in servers:
                server.launch()
            for server in servers:
                server.wait_ready()
            yield Cluster(url, servers)
        finally:
            for server in servers:
                server.stop()


@pytest.fixture(scope="module")
def pair(postgres: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two servers, shared by the tests that kill neither (each uses a chat of its own)."""
    with cluster_of(postgres, tmp_path_factory.mktemp("pair"), ["one", "two"], "0.05") as pair:
        yield pair


def test_racing_posts_across_processes_start_exactly_one_run(pair: Cluster) -> None:
    session_id, chat_id = pair.sandboxed_chat("test/slow")

    async def race(body: dict[str, Any]) -> list[tuple[int, httpx.Response]]:
        clients = [
            httpx.AsyncClient(base_url=s.base_url, headers=pair.headers, timeout=RUN_BOUND_S)
            for s in pair.servers
        ]
        try:
            targets = list(itertools.islice(itertools.cycle(enumerate(clients)), RACERS))
            responses = await asyncio.gather(*(c.post("/api/chat", json=body) for _, c in targets))
            return [
                (index, response) for (index, _), response in zip(targets, responses, strict=True)
            ]
        finally:
            for client in clients:
                await client.aclose()

    for turn in range(2):
        body = chat_body(session_id, chat_id, "hello", f"user-{turn}")
        answered = asyncio.run(race(body))

        statuses = sorted(response.status_code for _, response in answered)
        assert statuses == [200] + [409] * (RACERS - 1), [r.text for _, r in answered]
        conflicts = [(index, r) for index, r in answered if r.status_code == 409]
        assert all(r.json() == CONFLICT for _, r in conflicts)
        assert {index for index, _ in conflicts} == {0, 1}, "each process refused some"
        [winner] = [r for _, r in answered if r.status_code == 200]
        chunks, frames = parse_sse(winner.text)
        assert_valid_stream(chunks)
        assert frames[-1] == DONE_FRAME
        assert pair.scalar(select(func.count()).where(Run.chat_id == chat_id)) == turn + 1
        pair.wait_for_free_slot(chat_id)


def test_a_run_started_on_one_process_is_resumed_on_another(pair: Cluster) -> None:
    one, two = pair.servers
    session_id, chat_id = pair.sandboxed_chat("test/slow")
    poster = StreamReader(
        pair, one, "POST", "/api/chat", json=chat_body(session_id, chat_id, "hello", "user-1")
    )
    poster.start()
    seen = poster.wait_for(deltas(3))

    with pair.http(two) as http:
        resumed = http.get(f"/api/chat/{chat_id}/stream")
    chunks, frames = parse_sse(resumed.text)

    assert resumed.status_code == 200, resumed.text
    assert resumed.headers["x-workflow-run-id"] == poster.headers["x-workflow-run-id"]
    assert chunks[0] == seen[0] == {"type": "start", "messageId": seen[0]["messageId"]}
    assert chunks[: len(seen)] == seen
    assert chunks[-1] == {"type": "finish"} and frames[-1] == DONE_FRAME
    assert_valid_stream(chunks)
    assert poster.finish() == chunks  # one stream, whichever process serves it
    for server in pair.servers:
        with pair.http(server) as http:
            detail = http.get(f"/api/sessions/{session_id}/chats/{chat_id}").json()
        assert detail["isStreaming"] is False
        answer = detail["messages"][-1]
        assert answer["id"] == seen[0]["messageId"]
        [text] = [p for p in answer["parts"] if p["type"] == "text"]
        assert text == {"type": "text", "text": streamed_text(chunks), "state": "done"}


def test_a_process_starting_leaves_the_runs_of_its_peers_alone(
    pair: Cluster, tmp_path: Path
) -> None:
    one, two = pair.servers
    session_id, chat_id = pair.sandboxed_chat("test/slow")
    workspace = Path(
        pair.scalar(select(Session.sandbox_state).where(Session.id == session_id))["workspace"]
    )
    # A tool call that waits for the test: the run is mid-step for as long as the test needs.
    gated = "/bash echo ran >> calls; while [ ! -e go ]; do sleep 0.05; done; echo went"
    poster = StreamReader(
        pair, one, "POST", "/api/chat", json=chat_body(session_id, chat_id, gated, "user-1")
    )
    poster.start()
    poster.wait_for(lambda chunks: any(c["type"] == "tool-input-available" for c in chunks))
    # A third process with an executor id of its own: nothing of the run is its to recover.
    third = scripted(Served(tmp_path / "three", pair.url, name="three"), "0.05")
    third.start()
    try:
        (workspace / "go").touch()
        chunks = poster.finish()
    finally:
        third.stop()

    # Recovered by the third process as well, the tool call would have run twice.
    assert (workspace / "calls").read_text() == "ran\n"
    assert_valid_stream(chunks)
    assert poster.frames[-1] == DONE_FRAME
    kinds = [c["type"] for c in chunks]
    assert [kinds.count(kind) for kind in ONCE_PER_RUN] == [1] * len(ONCE_PER_RUN), kinds
    with pair.http(two) as http:
        run = http.get(f"/api/chat/runs/{poster.headers['x-workflow-run-id']}").json()
        detail = http.get(f"/api/sessions/{session_id}/chats/{chat_id}").json()
    assert run["status"] == "completed"
    parts = detail["messages"][-1]["parts"]
    assert [p["type"] for p in parts] == ["step-start", "tool-bash", "step-start", "text"]
    assert parts[1]["output"]["output"] == "went\n"


@pytest.fixture
def doomed(postgres: PostgresCluster, tmp_path: Path) -> Iterator[Cluster]:
    """Two servers of which a test kills the first: a database of their own."""
    with cluster_of(postgres, tmp_path, ["doomed", "survivor"], "0.1") as cluster:
        yield cluster


def test_the_run_of_a_killed_process_is_finished_by_another(doomed: Cluster) -> None:
    one, two = doomed.servers
    session_id, chat_id = doomed.sandboxed_chat("test/slow")
    poster = StreamReader(
        doomed, one, "POST", "/api/chat", json=chat_body(session_id, chat_id, "hello", "user-1")
    )
    poster.start()
    poster.wait_for(deltas(1))
    follower = StreamReader(doomed, two, "GET", f"/api/chat/{chat_id}/stream")
    follower.start()
    before = follower.wait_for(deltas(4))

    one.kill()
    chunks = follower.finish()

    assert follower.status == 200
    assert follower.headers["x-workflow-run-id"] == poster.headers["x-workflow-run-id"]
    assert chunks[: len(before)] == before
    assert_valid_stream(chunks)
    assert follower.frames[-1] == DONE_FRAME
    # The step the kill interrupted ran again, whole, on the surviving process.
    assert [c["type"] for c in chunks].count("text-start") == 2
    with doomed.http(two) as http:
        run = http.get(f"/api/chat/runs/{poster.headers['x-workflow-run-id']}").json()
        detail = http.get(f"/api/sessions/{session_id}/chats/{chat_id}").json()
        again = http.post("/api/chat", json=chat_body(session_id, chat_id, "again", "user-2"))
    assert run["status"] == "completed"
    assert detail["isStreaming"] is False
    [text] = [p for p in detail["messages"][-1]["parts"] if p["type"] == "text"]
    assert text["state"] == "done" and text["text"].startswith("[offline model] no command.")
    assert streamed_text(chunks).endswith(text["text"])
    # The slot was freed: a new run on the survivor answers in full.
    assert again.status_code == 200, again.text
    assert_valid_stream(parse_sse(again.text)[0])
    # The dead executor's lease was claimed, its runs handed over, and then it was forgotten.
    assert "handed over for recovery" in two.output.read_text()
    assert doomed.scalar(select(func.count()).select_from(Executor)) == 1
