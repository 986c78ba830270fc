"""A migrated database per test, on each backend; one on SQLite alone where only SQLite applies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.db import Database


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    await db.upgrade()
    yield db
    await db.dispose()


@pytest.fixture
async def sqlite_database(tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated SQLite database in ``tmp_path/recoup.db``, whatever the backend under test."""
    db = Database(f"sqlite+aiosqlite:///{(tmp_path / 'recoup.db').resolve()}")
    await db.upgrade()
    yield db
    await db.dispose()
