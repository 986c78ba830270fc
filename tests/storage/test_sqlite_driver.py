"""SQLite statements run on the loop's thread and wait for other connections' locks in asyncio."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from storage import accounts, sqlite_driver
from storage.db import Database
from storage.models import Account


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


async def _count(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(Account)) or 0)


async def test_statements_run_on_the_event_loops_thread(database: Database):
    threads: set[int] = set()

    def record(*_args: object) -> None:
        threads.add(threading.get_ident())

    event.listen(database.engine.sync_engine, "after_cursor_execute", record)
    async with database.transaction() as tx:
        await accounts.create_account(tx, name="inline", kind="person")
    assert await _count(database) == 1
    assert threads == {threading.get_ident()}


async def test_a_writer_waits_for_another_connections_lock_without_blocking_the_loop(
    database: Database, other_writer: sqlite3.Connection
):
    other_writer.execute("BEGIN IMMEDIATE")
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    async def write() -> None:
        async with database.transaction() as tx:
            await accounts.create_account(tx, name="waited", kind="person")

    ticker = asyncio.create_task(tick())
    writer = asyncio.create_task(write())
    await asyncio.sleep(0.3)
    assert not writer.done()  # still waiting for the other connection's lock...
    assert ticks >= 10  # ...while the loop went on serving everything else
    other_writer.execute("COMMIT")
    await asyncio.wait_for(writer, timeout=5)
    ticker.cancel()
    assert await _count(database) == 1


async def test_a_lock_held_past_the_timeout_is_database_is_locked(
    database: Database, other_writer: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(sqlite_driver, "BUSY_TIMEOUT_S", 0.2)
    other_writer.execute("BEGIN IMMEDIATE")
    with pytest.raises(OperationalError, match="database is locked"):
        async with database.transaction() as tx:
            await accounts.create_account(tx, name="never", kind="person")
    other_writer.execute("ROLLBACK")
    # Nothing half-done: the next writer gets in and only its row exists.
    async with database.transaction() as tx:
        await accounts.create_account(tx, name="next", kind="person")
    assert await _count(database) == 1


async def test_reads_never_wait_for_another_connections_write(
    database: Database, other_writer: sqlite3.Connection
):
    other_writer.execute("BEGIN IMMEDIATE")
    other_writer.execute(
        "INSERT INTO accounts (id, name, kind, created_at) VALUES ('x', 'x', 'person', '2026')"
    )
    assert await asyncio.wait_for(_count(database), timeout=2) == 0
    other_writer.execute("COMMIT")
    assert await _count(database) == 1
