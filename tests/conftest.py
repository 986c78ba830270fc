"""Shared fixtures: a real app over a real SQLite file, and real accounts with real keys."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from server.app import create_app
from server.config import Settings
from storage import accounts
from storage.db import Database


@dataclass(frozen=True)
class Caller:
    """A real account and a real API key for it."""

    id: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"x-api-key": self.key}


class Accounts:
    """Creates accounts and keys directly in the test database."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _run(self, work):  # type: ignore[no-untyped-def]
        async def go():  # type: ignore[no-untyped-def]
            database = Database(self.settings.resolved_database_url)
            try:
                await database.upgrade()
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


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", validate_responses=True)


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
