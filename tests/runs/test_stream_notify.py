"""Live run streams on PostgreSQL: readers are woken by LISTEN/NOTIFY, not by polling.

Unless a test says otherwise, the polls (the process's safety poll and each reader's own) are set
to a minute, far beyond every wait below: a chunk that reaches a waiting reader in time was
delivered by a notification. Writers are ``gated_writer`` workflows (tests/runs/stream_writer.py),
in this process or in another one.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dbos import DBOS, SetWorkflowID
from dbos._dbos import _get_dbos_instance
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from runs import notify, runtime, streams
from server.app import create_app
from server.config import Settings
from storage.db import Database
from tests.conftest import Accounts
from tests.postgres import PostgresCluster
from tests.runs.conftest import assert_valid_stream, sandboxed_chat
from tests.runs.stream_writer import END, TOPIC, gated_writer

SLOW_POLL_S = 60.0
WAIT_S = 10.0  # bound on each wait for a notified reader: far below SLOW_POLL_S
SETTLE_S = 0.3  # lets readers finish their reads and wait, before the next chunk is written
LISTENER = "LISTEN dbos_streams_channel"  # the last statement of DBOS's listening connection
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pg_url(postgres: PostgresCluster) -> Iterator[str]:
    """One database for the module: DBOS migrates its schema there once."""
    with postgres.database() as url:
        yield url


@pytest.fixture
async def launched(pg_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """DBOS launched on PostgreSQL as the app launches it; yields the database URL."""
    database = Database(pg_url)
    await runtime.start(
        database=database,
        data_dir=tmp_path,
        system_database_url=runtime.system_database_url(data_dir=tmp_path, database_url=pg_url),
        polling_interval_s=0.1,
        executor_id=f"notify-{uuid.uuid4().hex[:8]}",
        heartbeat_s=Settings.executor_heartbeat_s,
        lease_s=Settings.executor_lease_s,
    )
    try:
        yield pg_url
    finally:
        await runtime.stop()
        await database.dispose()


@pytest.fixture
def slow_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notify, "SAFETY_POLL_S", SLOW_POLL_S)
    monkeypatch.setattr(notify, "READER_POLL_S", SLOW_POLL_S)


@pytest.fixture
def safety_poll_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process's safety poll quick, each reader's own slow: only the former is in time."""
    monkeypatch.setattr(notify, "SAFETY_POLL_S", 0.5)
    monkeypatch.setattr(notify, "READER_POLL_S", SLOW_POLL_S)


class Reader:
    """``sse_frames`` of one run, consumed on a task: its chunks as they arrive."""

    def __init__(self, run_id: str) -> None:
        self.chunks: list[dict[str, Any]] = []
        self.frames: list[bytes] = []
        self._changed = asyncio.Event()
        self.task = asyncio.create_task(self._consume(run_id))

    async def _consume(self, run_id: str) -> None:
        async for data in streams.sse_frames(run_id, offset=0, keep_alive_s=SLOW_POLL_S):
            self.frames.append(data)
            if data.startswith(b"data: {"):
                self.chunks.append(json.loads(data.removeprefix(b"data: ")))
            self._changed.set()

    async def has(self, count: int) -> None:
        """Wait (boundedly) until ``count`` chunks arrived."""

        async def arrived() -> None:
            while len(self.chunks) < count:
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(arrived(), WAIT_S)
        except TimeoutError:
            raise AssertionError(f"{count} chunks expected in {WAIT_S}s: {self.chunks}") from None

    async def ended(self) -> list[bytes]:
        """Wait (boundedly) for the stream's end; its frames."""
        try:
            await asyncio.wait_for(asyncio.shield(self.task), WAIT_S)
        except TimeoutError:
            raise AssertionError(f"the stream did not end: {self.frames}") from None
        return self.frames

    async def close(self) -> None:
        self.task.cancel()
        with suppress(asyncio.CancelledError):
            await self.task


def _delta(index: int) -> dict[str, Any]:
    return {"type": "text-delta", "id": "t", "delta": f"word{index} "}


