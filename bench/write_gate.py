"""``python -m bench.write_gate``: SQLite writers queued in asyncio versus in SQLite's busy handler.

In one process, ``--tasks`` concurrent tasks each run ``--transactions`` short write transactions
(read a chat, rename it) through ``Database.transaction()``: once as the server does (writers
take turns on the per-loop write gate), once straight through the session factory (every writer
issues ``BEGIN IMMEDIATE`` and the losers wait in SQLite's busy handler, which sleeps and polls).
It prints transactions per second and p50/p99 latency of each; no HTTP, no other process.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from bench import seed
from storage import chats
from storage.db import Database


def _ungated(database: Database) -> Callable[[], AbstractAsyncContextManager[AsyncSession]]:
    @asynccontextmanager
    async def transaction() -> AsyncIterator[AsyncSession]:
        async with database.sessions() as session, session.begin():
            yield session

    return transaction


async def _measure(
    transaction: Callable[[], AbstractAsyncContextManager[AsyncSession]],
    *,
    chat_id: str,
    tasks: int,
    transactions: int,
) -> tuple[float, float, float]:
    latencies: list[float] = []

    async def worker(n: int) -> None:
        for i in range(transactions):
            started = time.perf_counter()
            async with transaction() as tx:
                chat = await chats.get_chat(tx, chat_id=chat_id)
                assert chat is not None
                await chats.update_chat(tx, chat=chat, title=f"{n}-{i}")
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(tasks)))
    elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    return len(latencies) / elapsed, cuts[49], cuts[98]


async def main(tasks: int, transactions: int, rounds: int) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="recoup-gate-"))
    fixture = await seed.seed(data_dir)
    database = Database(seed.database_url(data_dir))
    kinds = {"write gate (server)": database.transaction, "busy handler only": _ungated(database)}
    results: dict[str, list[tuple[float, float, float]]] = {kind: [] for kind in kinds}
    try:
        for _ in range(rounds):
            for kind, transaction in kinds.items():
                results[kind].append(
                    await _measure(
                        transaction,
                        chat_id=fixture.update_chat,
                        tasks=tasks,
                        transactions=transactions,
                    )
                )
    finally:
        await database.dispose()
    print(f"{tasks} concurrent writers, {transactions} transactions each, median of {rounds}:")
    print("| queueing | tx/s | p50 ms | p99 ms |\n|---|---|---|---|")
    for kind, runs in results.items():
        rate, p50, p99 = (statistics.median(run[i] for run in runs) for i in range(3))
        print(f"| {kind} | {rate:,.0f} | {p50:.1f} | {p99:.1f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.write_gate", description=__doc__)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--transactions", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.tasks, args.transactions, args.rounds))
