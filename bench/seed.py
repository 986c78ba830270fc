"""The benchmark's data, written straight through ``storage`` (no HTTP) for speed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from storage import accounts, chats, sessions
from storage.db import Database
from storage.models import Chat, utc_now

LIST_CHATS = 10
MODEL = "recoup/offline"


@dataclass(frozen=True)
class Fixture:
    """What the load needs: a key and the sessions (and chat) each operation works on."""

    api_key: str
    account_id: str
    list_session: str  # holds exactly LIST_CHATS chats
    create_session: str  # POSTs add chats here, so the listed session stays at LIST_CHATS
    update_session: str
    update_chat: str


def database_url(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{(data_dir / 'recoup.db').resolve()}"


async def _new_session(tx: AsyncSession, *, account_id: str, title: str) -> tuple[str, str]:
    record, chat = await sessions.create_session_with_chat(
        tx, account_id=account_id, title=title, artist_id=None, model_id=MODEL
    )
    return record.id, chat.id


async def seed(data_dir: Path, url: str | None = None) -> Fixture:
    """Migrate a fresh database and write one account's benchmark sessions.

    The database is an SQLite file in ``data_dir`` unless ``url`` names another (PostgreSQL).
    """
    data_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before any load
    database = Database(url or database_url(data_dir))
    try:
        await database.upgrade()
        async with database.transaction() as tx:
            account = await accounts.create_account(tx, name="bench", kind="person")
            _row, key = await accounts.create_api_key(tx, account_id=account.id, name="bench")
            list_session, _first = await _new_session(tx, account_id=account.id, title="list")
            for _ in range(LIST_CHATS - 1):
                await chats.create_chat(
                    tx, session_id=list_session, chat_id=None, title="New chat", model_id=MODEL
                )
            create_session, _first = await _new_session(tx, account_id=account.id, title="create")
            update_session, update_chat = await _new_session(
                tx, account_id=account.id, title="update"
            )
    finally:
        await database.dispose()
    return Fixture(key, account.id, list_session, create_session, update_session, update_chat)


async def grown_session(data_dir: Path, *, account_id: str, chat_count: int) -> str:
    """A session of ``chat_count`` chats, inserted in bulk (distinct, ascending createdAt)."""
    database = Database(database_url(data_dir))
    try:
        async with database.transaction() as tx:
            session_id, _first = await _new_session(
                tx, account_id=account_id, title=f"{chat_count} chats"
            )
            start = utc_now()
            tx.add_all(
                Chat(
                    id=str(uuid.uuid4()),
                    session_id=session_id,
                    title=f"Chat {n}",
                    model_id=MODEL,
                    created_at=start + timedelta(milliseconds=n + 1),
                    updated_at=start + timedelta(milliseconds=n + 1),
                )
                for n in range(chat_count - 1)
            )
    finally:
        await database.dispose()
    return session_id


async def list_query_plan(data_dir: Path, *, account_id: str, session_id: str) -> list[str]:
    """SQLite's ``EXPLAIN QUERY PLAN`` of the exact statement the chat list runs."""
    database = Database(database_url(data_dir))
    captured: list[tuple[str, object]] = []

    def capture(_conn: object, _cursor: object, statement: str, params: object, *_: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, params))

    event.listen(database.engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with database.transaction() as tx:
            await chats.list_chat_summaries(tx, session_id=session_id, account_id=account_id)
            statement, params = captured[-1]
            result = await tx.connection()
            plan = await result.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {statement}",
                params,  # type: ignore[arg-type]
            )
            return [row[-1] for row in plan]
    finally:
        await database.dispose()
