"""Storage behaviour that the API relies on: race-safe creation and all-or-nothing writes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, update

from storage import accounts, chats, sessions
from storage.db import Database
from storage.models import Chat, Session


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


async def test_a_chat_id_of_any_length_round_trips(database: Database):
    session_id = await _session_of_new_account(database)
    long_id = "c" * 5000
    chat, created = await _create(database, session_id, long_id)
    assert (chat.id, created) == (long_id, True)
    async with database.transaction() as tx:
        found = await chats.get_chat(tx, chat_id=long_id)
    assert found is not None and found.id == long_id


async def test_a_key_with_a_nul_finds_nothing(database: Database):
    session_id = await _session_of_new_account(database)
    async with database.transaction() as tx:
        assert await chats.get_chat(tx, chat_id="a\x00b") is None
        assert await sessions.get_session(tx, session_id=session_id + "\x00") is None
        assert await accounts.get_account(tx, account_id="\x00") is None


async def test_chats_created_together_are_listed_by_id_bytewise(database: Database):
    session_id = await _session_of_new_account(database)
    ids = ["b", "B", "a-b", "ab", "a", "A"]
    for chat_id in ids:
        await _create(database, session_id, chat_id)
    async with database.transaction() as tx:
        # Same instant for all, so only the id orders them: by bytes, whatever the locale.
        await tx.execute(
            update(Chat).where(Chat.id.in_(ids)).values(created_at=datetime(2026, 1, 1, tzinfo=UTC))
        )
        listed = await chats.list_chat_summaries(tx, session_id=session_id, account_id="nobody")
    assert [s.id for s in listed if s.id in ids] == sorted(ids)
