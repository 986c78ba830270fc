"""aiosqlite connections whose statements make one trip to the driver thread instead of four.

aiosqlite runs each sqlite3 call on the connection's own thread, and SQLAlchemy's adapter makes
four such calls per statement (create a cursor, execute, fetch all, close): four hand-offs between
threads, each waking the event loop and resuming the request's whole coroutine stack. Here a
cursor runs all four in one call and keeps the rows, which SQLAlchemy's adapter fetches in full
anyway. Errors are sqlite3's own, as before. See docs/performance.md.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import Any

import aiosqlite

_Outcome = tuple[Any, int, int | None, list[Any]]  # description, rowcount, lastrowid, rows


def _execute(
    connection: sqlite3.Connection, sql: str, parameters: Any, many: bool = False
) -> _Outcome:
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        elif parameters is None:
            cursor.execute(sql)
        else:
            cursor.execute(sql, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class OneTripCursor:
    """The part of ``aiosqlite.Cursor`` SQLAlchemy uses, one thread hand-off per statement."""

    arraysize = 1

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[Any] = []

    async def __aenter__(self) -> OneTripCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._rows = []

    def __await__(self) -> Generator[Any, None, OneTripCursor]:
        yield from ()
        return self

    async def _run(self, sql: str, parameters: Any, many: bool) -> OneTripCursor:
        outcome: _Outcome = await self._connection._execute(
            _execute, self._connection._conn, sql, parameters, many
        )
        self.description, self.rowcount, self.lastrowid, self._rows = outcome
        return self

    async def execute(self, sql: str, parameters: Any = None) -> OneTripCursor:
        return await self._run(sql, parameters, False)

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> OneTripCursor:
        return await self._run(sql, parameters, True)

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = self.arraysize if size is None else size
        rows, self._rows = self._rows[:count], self._rows[count:]
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def close(self) -> None:
        self._rows = []


class OneTripConnection(aiosqlite.Connection):
    """An aiosqlite connection whose cursors are :class:`OneTripCursor`."""

    def cursor(self) -> OneTripCursor:  # type: ignore[override]
        return OneTripCursor(self)


def connect(database: str | Path, **kwargs: Any) -> OneTripConnection:
    """What ``aiosqlite.connect`` does, with the one-trip cursor; SQLAlchemy awaits the result."""
    location = str(database)
    connection = OneTripConnection(lambda: sqlite3.connect(location, **kwargs), 64)
    connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite's own connections
    return connection
