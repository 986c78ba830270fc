"""Storage behaviour that the API relies on: race-safe creation and all-or-nothing writes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select

from storage import accounts, chats, sessions
from storage.db import Database
from storage.models import Chat, Session


@pytest.fixture
async def database(tmp_path: Path):  # type: ignore[no-untyped-def]
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    await db.upgrade()
    yield db
    await db.dispose()


async def _session_of_new_account(db: Database) -> str:
    async with db.transaction() as tx:
        account = await accounts.create_account(tx, name="owner", kind="person")
        record, _chat = await sessions.create_session_with_chat(
            tx, account_id=account.id, title="s", artist_id=None, model_id="m"
        )
    return record.id


async def _create(db: Database, session_id: str, chat_id: str) -> tuple[Chat, bool]:
    async with db.transaction() as tx:
        return await chats.create_chat(
            tx, session_id=session_id, chat_id=chat_id, title="New chat", model_id="m"
        )


async def test_concurrent_creates_of_one_new_id_all_succeed_with_one_row(database: Database):
    session_id = await _session_of_new_account(database)
    results = await asyncio.gather(*(_create(database, session_id, "same-id") for _ in range(8)))
    assert {chat.id for chat, _created in results} == {"same-id"}
    assert sum(created for _chat, created in results) == 1
    async with database.transaction() as tx:
        count = await tx.scalar(select(func.count()).select_from(Chat).where(Chat.id == "same-id"))
    assert count == 1


async def test_an_id_of_another_session_is_refused(database: Database):
    first = await _session_of_new_account(database)
    second = await _session_of_new_account(database)
    await _create(database, first, "taken")
    with pytest.raises(chats.ChatIdTaken):
        await _create(database, second, "taken")


async def test_a_failure_mid_transaction_leaves_no_half_written_rows(database: Database):
    async with database.transaction() as tx:
        account = await accounts.create_account(tx, name="owner", kind="person")
    with pytest.raises(RuntimeError):
        async with database.transaction() as tx:
            await sessions.create_session_with_chat(
                tx, account_id=account.id, title="s", artist_id=None, model_id="m"
            )
            raise RuntimeError("crash between the writes and the commit")
    async with database.transaction() as tx:
        assert await tx.scalar(select(func.count()).select_from(Session)) == 0
        assert await tx.scalar(select(func.count()).select_from(Chat)) == 0
