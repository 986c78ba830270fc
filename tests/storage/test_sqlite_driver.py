"""SQLite statements run on the loop's thread and wait for other connections' locks in asyncio.

Each holds for both ways in: a session (``transaction``/``read``, through SQLAlchemy's asyncio
layer) and a bare connection (``connection``, a synchronous connection on the loop's thread).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import event, func, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from storage import sqlite_driver
from storage.db import Database
from storage.models import Account, utc_now
from tests.storage.ways import READERS, WRITERS

# The synchronous engine under each way in.
ENGINES: dict[str, Callable[[Database], Engine | None]] = {
    "session": lambda db: db.engine.sync_engine,
    "connection": lambda db: db.loop_engine,
}


@pytest.fixture(params=list(WRITERS))
def way(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database(sqlite_database: Database) -> Database:
    """This driver is SQLite's: every test here runs on SQLite alone."""
    return sqlite_database


@pytest.fixture
def other_writer(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection to the same file, as another process (the CLI, a second server) has."""
    connection = sqlite3.connect(tmp_path / "recoup.db", isolation_level=None)
    yield connection
    connection.close()


async def _count(db: Database, way: str = "session") -> int:
    async with READERS[way](db) as tx:
        return int((await tx.execute(select(func.count()).select_from(Account))).scalar() or 0)


async def _add_account(db: Database, way: str, name: str) -> None:
    row = {"id": str(uuid.uuid4()), "name": name, "kind": "person", "created_at": utc_now()}
    async with WRITERS[way](db) as tx:
        await tx.execute(insert(Account).values(row))


async def test_statements_run_on_the_event_loops_thread(database: Database, way: str):
    threads: set[int] = set()
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        threads.add(threading.get_ident())
        statements.append(statement)

    engine = ENGINES[way](database)
    assert engine is not None
    event.listen(engine, "after_cursor_execute", record)
    await _add_account(database, way, "inline")
    assert await _count(database, way) == 1
    assert threads == {threading.get_ident()}
    assert statements[0] == "BEGIN IMMEDIATE"  # the writer's BEGIN, then its INSERT
    assert statements[-2:] == ["BEGIN", "SELECT count(*) AS count_1 \nFROM accounts"]


async def test_a_writer_waits_for_another_connections_lock_without_blocking_the_loop(
    database: Database, other_writer: sqlite3.Connection, way: str
):
    other_writer.execute("BEGIN IMMEDIATE")
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticker = asyncio.create_task(tick())
    writer = asyncio.create_task(_add_account(database, way, "waited"))
    await asyncio.sleep(0.3)
    assert not writer.done()  # still waiting for the other connection's lock...
    assert ticks >= 10  # ...while the loop went on serving everything else
    other_writer.execute("COMMIT")
    await asyncio.wait_for(writer, timeout=5)
    ticker.cancel()
    assert await _count(database, way) == 1


async def test_a_lock_held_past_the_timeout_is_database_is_locked(
    database: Database,
    other_writer: sqlite3.Connection,
    monkeypatch: pytest.MonkeyPatch,
    way: str,
):
    monkeypatch.setattr(sqlite_driver, "BUSY_TIMEOUT_S", 0.2)
    other_writer.execute("BEGIN IMMEDIATE")
    with pytest.raises(OperationalError, match="database is locked"):
        await _add_account(database, way, "never")
    other_writer.execute("ROLLBACK")
    # Nothing half-done: the next writer gets in and only its row exists.
    await _add_account(database, way, "next")
    assert await _count(database, way) == 1


async def test_reads_never_wait_for_another_connections_write(
    database: Database, other_writer: sqlite3.Connection, way: str
):
    other_writer.execute("BEGIN IMMEDIATE")
    other_writer.execute(
        "INSERT INTO accounts (id, name, kind, created_at) VALUES ('x', 'x', 'person', '2026')"
    )
    assert await asyncio.wait_for(_count(database, way), timeout=2) == 0
    other_writer.execute("COMMIT")
    assert await _count(database, way) == 1


async def test_a_refused_statement_is_tried_every_millisecond_then_less_often(
    monkeypatch: pytest.MonkeyPatch,
):
    # Another process's request transaction holds the lock for under a millisecond and takes it
    # again at once: a writer that slept longer and longer kept missing the gaps between them
    # (docs/performance.md, change 23). The clock is faked, so the schedule itself is checked.
    clock = [100.0]
    pauses: list[float] = []

    async def sleep(pause: float) -> None:
        pauses.append(pause)
        clock[0] += pause

    monkeypatch.setattr(sqlite_driver, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    monkeypatch.setattr(sqlite_driver, "asyncio", SimpleNamespace(sleep=sleep))

    def locked() -> None:
        error = sqlite3.OperationalError("database is locked")
        error.sqlite_errorcode = sqlite3.SQLITE_BUSY
        raise error

    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        await sqlite_driver.retried(locked)
    polled = [p for p in pauses if p == 0.001]
    assert 99 <= len(polled) <= 101 and pauses[: len(polled)] == polled  # 1 ms for 100 ms
    assert pauses[len(polled) : len(polled) + 6] == [0.002, 0.004, 0.008, 0.016, 0.032, 0.05]
    assert set(pauses[len(polled) + 6 :]) == {0.05}
    assert 9.9 <= sum(pauses) <= sqlite_driver.BUSY_TIMEOUT_S  # then "database is locked"
