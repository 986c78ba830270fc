"""Which DBOS executor this process is; leases that let live processes finish dead ones' runs.

DBOS recovers, when it launches, the pending workflows of the launching process's executor id.
That is all one server needs after a crash. Several servers sharing PostgreSQL need more: an
executor id each (two processes both ``local`` would each re-run the other's live runs when they
start), and someone to finish the runs of a process that died and does not come back.

Each process holds a lease under its executor id (``storage/executors.py``) and renews it every
heartbeat. At each heartbeat it also looks for leases that lapsed (not renewed for the lease
time), claims each with a compare-and-set that one process wins, and hands that executor's pending
workflows to DBOS's recovery. Recovery puts them back on DBOS's internal queue, whence one live
process (whichever dequeues first) runs each from its last recorded step. The lapsed executor is
then forgotten; a claimant that dies before that lets its claim lapse in turn, and another process
claims it again (DBOS's recovery only re-enqueues workflows still pending on the dead executor).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from dataclasses import dataclass, field

from dbos import DBOS
from sqlalchemy.engine import make_url

from storage import executors as executor_store
from storage.db import Database

logger = logging.getLogger("recoup_api.runs")

# DBOS's own default: on SQLite one process serves the database, and a restart recovers its runs.
LOCAL = "local"


def choose_executor_id(*, configured: str, database_url: str) -> str:
    """This process's executor id: ``configured`` (``DBOS__VMID``), else a default.

    SQLite: ``local``, the one server of the database file, which recovers its runs at restart.
    PostgreSQL: an id of this process alone (host, pid and a random part), so that no other
    process takes it for its own; its runs are finished by a peer once its lease lapses.
    """
    if configured:
        return configured
    if make_url(database_url).get_backend_name() == "sqlite":
        return LOCAL
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclass
class Lease:
    """This process's lease, renewed on the app's loop, and the recovery of lapsed ones."""

    executor_id: str
    database: Database
    heartbeat_s: float
    lease_s: float
    _keeper: asyncio.Task[None] | None = field(default=None, init=False)

    async def take(self) -> None:
        """Hold the lease from now: before DBOS launches, so every run has a leased executor."""
        async with self.database.transaction() as tx:
            await executor_store.take_lease(tx, executor_id=self.executor_id)

    def keep(self) -> None:
        """Renew the lease and recover lapsed ones in the background (DBOS must be launched)."""
        self._keeper = asyncio.create_task(self._keep(), name="recoup-executor-lease")

    async def stop_keeping(self) -> None:
        """Stop renewing the lease and recovering lapsed ones (before DBOS is destroyed)."""
        keeper, self._keeper = self._keeper, None
        if keeper is None:
            return
        if keeper.get_loop() is not asyncio.get_running_loop():
            # Another app of this process (tests run several) started it on its own loop.
            keeper.get_loop().call_soon_threadsafe(keeper.cancel)
            return
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper

    async def release(self) -> None:
        """End the lease now, so that a live peer finishes this process's runs at once.

        Only once DBOS is destroyed: by then no run goes on in this process.
        """
        try:
            async with self.database.transaction() as tx:
                await executor_store.release_lease(tx, executor_id=self.executor_id)
        except Exception:
            # Shutting down all the same: the lease lapses on its own.
            logger.warning("executor %s: could not release the lease", self.executor_id)

    async def _keep(self) -> None:
        while True:
            try:
                await self._renew()
                await self.recover_lapsed()
            except Exception:
                # A database blip must not end the heartbeat: the next one tries again.
                logger.exception("executor %s: lease upkeep failed", self.executor_id)
            await asyncio.sleep(self.heartbeat_s)

    async def _renew(self) -> None:
        async with self.database.transaction() as tx:
            if await executor_store.renew_lease(tx, executor_id=self.executor_id):
                return
            await executor_store.take_lease(tx, executor_id=self.executor_id)
        logger.warning(
            "executor %s: this process's lease had lapsed and another process took over its "
            "runs (a stall longer than the lease?); renewed it",
            self.executor_id,
        )

    async def recover_lapsed(self) -> list[str]:
        """Claim the lapsed leases this process wins and recover their runs; their ids."""
        async with self.database.read() as tx:
            lapsed = await executor_store.lapsed_executors(
                tx, lease_s=self.lease_s, excluding=self.executor_id
            )
        return [dead for dead in lapsed if await self._recover(dead)]

    async def _recover(self, dead: str) -> bool:
        async with self.database.transaction() as tx:
            won = await executor_store.claim_lapsed_executor(
                tx, executor_id=dead, claimant=self.executor_id, lease_s=self.lease_s
            )
        if not won:
            return False
        handles = await asyncio.to_thread(DBOS._recover_pending_workflows, [dead])
        # A peer that stopped cleanly left no runs: only a takeover of runs is worth a warning.
        logger.log(
            logging.WARNING if handles else logging.INFO,
            "executor %s: lease lapsed; %d of its runs handed over for recovery by %s",
            dead,
            len(handles),
            self.executor_id,
        )
        async with self.database.transaction() as tx:
            await executor_store.forget_executor(tx, executor_id=dead, claimant=self.executor_id)
        return True
