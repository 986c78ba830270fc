"""Locks that make server processes sharing one database take turns at a piece of work."""

from __future__ import annotations

import hashlib

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession


def _lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``name``, the same in every process."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def take_turns(session: AsyncSession, *, name: str) -> None:
    """Hold the lock ``name`` until the transaction ends; other processes wait for it.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: nothing to add, since a writing
    transaction (``BEGIN IMMEDIATE``, storage/db.py) holds the database's one write lock from its
    first statement on.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(_lock_key(name))))
