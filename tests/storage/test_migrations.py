"""Migrations: servers starting together on one empty database all come up, migrated once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.db import Database
from tests.postgres import PostgresCluster

PROCESSES = 3


@pytest.fixture
def empty_database_url(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> Iterator[str]:
    """A database with no tables at all, on each backend."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    with cluster.database(migrated=False) as url:
        yield url


async def _applied(url: str) -> tuple[list[str], int]:
    database = Database(url)
    try:
        async with database.transaction() as tx:
            versions = list(await tx.scalars(text("SELECT version_num FROM alembic_version")))
            accounts = int(await tx.scalar(text("SELECT count(*) FROM accounts")) or 0)
    finally:
        await database.dispose()
    return versions, accounts


def test_concurrent_upgrades_from_several_processes_all_succeed(
    empty_database_url: str, tmp_path: Path
):
    env = {
        **os.environ,
        "RECOUP_DATABASE_URL": empty_database_url,
        "RECOUP_DATA_DIR": str(tmp_path),
    }
    command = [str(Path(sys.executable).parent / "recoup-api"), "db", "upgrade"]
    upgrades = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(PROCESSES)
    ]
    outputs = [upgrade.communicate(timeout=120)[0].decode() for upgrade in upgrades]
    assert [upgrade.returncode for upgrade in upgrades] == [0] * PROCESSES, outputs
    versions, accounts = asyncio.run(_applied(empty_database_url))
    assert len(versions) == 1
    assert accounts == 0
