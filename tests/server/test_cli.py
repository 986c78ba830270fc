"""The CLI's first start: processes starting together on an empty database make one account."""

from __future__ import annotations

import asyncio
from pathlib import Path

from server import cli
from server.config import Settings
from storage import accounts, locks
from storage.db import Database


async def test_a_first_start_waits_for_one_in_progress_elsewhere(
    database_url: str, tmp_path: Path
) -> None:
    database = Database(database_url)
    await database.upgrade()
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    try:
        async with database.transaction() as tx:
            # Another process's first start, half done: its turn taken, no account found yet.
            await locks.take_turns(tx, name=cli.FIRST_START_LOCK)
            assert await accounts.count_accounts(tx) == 0
            starting = asyncio.create_task(cli._first_start(settings))
            # Time to migrate and count the accounts, were it not waiting for its turn.
            await asyncio.sleep(1)
            assert not starting.done()
            await accounts.create_account(tx, name="developer", kind="person")
        key = await asyncio.wait_for(starting, timeout=30)
        async with database.transaction() as tx:
            count = await accounts.count_accounts(tx)
    finally:
        await database.dispose()

    assert key is None
    assert count == 1
