"""Shared fixtures: a real app over a real database, and real accounts with real keys.

Every test that uses a database runs twice, on SQLite and on PostgreSQL (ids ``[sqlite]`` and
``[postgresql]``); the PostgreSQL cluster is started on first use, once per run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from server.app import create_app
from server.config import Settings
from storage import accounts
from storage.db import Database
from tests.postgres import PostgresCluster, running_cluster

BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Caller:
    """A real account and a real API key for it."""

    id: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"x-api-key": self.key}


class Accounts:
    """Creates accounts and keys directly in the test database, which the app has migrated."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _run(self, work):  # type: ignore[no-untyped-def]
        async def go():  # type: ignore[no-untyped-def]
            database = Database(self.settings.resolved_database_url)
            try:
                async with database.transaction() as tx:
                    return await work(tx)
            finally:
                await database.dispose()

        return asyncio.run(go())

    def person(self, *, org: str | None = None, name: str = "person") -> Caller:
        async def work(tx):  # type: ignore[no-untyped-def]
            account = await accounts.create_account(tx, name=name, kind="person", organization=org)
            _row, key = await accounts.create_api_key(tx, account_id=account.id, name="test")
            return Caller(account.id, key)

        return self._run(work)

    def artist(self, *, org: str | None = None, name: str = "artist") -> str:
        async def work(tx):  # type: ignore[no-untyped-def]
            account = await accounts.create_account(tx, name=name, kind="artist", organization=org)
            return account.id

        return self._run(work)

    def run(self, work):  # type: ignore[no-untyped-def]
        """Run ``await work(tx)`` in a transaction on the test database."""
        return self._run(work)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """The throwaway PostgreSQL cluster of this run."""
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database engine under test. Module-scoped, so module-scoped fixtures can use it."""
    return str(request.param)


@contextmanager
def fresh_database(request: pytest.FixtureRequest, backend: str, data_dir: Path) -> Iterator[str]:
    """The URL of a new database on ``backend``, deleted afterwards.

    SQLite: a file in ``data_dir``, where the server would put it. PostgreSQL: a database copied
    from the migrated template (the cluster starts on first use, so SQLite-only runs need none).
    A fixture calling this must itself request ``backend``: that is what parametrizes its tests.
    """
    if backend == "sqlite":
        data_dir.mkdir(parents=True, exist_ok=True)
        yield f"sqlite+aiosqlite:///{(data_dir / 'recoup.db').resolve()}"
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    with cluster.database() as url:
        yield url


@pytest.fixture
def database_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Iterator[str]:
    """A new database for one test, on each backend."""
    with fresh_database(request, backend, tmp_path / "data") as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, validate_responses=True)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The real app, lifespan included (migrations run), with response validation on."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def people(settings: Settings, client: TestClient) -> Accounts:
    return Accounts(settings)


@pytest.fixture
def alice(people: Accounts) -> Caller:
    return people.person(name="alice")


@pytest.fixture
def bob(people: Accounts) -> Caller:
    return people.person(name="bob")
