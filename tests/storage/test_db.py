"""Transactions: writers of one process take turns; reads never wait for a writer."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from storage import accounts
from storage.db import Database
from storage.models import Account, utc_now


async def _count(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(Account)) or 0)


async def test_concurrent_write_transactions_all_commit(database: Database):
    async def create(n: int) -> None:
        async with database.transaction() as tx:
            await accounts.create_account(tx, name=f"writer {n}", kind="person")
            await asyncio.sleep(0)  # hand the loop to the other writers mid-transaction

    await asyncio.gather(*(create(n) for n in range(40)))

    assert await _count(database) == 40


async def test_a_read_does_not_wait_for_an_open_write_transaction(database: Database):
    async with database.transaction() as tx:
        await accounts.create_account(tx, name="pending", kind="person")
        # The write is uncommitted: a read sees the state before it, at once.
        assert await asyncio.wait_for(_count(database), timeout=2) == 0
    assert await _count(database) == 1


async def test_a_failed_write_transaction_lets_the_next_one_in(database: Database):
    with pytest.raises(RuntimeError):
        async with database.transaction() as tx:
            await accounts.create_account(tx, name="rolled back", kind="person")
            raise RuntimeError("boom")

    async with asyncio.timeout(2), database.transaction() as tx:
        await accounts.create_account(tx, name="next", kind="person")

    assert await _count(database) == 1


async def test_statements_report_rows_counts_and_errors(database: Database):
    rows = [
        {"id": f"id-{n}", "name": f"bulk {n}", "kind": "person", "created_at": utc_now()}
        for n in range(3)
    ]
    async with database.transaction() as tx:
        await tx.execute(insert(Account), rows)  # executemany
        renamed = await tx.execute(
            update(Account).where(Account.name.like("bulk %")).values(name="renamed")
        )
        assert renamed.rowcount == 3  # type: ignore[attr-defined]

    with pytest.raises(IntegrityError):
        async with database.transaction() as tx:
            await tx.execute(insert(Account), rows[:1])

    assert await _count(database) == 3
