"""Executors' leases: renewed by their holder, lapsed ones claimed by exactly one other."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from storage import executors
from storage.db import Database
from storage.models import Executor

HOUR = 3600.0


async def _take(db: Database, executor_id: str) -> None:
    async with db.transaction() as tx:
        await executors.take_lease(tx, executor_id=executor_id)


async def _release(db: Database, executor_id: str) -> None:
    async with db.transaction() as tx:
        await executors.release_lease(tx, executor_id=executor_id)


async def _lapsed(db: Database, *, excluding: str, lease_s: float = HOUR) -> list[str]:
    async with db.transaction() as tx:
        return await executors.lapsed_executors(tx, lease_s=lease_s, excluding=excluding)


async def _claim(db: Database, dead: str, claimant: str, lease_s: float = HOUR) -> bool:
    async with db.transaction() as tx:
        return await executors.claim_lapsed_executor(
            tx, executor_id=dead, claimant=claimant, lease_s=lease_s
        )


async def _renew(db: Database, executor_id: str) -> bool:
    async with db.transaction() as tx:
        return await executors.renew_lease(tx, executor_id=executor_id)


async def _rows(db: Database) -> dict[str, str | None]:
    async with db.transaction() as tx:
        return {row.id: row.claimed_by for row in await tx.scalars(select(Executor))}


async def test_a_lease_lapses_when_not_renewed_within_the_lease(database: Database) -> None:
    await _take(database, "a")
    await _take(database, "b")
    await asyncio.sleep(0.05)

    assert await _lapsed(database, excluding="b") == []
    assert await _lapsed(database, excluding="b", lease_s=0.01) == ["a"]
    assert await _renew(database, "a")
    assert await _lapsed(database, excluding="b") == []


async def test_a_released_lease_has_lapsed_for_every_lease_length(database: Database) -> None:
    await _take(database, "a")
    await _release(database, "a")

    assert await _lapsed(database, excluding="b") == ["a"]
    assert await _lapsed(database, excluding="a") == []


async def test_racing_claims_of_a_lapsed_lease_have_exactly_one_winner(database: Database) -> None:
    await _take(database, "dead")
    await _release(database, "dead")

    won = await asyncio.gather(*(_claim(database, "dead", f"live_{i}") for i in range(8)))

    assert sum(won) == 1
    winner = f"live_{won.index(True)}"
    assert await _rows(database) == {"dead": winner}
    # The claim renewed the lease in the winner's name: it is not lapsed for anyone else now.
    assert await _lapsed(database, excluding="other") == []
    assert not await _claim(database, "dead", "other")


async def test_a_live_lease_cannot_be_claimed(database: Database) -> None:
    await _take(database, "alive")

    assert not await _claim(database, "alive", "greedy")
    assert await _rows(database) == {"alive": None}


async def test_a_claimed_executor_is_forgotten_by_its_claimant_only(database: Database) -> None:
    await _take(database, "dead")
    await _release(database, "dead")
    assert await _claim(database, "dead", "live")

    async with database.transaction() as tx:
        await executors.forget_executor(tx, executor_id="dead", claimant="other")
    assert await _rows(database) == {"dead": "live"}
    async with database.transaction() as tx:
        await executors.forget_executor(tx, executor_id="dead", claimant="live")
    assert await _rows(database) == {}


async def test_an_executor_back_after_a_claim_learns_it_and_takes_its_lease_again(
    database: Database,
) -> None:
    await _take(database, "stalled")
    await _release(database, "stalled")
    assert await _claim(database, "stalled", "live")

    assert not await _renew(database, "stalled")
    await _take(database, "stalled")

    assert await _rows(database) == {"stalled": None}
    assert await _renew(database, "stalled")
    async with database.transaction() as tx:
        # The claimant's late forget leaves the returned executor's lease alone.
        await executors.forget_executor(tx, executor_id="stalled", claimant="live")
    assert await _rows(database) == {"stalled": None}
