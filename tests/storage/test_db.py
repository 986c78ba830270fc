"""Transactions: writers of one process take turns; reads never wait for a writer.

Each holds for both ways in: a session (``transaction``/``read``) and a bare connection
(``connection``), which the hot operations use.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from storage.db import Connectable, Database
from storage.models import Account, utc_now
from tests.storage.ways import READERS, WRITERS, Opener


@pytest.fixture(params=list(WRITERS))
def write(request: pytest.FixtureRequest) -> Opener:
    return WRITERS[request.param]


@pytest.fixture(params=list(READERS))
def read(request: pytest.FixtureRequest) -> Opener:
    return READERS[request.param]


async def _add_account(tx: Connectable, name: str) -> None:
    row = {"id": str(uuid.uuid4()), "name": name, "kind": "person", "created_at": utc_now()}
    await tx.execute(insert(Account).values(row))


def _connections_in_use(db: Database) -> int:
    """Connections checked out of the database's pools (on SQLite, its loop engine's too)."""
    engines = [db.engine.sync_engine, *([db.loop_engine] if db.loop_engine else [])]
    return sum(engine.pool.checkedout() for engine in engines)  # type: ignore[attr-defined]


async def _count(db: Database, read: Opener = READERS["session"]) -> int:
    async with read(db) as tx:
        return int((await tx.execute(select(func.count()).select_from(Account))).scalar() or 0)


async def test_concurrent_write_transactions_all_commit(database: Database, write: Opener):
    async def create(n: int) -> None:
        async with write(database) as tx:
            await _add_account(tx, f"writer {n}")
            await asyncio.sleep(0)  # hand the loop to the other writers mid-transaction

    await asyncio.gather(*(create(n) for n in range(40)))

    assert await _count(database) == 40


async def test_a_read_does_not_wait_for_an_open_write_transaction(
    database: Database, write: Opener, read: Opener
):
    async with write(database) as tx:
        await _add_account(tx, "pending")
        # The write is uncommitted: a read sees the state before it, at once.
        assert await asyncio.wait_for(_count(database, read), timeout=2) == 0
    assert await _count(database, read) == 1


async def test_a_writer_waits_for_its_turn_without_holding_a_connection(
    sqlite_database: Database, write: Opener
):
    # SQLite only: the write turn is SQLite's (PostgreSQL writers do not exclude each other).
    database = sqlite_database
    first_in, release = asyncio.Event(), asyncio.Event()

    async def add(name: str, *, hold: bool = False) -> None:
        async with write(database) as tx:
            await _add_account(tx, name)
            first_in.set()
            if hold:
                await release.wait()

    # Each writer in its own task: a task started inside a transaction would share its turn.
    first = asyncio.create_task(add("first", hold=True))
    await first_in.wait()
    second = asyncio.create_task(add("second"))
    await asyncio.sleep(0.05)
    # Queued on the process's write gate, not in SQLite's lock with a connection in hand.
    assert not second.done()
    assert _connections_in_use(database) == 1
    release.set()
    await asyncio.wait_for(asyncio.gather(first, second), timeout=2)

    assert await _count(database) == 2


async def test_a_failed_write_transaction_lets_the_next_one_in(database: Database, write: Opener):
    with pytest.raises(RuntimeError):
        async with write(database) as tx:
            await _add_account(tx, "rolled back")
            raise RuntimeError("boom")

    async with asyncio.timeout(2), write(database) as tx:
        await _add_account(tx, "next")

    assert await _count(database) == 1


async def test_statements_report_rows_counts_and_errors(database: Database, write: Opener):
    rows = [
        {"id": f"id-{n}", "name": f"bulk {n}", "kind": "person", "created_at": utc_now()}
        for n in range(3)
    ]
    async with write(database) as tx:
        await tx.execute(insert(Account), rows)  # executemany
        renamed = await tx.execute(
            update(Account).where(Account.name.like("bulk %")).values(name="renamed")
        )
        assert renamed.rowcount == 3  # type: ignore[attr-defined]

    with pytest.raises(IntegrityError):
        async with write(database) as tx:
            await tx.execute(insert(Account), rows[:1])

    assert await _count(database) == 3