async def _start_writer() -> str:
    run_id = f"wrun_{uuid.uuid4().hex}"
    with SetWorkflowID(run_id):
        await DBOS.start_workflow_async(gated_writer)
    return run_id


async def _end_writer(run_id: str) -> None:
    await DBOS.send_async(run_id, END, TOPIC)
    handle = await DBOS.retrieve_workflow_async(run_id)
    await asyncio.wait_for(handle.get_result(), WAIT_S)


async def _listeners(url: str) -> list[int]:
    """The server processes of the connections that listen for DBOS's stream writes."""
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as connection:
        rows = await connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = %s",
            (LISTENER,),
        )
        return [int(row[0]) for row in await rows.fetchall()]


async def _connections(url: str) -> int:
    """How many connections the database has, this query's own included."""
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as connection:
        rows = await connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        )
        row = await rows.fetchone()
        assert row is not None
        return int(row[0])


async def test_a_waiting_reader_is_woken_by_each_chunk(launched: str, slow_poll: None) -> None:
    assert notify.notifies_stream_writes()
    run_id = await _start_writer()
    reader = Reader(run_id)
    try:
        await DBOS.send_async(run_id, {"type": "start", "messageId": "m"}, TOPIC)
        await reader.has(1)
        for index in range(1, 4):
            await asyncio.sleep(SETTLE_S)
            await DBOS.send_async(run_id, _delta(index), TOPIC)
            await reader.has(1 + index)
        await _end_writer(run_id)
        # Closing the stream notifies too: the reader ends without waiting for its poll.
        frames = await reader.ended()
    finally:
        await reader.close()
    assert frames[-2:] == [b'data: {"type":"finish"}\n\n', streams.DONE]
    assert reader.chunks[1:4] == [_delta(1), _delta(2), _delta(3)]
    # The marker a closed stream ends with is not counted as a chunk.
    assert await streams.stream_length(run_id) == 4


async def test_a_reader_is_woken_by_a_writer_in_another_process(
    launched: str, slow_poll: None
) -> None:
    run_id = f"wrun_{uuid.uuid4().hex}"
    system_url = runtime.system_database_url(data_dir=ROOT, database_url=launched)
    # Its own executor id, or each DBOS would take the other's workflows for its own to recover.
    env = {**os.environ, "DBOS__VMID": f"writer-{run_id}"}
    writer = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "tests.runs.stream_writer", system_url, run_id),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    reader: Reader | None = None
    try:
        assert writer.stdout is not None
        started = await asyncio.wait_for(writer.stdout.readline(), 60)
        assert started.strip() == b"started", started
        status = await DBOS.get_workflow_status_async(run_id)
        assert status is not None and status.executor_id == f"writer-{run_id}"
        assert len(await _listeners(launched)) == 2  # one per process
        reader = Reader(run_id)
        for index in range(3):
            await asyncio.sleep(SETTLE_S)
            await DBOS.send_async(run_id, _delta(index), TOPIC)
            await reader.has(1 + index)
        await DBOS.send_async(run_id, END, TOPIC)
        frames = await reader.ended()
        assert await asyncio.wait_for(writer.wait(), WAIT_S) == 0
    finally:
        if reader is not None:
            await reader.close()
        if writer.returncode is None:
            writer.kill()
            await writer.wait()
    assert reader.chunks == [_delta(0), _delta(1), _delta(2), {"type": "finish"}]
    assert frames[-1] == streams.DONE


async def test_many_readers_share_one_listening_connection(launched: str, slow_poll: None) -> None:
    runs = [await _start_writer() for _ in range(3)]
    readers = [Reader(run_id) for run_id in runs for _ in range(40)]
    try:
        for run_id in runs:
            await DBOS.send_async(run_id, _delta(0), TOPIC)
        await asyncio.gather(*(reader.has(1) for reader in readers))
        await asyncio.sleep(SETTLE_S)

        assert len(await _listeners(launched)) == 1
        # Waiting readers hold no connection: at most DBOS's pool, its listener and this probe.
        pool_size = _get_dbos_instance()._sys_db.engine.pool.size()  # type: ignore[attr-defined]
        assert await _connections(launched) <= pool_size + 2 < len(readers)

        for run_id in runs:
            await DBOS.send_async(run_id, _delta(1), TOPIC)
        await asyncio.gather(*(reader.has(2) for reader in readers))
        for run_id in runs:
            await _end_writer(run_id)
        await asyncio.gather(*(reader.ended() for reader in readers))
    finally:
        await asyncio.gather(*(reader.close() for reader in readers))
    assert all(reader.chunks == [_delta(0), _delta(1), {"type": "finish"}] for reader in readers)


