"""Engine, transactions and migrations."""

from __future__ import annotations

import asyncio
import collections
import sqlite3
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool, QueuePool

from storage import sqlite_driver
from storage.sqlite_driver import LoopConnection

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# How long a statement waits for another connection's lock, and a writer for the write gate.
BUSY_TIMEOUT_S = sqlite_driver.BUSY_TIMEOUT_S
# An execution option: this connection's transaction only reads (see Database.read).
_READ_ONLY = "recoup_read_only"
# The databases whose write gate the current task (or its parent) holds.
_holding: ContextVar[frozenset[int]] = ContextVar("recoup_write_gates", default=frozenset())
_WriteGates = weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, "WriteGate"]
# Where storage functions made of Core statements run them: a connection (Database.connection;
# on SQLite a LoopConnection) or a session's transaction (Database.transaction, Database.read).
Connectable = AsyncConnection | LoopConnection | AsyncSession


class WriteGate:
    """One event loop's turn to write: a lock that a task takes at once whenever it is free.

    ``asyncio.Lock`` is strictly first come, first served: once one task waits, every later one
    waits too, even while the lock is free, until the waiters ahead have resumed and had their
    turn, one per loop iteration. A single transaction that suspends while holding the lock (a
    durable run's lease renewal through the ORM) thus left a queue that, under steady writes,
    never drained: each new writer queued behind the others instead of committing at once, and
    waited 20 ms and more at 16 clients (docs/performance.md, change 24). Here a free gate is
    taken at once, and a woken waiter that finds it taken again waits again at the front of the
    queue. Most transactions hold the gate without suspending (the hot operations'
    :class:`LoopConnection` statements), so the queue drains as soon as the holder lets go.
    """

    __slots__ = ("_held", "_waiters")

    def __init__(self) -> None:
        self._held = False
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def locked(self) -> bool:
        return self._held

    async def acquire(self) -> None:
        front = False
        while self._held:
            waiter = asyncio.get_running_loop().create_future()
            if front:
                self._waiters.appendleft(waiter)
            else:
                self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_first()  # woken, then cancelled: the next waiter's turn
                elif waiter in self._waiters:  # a cancelled waiter may be passed over first
                    self._waiters.remove(waiter)
                raise
            front = True
        self._held = True

    def release(self) -> None:
        self._held = False
        self._wake_first()

    def _wake_first(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


def _configure_sqlite(engine: Engine) -> None:
    """SQLite's settings on each new connection, and the BEGIN of each transaction."""
    _configure_sqlite_connections(engine)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql(_begin_statement(read_only=read_only))


def _begin_statement(*, read_only: bool) -> str:
    # Writers take the write lock up front: a deferred transaction that later writes can fail
    # with SQLITE_BUSY_SNAPSHOT, which no waiting cures. Reads need no lock (WAL).
    return "BEGIN" if read_only else "BEGIN IMMEDIATE"


def _configure_sqlite_connections(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction begins (_begin_statement).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Statements run on the event loop's thread, where SQLite's busy handler must not sleep:
        # the driver waits for locks in asyncio instead (storage/sqlite_driver.py).
        cursor.execute("PRAGMA busy_timeout=0")
        cursor.close()


class Database:
    """One engine and its session factory; created in the app's lifespan, disposed there."""

    def __init__(self, url: str, *, pooled: bool = True) -> None:
        self.url = url
        # Unpooled engines serve event loops other than the app's (durable runs recovered on the
        # run runtime's own loop): a pooled connection must not cross loops.
        options: dict[str, Any] = {} if pooled else {"poolclass": NullPool}
        if make_url(url).get_driver_name() == "aiosqlite":
            # Statements run on the loop's thread, not aiosqlite's (docs/performance.md).
            options["connect_args"] = {"async_creator_fn": sqlite_driver.connect}
        self.engine = create_async_engine(
            url, pool_pre_ping=pooled and not url.startswith("sqlite"), **options
        )
        # SQLite has one writer at a time. Writers of this process queue on a write gate (one
        # per event loop) instead of in SQLite's busy handler, which polls with sleeps of up to
        # 100 ms: under load that sleeping, not the work, made the latency (docs/performance.md).
        self._write_gates: _WriteGates | None = None
        # SQLite's synchronous engine on the same file, for Database.connection (see there).
        self.loop_engine: Engine | None = None
        if self.engine.dialect.name == "sqlite":
            _configure_sqlite(self.engine.sync_engine)
            self._write_gates = weakref.WeakKeyDictionary()
            self.loop_engine = _loop_engine(url, pooled=pooled)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._read_engine = self.engine.execution_options(**{_READ_ONLY: True})
        self._read_sessions = async_sessionmaker(self._read_engine, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits on success and rolls back on any exception."""
        async with self._write_turn(), self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only: on SQLite it takes no write lock, so it never queues.

        Anything written in it is an error on SQLite's side as soon as another writer is active:
        use :meth:`transaction` for writes.
        """
        async with self._read_sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def connection(
        self, *, read_only: bool = False
    ) -> AsyncIterator[AsyncConnection | LoopConnection]:
        """A connection in a transaction, for Core statements: lighter than a session.

        It commits on success and rolls back on any exception, like :meth:`transaction`, whose
        write turn it waits for; with ``read_only``, it is for reads only, like :meth:`read`.
        On SQLite it is a :class:`LoopConnection`: a synchronous connection on the loop's thread,
        without SQLAlchemy's asyncio layer, at about half the CPU per statement
        (docs/performance.md).
        """
        if self.loop_engine is not None:
            async with nullcontext() if read_only else self._write_turn():
                with self.loop_engine.connect() as sync_connection:
                    # The connection's own BEGIN (no "begin" event, so that SQLAlchemy runs no
                    # event dispatch around each statement); SQLAlchemy's transaction begins with
                    # it, and a refused BEGIN IMMEDIATE leaves none open in SQLite.
                    await sqlite_driver.retried(
                        sync_connection.exec_driver_sql, _begin_statement(read_only=read_only)
                    )
                    try:
                        yield LoopConnection(sync_connection)
                    except BaseException:
                        sync_connection.rollback()
                        raise
                    sync_connection.commit()
            return
        if read_only:
            async with self._read_engine.connect() as connection, connection.begin():
                yield connection
        else:
            async with self._write_turn(), self.engine.connect() as connection, connection.begin():
                yield connection

    @asynccontextmanager
    async def _write_turn(self) -> AsyncIterator[None]:
        """Wait for this process's turn to write (SQLite only; a no-op elsewhere)."""
        gates, holding = self._write_gates, _holding.get()
        if gates is None or id(self) in holding:
            # A transaction nested in one that holds the gate meets SQLite's own lock, as before.
            yield
            return
        loop = asyncio.get_running_loop()
        gate = gates.get(loop) or gates.setdefault(loop, WriteGate())
        try:
            async with asyncio.timeout(BUSY_TIMEOUT_S):
                await gate.acquire()
        except TimeoutError:
            # What SQLite itself raises once busy_timeout has passed.
            raise OperationalError(
                "BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked")
            ) from None
        token = _holding.set(holding | {id(self)})
        try:
            yield
        finally:
            _holding.reset(token)
            gate.release()

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            async with self.engine.connect() as connection:
                await connection.exec_driver_sql("SELECT 1")
        except Exception:
            return False
        return True

    async def upgrade(self) -> None:
        """Apply every Alembic migration not yet applied."""
        async with self.engine.begin() as connection:
            await connection.run_sync(_upgrade_to_head)

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.loop_engine is not None:
            self.loop_engine.dispose()


def _loop_engine(url: str, *, pooled: bool) -> Engine:
    """The synchronous pysqlite engine over the SQLite file of ``url`` (an aiosqlite URL).

    Its connections are used on the event loop's thread, one task at a time, and may be opened
    by one loop and used by another: hence ``check_same_thread=False``, as SQLAlchemy opens
    aiosqlite's. A checkout never waits (no overflow limit): it would wait on the loop's thread,
    blocking the very tasks whose transactions would give a connection back.
    """
    pool: dict[str, Any] = (
        {"poolclass": QueuePool, "pool_size": 5, "max_overflow": -1}
        if pooled
        else {"poolclass": NullPool}
    )
    engine = create_engine(
        make_url(url).set(drivername="sqlite"),
        connect_args={"check_same_thread": False},
        **pool,
    )
    _configure_sqlite_connections(engine)
    return engine


# Any constant, the same in every process: the key of the migration lock on PostgreSQL.
_MIGRATION_LOCK = 0x7265636F7570  # "recoup"


def _upgrade_to_head(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Servers starting together on one database migrate one at a time (the lock lasts until
        # this transaction commits); the others then find nothing to do. SQLite's BEGIN IMMEDIATE
        # already serializes them.
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
