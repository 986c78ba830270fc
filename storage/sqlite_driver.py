"""aiosqlite connections whose statements run on the event loop's own thread.

aiosqlite runs each sqlite3 call on the connection's own thread, and SQLAlchemy's adapter makes
four such calls per statement (create a cursor, execute, fetch all, close). Every hand-off between
threads wakes the event loop, resumes the request's whole coroutine stack and passes the GIL back
and forth; for the short, indexed statements this server runs (tens of microseconds in SQLite),
the hand-offs cost far more than the statements. Here a statement runs in one call, on the loop's
thread, and its rows are kept (SQLAlchemy's adapter fetches them in full anyway). Opening and
closing a connection still go through aiosqlite's thread. See docs/performance.md.

The one thing that may not run on the loop's thread is waiting: SQLite's busy handler sleeps
while another connection holds the write lock, which would stall every request of the process.
So these connections run with ``busy_timeout=0`` and a statement refused with ``SQLITE_BUSY`` is
retried here after an asyncio sleep until :data:`BUSY_TIMEOUT_S` has passed, when sqlite3's own
"database is locked" error is raised, as SQLite's handler would. The sleeps are 1 ms (the event
loop's timer resolution) for the first 100 ms: the lock is usually another server process's
request transaction, which holds it for under a millisecond and, with requests queued, takes it
again at once, so a writer that slept longer would keep missing the gaps. Past 100 ms they double
up to 50 ms, so that a long transaction elsewhere (a migration, a bulk delete) is not polled a
thousand times a second.
A statement refused with ``SQLITE_BUSY`` changed nothing, so retrying it is safe; the one busy
error that retrying cannot cure (``SQLITE_BUSY_SNAPSHOT``: a read transaction that tried to
write after another connection wrote) is raised at once, as before.

The hot operations go one step further (:class:`LoopConnection`): a synchronous SQLAlchemy
connection of the pysqlite driver, used on the loop's thread in the same way, with no asyncio
adaptation at all. SQLAlchemy's asyncio layer passes every statement, cursor and fetch through a
greenlet switch and its adapter's coroutines; here a statement is one synchronous call.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Generator, Iterable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy import exc
from sqlalchemy.engine import Connection, CursorResult, Dialect
from sqlalchemy.sql import Executable

# How long a statement waits for another connection's lock before "database is locked".
BUSY_TIMEOUT_S = 10.0
# A refused statement is tried again every _POLL_S for _POLL_FOR_S, then after sleeps that double
# up to _LONGEST_RETRY_S (see the module's docstring; docs/performance.md, change 23).
_POLL_S = 0.001
_POLL_FOR_S = 0.1
_LONGEST_RETRY_S = 0.05
_SQLITE_BUSY = 5
_SQLITE_BUSY_SNAPSHOT = 517

_Outcome = tuple[Any, int, int | None, list[Any]]  # description, rowcount, lastrowid, rows
_T = TypeVar("_T")


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


def _retryable(error: sqlite3.OperationalError | exc.OperationalError) -> bool:
    code = getattr(getattr(error, "orig", error), "sqlite_errorcode", None)
    return code is not None and code & 0xFF == _SQLITE_BUSY and code != _SQLITE_BUSY_SNAPSHOT


async def retried(call: Callable[..., _T], *args: Any) -> _T:
    """``call(*args)``, run again after an asyncio sleep while SQLite answers ``SQLITE_BUSY``.

    ``call`` is a sqlite3 call or a SQLAlchemy one over pysqlite (whose errors wrap sqlite3's).
    Past :data:`BUSY_TIMEOUT_S` the last "database is locked" error is raised.
    """
    started = None  # the clock is read only once a call is refused: most never are
    pause = _POLL_S
    while True:
        try:
            return call(*args)
        except (sqlite3.OperationalError, exc.OperationalError) as error:
            if not _retryable(error):
                raise
            now = time.monotonic()
            started = now if started is None else started
            if now + pause > started + BUSY_TIMEOUT_S:
                raise
            if now - started >= _POLL_FOR_S:
                pause = min(pause * 2, _LONGEST_RETRY_S)
        await asyncio.sleep(pause)


class InlineCursor:
    """The part of ``aiosqlite.Cursor`` SQLAlchemy uses; a statement runs in one inline call."""

    arraysize = 1

    def __init__(self, connection: InlineConnection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[Any] = []

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._rows = []

    def __await__(self) -> Generator[Any, None, InlineCursor]:
        yield from ()
        return self

    async def _run(self, sql: str, parameters: Any, many: bool) -> InlineCursor:
        outcome: _Outcome = await self._connection._execute(
            _execute, self._connection._conn, sql, parameters, many
        )
        self.description, self.rowcount, self.lastrowid, self._rows = outcome
        return self

    async def execute(self, sql: str, parameters: Any = None) -> InlineCursor:
        return await self._run(sql, parameters, False)

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> InlineCursor:
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


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection whose calls run on the caller's thread, waiting for locks in
    asyncio (see the module's docstring)."""

    def cursor(self) -> InlineCursor:  # type: ignore[override]
        return InlineCursor(self)

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return await (retried(partial(fn, **kwargs), *args) if kwargs else retried(fn, *args))


def connect(database: str | Path, **kwargs: Any) -> InlineConnection:
    """What ``aiosqlite.connect`` does, with the inline connection; SQLAlchemy awaits the result.

    SQLAlchemy opens it with ``check_same_thread=False``: it is opened on aiosqlite's thread and
    used on the event loop's, one call at a time.
    """
    location = str(database)
    connection = InlineConnection(lambda: sqlite3.connect(location, **kwargs), 64)
    connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite's own connections
    return connection


class LoopConnection:
    """A synchronous SQLAlchemy connection (pysqlite) in a transaction, used on the event loop's
    thread: what Core storage functions need of an ``AsyncConnection``, without its greenlets.

    :meth:`execute` returns the statement's ``Result``, as ``AsyncConnection.execute`` does; a
    statement refused with ``SQLITE_BUSY`` is retried in asyncio, as in :class:`InlineConnection`.
    """

    __slots__ = ("sync_connection",)

    def __init__(self, sync_connection: Connection) -> None:
        self.sync_connection = sync_connection

    @property
    def dialect(self) -> Dialect:
        return self.sync_connection.dialect

    async def execute(
        self, statement: Executable, parameters: Any = None
    ) -> CursorResult[*tuple[Any, ...]]:
        return await retried(self.sync_connection.execute, statement, parameters)
