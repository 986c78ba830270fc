"""`recoup-api serve` processes started at the same moment on one empty PostgreSQL database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from sqlalchemy import func, select

from storage.db import Database
from storage.models import Account, ApiKey, Executor
from tests.e2e.served import KEY_LINE, Served
from tests.postgres import PostgresCluster

PROCESSES = 2


async def _rows(url: str) -> tuple[int, int, list[str]]:
    """Accounts and keys counted, and executors listed, straight from the database."""
    database = Database(url)
    try:
        async with database.transaction() as tx:
            accounts = await tx.scalar(select(func.count()).select_from(Account))
            keys = await tx.scalar(select(func.count()).select_from(ApiKey))
            executors = list(await tx.scalars(select(Executor.id)))
    finally:
        await database.dispose()
    return int(accounts or 0), int(keys or 0), executors


def test_servers_starting_together_make_one_developer_account_and_an_executor_each(
    postgres: PostgresCluster, tmp_path: Path
) -> None:
    with postgres.database(migrated=False) as url:
        servers = [Served(tmp_path / f"s{n}", url, name=f"s{n}") for n in range(PROCESSES)]
        try:
            for server in servers:
                server.launch()
            for server in servers:
                server.wait_ready()
            printed = [KEY_LINE.findall(server.output.read_text()) for server in servers]
            accounts, keys, executors = asyncio.run(_rows(url))
            [[key]] = [found for found in printed if found]
            answers = [
                httpx.get(f"{s.base_url}/api/sessions", headers={"x-api-key": key}) for s in servers
            ]
        finally:
            for server in servers:
                server.stop()

    assert sorted(len(found) for found in printed) == [0] * (PROCESSES - 1) + [1]
    assert (accounts, keys) == (1, 1)
    assert [answer.status_code for answer in answers] == [200] * PROCESSES
    # Each process runs under a DBOS executor id of its own (none under DBOS's shared `local`).
    assert len(set(executors)) == PROCESSES and "local" not in executors
