"""The run slot: one compare-and-set to claim it, one to release it, whoever races."""

from __future__ import annotations

import asyncio

from storage import accounts, runs, sessions
from storage.db import Database
from storage.models import Chat


async def _chat(db: Database) -> str:
    async with db.transaction() as tx:
        account = await accounts.create_account(tx, name="owner", kind="person")
        _record, chat = await sessions.create_session_with_chat(
            tx, account_id=account.id, title="s", artist_id=None, model_id="m"
        )
    return chat.id


async def _claim(db: Database, chat_id: str, run_id: str) -> bool:
    async with db.transaction() as tx:
        return await runs.claim_run_slot(tx, chat_id=chat_id, run_id=run_id)


async def test_concurrent_claims_have_exactly_one_winner(database: Database) -> None:
    chat_id = await _chat(database)

    won = await asyncio.gather(*(_claim(database, chat_id, f"wrun_{i}") for i in range(8)))

    assert sum(won) == 1
    async with database.transaction() as tx:
        holder = await runs.run_slot_holder(tx, chat_id=chat_id)
    assert holder == f"wrun_{won.index(True)}"


async def test_only_the_holder_releases_the_slot(database: Database) -> None:
    chat_id = await _chat(database)
    assert await _claim(database, chat_id, "wrun_a")

    async with database.transaction() as tx:
        assert not await runs.release_run_slot(tx, chat_id=chat_id, run_id="wrun_b")
        assert await runs.release_run_slot(tx, chat_id=chat_id, run_id="wrun_a")
        assert not await runs.release_run_slot(tx, chat_id=chat_id, run_id="wrun_a")
    assert await _claim(database, chat_id, "wrun_b")


async def test_a_finished_run_stays_finished(database: Database) -> None:
    chat_id = await _chat(database)
    async with database.transaction() as tx:
        account = await accounts.create_account(tx, name="x", kind="person")
        chat = await tx.get(Chat, chat_id)
        assert chat is not None
        await runs.record_run(
            tx,
            run_id="wrun_x",
            chat_id=chat_id,
            session_id=chat.session_id,
            account_id=account.id,
            message_id="m",
        )
        await runs.set_run_status(tx, run_id="wrun_x", status="cancelled")
        await runs.set_run_status(tx, run_id="wrun_x", status="completed")
        run = await runs.get_run(tx, run_id="wrun_x")
    assert run is not None and run.status == "cancelled"
