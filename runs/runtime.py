"""The durable-run runtime: DBOS over its system database, and what run steps can reach.

DBOS is a process-wide singleton, so one app per process runs durable runs. It is created and
launched in the app's lifespan (launching recovers the runs a crash interrupted) and destroyed
there. Recovered runs execute on DBOS's own event loop, so steps get a database engine for the
loop they run on (:func:`database`), never a pooled connection of another loop. The process runs
under its own executor id and lease (``runs/executors.py``), through which live processes finish
the runs of one that died.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from dbos import DBOS
from sqlalchemy.engine import make_url

from runs.executors import Lease, choose_executor_id
from storage.db import Database

logger = logging.getLogger("recoup_api.runs")

APP_NAME = "recoup-api"


def system_database_url(*, data_dir: Path, database_url: str, override: str = "") -> str:
    """DBOS's system database: an SQLite file in the data directory, else the app's database.

    On PostgreSQL, DBOS keeps its tables in its own ``dbos`` schema of the app's database, reached
    through psycopg (DBOS's driver).
    """
    if override:
        return override
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return f"sqlite:///{(data_dir / 'dbos.sqlite').resolve()}"
    sync_url = url.set(drivername=f"{url.get_backend_name()}+psycopg")
    return sync_url.render_as_string(hide_password=False)


@dataclass
class Runtime:
    """What the run workflow needs from the app, set once by :func:`start`."""

    database_url: str
    data_dir: Path
    app_database: Database
    app_loop: asyncio.AbstractEventLoop
    lease: Lease
    _other_loops: dict[int, Database] = field(default_factory=dict)

    def database(self) -> Database:
        """A database usable from the current event loop."""
        loop = asyncio.get_running_loop()
        if loop is self.app_loop:
            return self.app_database
        opened = self._other_loops.get(id(loop))
        if opened is None:
            opened = self._other_loops[id(loop)] = Database(self.database_url, pooled=False)
        return opened


_runtime: Runtime | None = None


def current() -> Runtime:
    if _runtime is None:
        raise RuntimeError("the run runtime is started by the app's lifespan, which has not run")
    return _runtime


def database() -> Database:
    """The app database, for the event loop of the caller."""
    return current().database()


async def start(
    *,
    database: Database,
    data_dir: Path,
    system_database_url: str,
    polling_interval_s: float,
    executor_id: str,
    heartbeat_s: float,
    lease_s: float,
) -> None:
    """Create and launch DBOS under this process's executor id (``executor_id``, else a default).

    Interrupted runs of that executor resume in the background, and so, once their lease has
    lapsed, do those of executors that died.
    """
    global _runtime
    # Importing registers the workflow and its steps before DBOS is launched.
    import runs.workflow  # noqa: F401

    lease = Lease(
        executor_id=choose_executor_id(configured=executor_id, database_url=database.url),
        database=database,
        heartbeat_s=heartbeat_s,
        lease_s=lease_s,
    )
    _runtime = Runtime(
        database_url=database.url,
        data_dir=data_dir,
        app_database=database,
        app_loop=asyncio.get_running_loop(),
        lease=lease,
    )
    DBOS(
        config={
            "name": APP_NAME,
            "system_database_url": system_database_url,
            "executor_id": lease.executor_id,
            "log_level": "WARNING",
            # Short intervals: readers poll for new chunks, and shutdown waits one interval.
            "notification_listener_polling_interval_sec": polling_interval_s,
            "scheduler_polling_interval_sec": polling_interval_s,
        }
    )
    await lease.take()
    await asyncio.to_thread(DBOS.launch)
    logger.info("durable runs: executor %s", lease.executor_id)
    lease.keep()


async def stop() -> None:
    """Destroy DBOS and release the lease.

    Runs still going stay pending: a live peer resumes them at its next heartbeat, or this
    process at its next start under the same executor id.
    """
    global _runtime
    if _runtime is not None:
        await _runtime.lease.stop_keeping()
    # DBOS made its own thread pool the loop's default executor; it dies with DBOS, and the loop
    # (and whatever else runs on it) still needs one.
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor())
    await asyncio.to_thread(DBOS.destroy)
    # Runs still going on this loop may have set DBOS's pool again while it shut down.
    loop.set_default_executor(ThreadPoolExecutor())
    if _runtime is not None:
        for opened in _runtime._other_loops.values():
            await opened.dispose()
        await _runtime.lease.release()
    _runtime = None