async def test_the_listener_reconnects_after_its_connection_is_killed(
    launched: str, slow_poll: None
) -> None:
    run_id = await _start_writer()
    reader = Reader(run_id)
    try:
        await DBOS.send_async(run_id, _delta(0), TOPIC)
        await reader.has(1)
        [killed] = await _listeners(launched)
        conninfo = make_url(launched).set(drivername="postgresql")
        async with await psycopg.AsyncConnection.connect(
            conninfo.render_as_string(hide_password=False), autocommit=True
        ) as connection:
            await connection.execute("SELECT pg_terminate_backend(%s)", (killed,))

        for _ in range(int(WAIT_S / 0.05)):
            if (await _listeners(launched)) not in ([], [killed]):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("DBOS did not listen again")
        await asyncio.sleep(SETTLE_S)
        await DBOS.send_async(run_id, _delta(1), TOPIC)
        await reader.has(2)
        await _end_writer(run_id)
        await reader.ended()
    finally:
        await reader.close()
    assert reader.chunks == [_delta(0), _delta(1), {"type": "finish"}]


async def test_the_safety_poll_delivers_what_no_notification_announced(
    launched: str, safety_poll_only: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stream writes of this process notify nobody: as if every notification were lost.
    sys_db = _get_dbos_instance()._sys_db
    monkeypatch.setattr(sys_db, "_signal_notification", lambda channel, payload: None)
    run_id = await _start_writer()
    reader = Reader(run_id)
    try:
        for index in range(2):
            await asyncio.sleep(SETTLE_S)
            await DBOS.send_async(run_id, _delta(index), TOPIC)
            await reader.has(1 + index)
        await _end_writer(run_id)
        await reader.ended()
    finally:
        await reader.close()
    assert reader.chunks == [_delta(0), _delta(1), {"type": "finish"}]


async def test_the_safety_poll_ends_the_stream_of_a_cancelled_run(
    launched: str, safety_poll_only: None
) -> None:
    run_id = await _start_writer()
    reader = Reader(run_id)
    try:
        await DBOS.send_async(run_id, _delta(0), TOPIC)
        await reader.has(1)
        await asyncio.sleep(SETTLE_S)
        # Cancelling writes nothing to the stream, so nothing notifies its readers.
        await DBOS.cancel_workflow_async(run_id)
        frames = await reader.ended()
    finally:
        await reader.close()
        # The cancelled writer wakes, and stops at its next step.
        await DBOS.send_async(run_id, END, TOPIC)
        handle = await DBOS.retrieve_workflow_async(run_id)
        with suppress(Exception):
            await asyncio.wait_for(handle.get_result(), WAIT_S)
    assert reader.chunks == [_delta(0), {"type": "finish"}]
    assert frames[-1] == streams.DONE


def test_a_chat_run_stream_ends_as_soon_as_the_run_does(
    database_url: str, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notify, "SAFETY_POLL_S", SLOW_POLL_S)
    monkeypatch.setattr(notify, "READER_POLL_S", SLOW_POLL_S)
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert notify.notifies_stream_writes() is (backend == "postgresql")
        chat = sandboxed_chat(client, Accounts(settings).person(name="alice"))
        chat.set_model("test/think")
        streamed = chat.stream_in_background("POST", "/api/chat", json=chat.body())
        # Within the bound only because the run's closing its stream woke the reader.
        streamed.join(timeout=2 * WAIT_S)
    assert streamed.status == 200
    assert streamed.frames[-1] == "data: [DONE]"
    assert_valid_stream(streamed.chunks)
