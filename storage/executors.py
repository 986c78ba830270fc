"""Executors' leases: each server process renews its own, and a live one claims a lapsed one.

Times are read from the database's clock (:class:`database_clock`), never from a process's, so
that processes on hosts whose clocks differ still agree on whose lease has lapsed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from storage.chats import _insert_for
from storage.models import Executor
from storage.runs import _one_row

# Where a released lease's clock is set: lapsed for any lease length.
_LONG_AGO = 0.0


class database_clock(FunctionElement[float]):  # noqa: N801 (a SQL function, named like one)
    """The database's current time in seconds since the epoch."""

    type = Float()
    inherit_cache = True


@compiles(database_clock, "postgresql")
def _postgresql_clock(_element: database_clock, _compiler: Any, **_kw: Any) -> str:
    return "CAST(extract(epoch FROM clock_timestamp()) AS double precision)"


@compiles(database_clock, "sqlite")
def _sqlite_clock(_element: database_clock, _compiler: Any, **_kw: Any) -> str:
    # Julian day of the Unix epoch; julianday('now') has millisecond precision.
    return "((julianday('now') - 2440587.5) * 86400.0)"


async def take_lease(session: AsyncSession, *, executor_id: str) -> None:
    """Start (or restart) the executor's lease, dropping any claim on it."""
    insert = _insert_for(session)
    await session.execute(
        insert(Executor)
        .values(id=executor_id, last_seen=database_clock(), claimed_by=None)
        .on_conflict_do_update(
            index_elements=[Executor.id], set_={"last_seen": database_clock(), "claimed_by": None}
        )
    )


async def renew_lease(session: AsyncSession, *, executor_id: str) -> bool:
    """Renew the executor's lease; false when it had lapsed and another executor claimed it."""
    result = await session.execute(
        update(Executor)
        .where(Executor.id == executor_id, Executor.claimed_by.is_(None))
        .values(last_seen=database_clock())
        .execution_options(synchronize_session=False)
    )
    return _one_row(result)


async def release_lease(session: AsyncSession, *, executor_id: str) -> None:
    """End the executor's lease now (a clean shutdown): its runs are anyone's to finish."""
    await session.execute(
        update(Executor)
        .where(Executor.id == executor_id, Executor.claimed_by.is_(None))
        .values(last_seen=_LONG_AGO)
        .execution_options(synchronize_session=False)
    )


async def lapsed_executors(session: AsyncSession, *, lease_s: float, excluding: str) -> list[str]:
    """The executors, other than ``excluding``, not seen for ``lease_s`` seconds."""
    rows = await session.scalars(
        select(Executor.id)
        .where(Executor.id != excluding, Executor.last_seen < database_clock() - lease_s)
        .order_by(Executor.last_seen)
    )
    return list(rows)


async def claim_lapsed_executor(
    session: AsyncSession, *, executor_id: str, claimant: str, lease_s: float
) -> bool:
    """Take over a lapsed lease for ``claimant``: one compare-and-set, true for its one winner.

    The claim renews the lease in the claimant's name, so that it lapses again (and another
    executor may claim it) should the claimant die before it is done.
    """
    result = await session.execute(
        update(Executor)
        .where(Executor.id == executor_id, Executor.last_seen < database_clock() - lease_s)
        .values(last_seen=database_clock(), claimed_by=claimant)
        .execution_options(synchronize_session=False)
    )
    return _one_row(result)


async def forget_executor(session: AsyncSession, *, executor_id: str, claimant: str) -> None:
    """Drop a lapsed executor whose runs ``claimant`` has handed over, unless it came back."""
    await session.execute(
        delete(Executor)
        .where(Executor.id == executor_id, Executor.claimed_by == claimant)
        .execution_options(synchronize_session=False)
    )
