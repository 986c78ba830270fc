"""Chats of a session: creation, listing with per-account flags, updates and read markers."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Connectable
from storage.models import Chat, ChatMessage, ChatRead, Session, storable_key, utc_now


class ChatIdTaken(Exception):
    """The requested chat id already belongs to another session."""


def unread_condition(account_id: str | ColumnElement[str]) -> ColumnElement[bool]:
    """SQL truth of ``hasUnread`` for ``Chat`` rows, as the account sees them.

    Unread = an assistant message exists and the account has no read marker, or its marker is
    strictly older than the latest assistant message.
    """
    marker = (
        select(ChatRead.last_read_at)
        .where(ChatRead.chat_id == Chat.id, ChatRead.account_id == account_id)
        .scalar_subquery()
    )
    return and_(
        Chat.last_assistant_message_at.is_not(None),
        or_(marker.is_(None), Chat.last_assistant_message_at > marker),
    )


@dataclass(frozen=True, slots=True)
class ChatRecord:
    """A chat's row, as the Core statements below read it (the ORM's is :class:`Chat`)."""

    id: str
    session_id: str
    title: str
    model_id: str
    active_stream_id: str | None
    last_assistant_message_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ChatSummary(ChatRecord):
    """A chat as one account sees it in its session's list."""

    has_unread: bool


_CHATS = cast(Table, Chat.__table__)
# The columns in ChatRecord's order, so that ``ChatRecord(*row)`` matches them by name.
_CHAT_COLUMNS = [_CHATS.c[field.name] for field in fields(ChatRecord)]
# Each dialect's INSERT, for its ON CONFLICT clauses.
_INSERTS: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def _dialect_name(db: Connectable) -> str:
    bind = db.get_bind() if isinstance(db, AsyncSession) else db
    return bind.dialect.name


def _insert_for(db: Connectable) -> Any:
    return _INSERTS[_dialect_name(db)]


async def get_chat(session: AsyncSession, *, chat_id: str) -> Chat | None:
    return await session.get(Chat, chat_id) if storable_key(chat_id) else None


# Built once (per dialect), as the statements below: only their values change from call to call.
_NEW_CHAT = {
    name: insert(_CHATS).on_conflict_do_nothing(index_elements=["id"]).returning(*_CHAT_COLUMNS)
    for name, insert in _INSERTS.items()
}
_CHAT_BY_ID = select(*_CHAT_COLUMNS).where(Chat.id == bindparam("chat_id"))


async def create_chat(
    db: Connectable, *, session_id: str, chat_id: str | None, title: str, model_id: str
) -> tuple[ChatRecord, bool]:
    """Create a chat in a session, idempotent on ``chat_id`` within that session.

    Returns ``(chat, created)``. Raises :class:`ChatIdTaken` when the id is used by another
    session. A concurrent create of the same new id inserts nothing (the primary key holds) and
    then returns the winner's row, so both callers succeed and one row exists.
    """
    now = utc_now()
    new_id = chat_id or str(uuid.uuid4())
    values = {
        "id": new_id,
        "session_id": session_id,
        "title": title,
        "model_id": model_id,
        "created_at": now,
        "updated_at": now,
    }
    while True:
        created = (await db.execute(_NEW_CHAT[_dialect_name(db)], values)).first()
        if created is not None:
            return ChatRecord(*created), True
        # The id exists: the client asked again, or a concurrent create of it won.
        found = (await db.execute(_CHAT_BY_ID, {"chat_id": new_id})).first()
        if found is None:
            continue  # deleted since the insert met it (PostgreSQL): insert again
        existing = ChatRecord(*found)
        if existing.session_id != session_id:
            raise ChatIdTaken(new_id)
        return existing, False


# Built once: the statement is the same for every session and account, only its values change.
_CHAT_SUMMARIES = (
    select(*_CHAT_COLUMNS, unread_condition(bindparam("account_id")))
    .where(Chat.session_id == bindparam("session_id"))
    .order_by(Chat.created_at, Chat.id)
)


async def list_chat_summaries(
    db: Connectable, *, session_id: str, account_id: str
) -> list[ChatSummary]:
    """The session's chats, oldest first (ties by id), with the account's ``hasUnread``."""
    result = await db.execute(_CHAT_SUMMARIES, {"session_id": session_id, "account_id": account_id})
    rows: Sequence[Sequence[Any]] = result.all()  # fetched at once: cheaper than row by row
    return [ChatSummary(*row) for row in rows]


async def count_chats(session: AsyncSession, *, session_id: str) -> int:
    count = await session.scalar(
        select(func.count()).select_from(Chat).where(Chat.session_id == session_id)
    )
    return int(count or 0)


def _changes(title: str | None, model_id: str | None) -> dict[str, Any]:
    """What an update of a chat writes: the fields given, and always a new ``updated_at``."""
    changes: dict[str, Any] = {"updated_at": utc_now()}
    if title is not None:
        changes["title"] = title
    if model_id is not None:
        changes["model_id"] = model_id
    return changes


async def update_chat(
    session: AsyncSession, *, chat: Chat, title: str | None = None, model_id: str | None = None
) -> Chat:
    """Update a chat loaded in ``session`` (see :func:`update_owned_chat`)."""
    for name, value in _changes(title, model_id).items():
        setattr(chat, name, value)
    await session.flush()
    return chat


# The SET clause is made of the parameters given: ``_changes`` decides it.
_UPDATE_OWNED_CHAT = (
    update(_CHATS)
    .where(
        Chat.id == bindparam("chat_id"),
        Chat.session_id == bindparam("in_session"),
        exists().where(Session.id == Chat.session_id, Session.account_id == bindparam("owner_id")),
    )
    .returning(*_CHAT_COLUMNS)
)


async def update_owned_chat(
    db: Connectable,
    *,
    session_id: str,
    account_id: str,
    chat_id: str,
    title: str | None = None,
    model_id: str | None = None,
) -> ChatRecord | None:
    """Set the given fields of a chat of the account's session, in one statement.

    None, and nothing changed, when the session is not the account's or has no such chat.
    """
    if not storable_key(session_id) or not storable_key(chat_id):
        return None
    parameters = {"chat_id": chat_id, "in_session": session_id, "owner_id": account_id}
    row = (await db.execute(_UPDATE_OWNED_CHAT, parameters | _changes(title, model_id))).first()
    return None if row is None else ChatRecord(*row)


async def delete_chat(session: AsyncSession, *, chat: Chat) -> None:
    await session.execute(delete(ChatMessage).where(ChatMessage.chat_id == chat.id))
    await session.execute(delete(ChatRead).where(ChatRead.chat_id == chat.id))
    await session.delete(chat)
    await session.flush()


async def mark_chat_read(
    session: AsyncSession, *, chat_id: str, account_id: str, at: datetime | None = None
) -> None:
    """Upsert the account's read marker for the chat to ``at`` (default now)."""
    read_at = at or utc_now()
    insert = _insert_for(session)
    statement = insert(ChatRead).values(
        chat_id=chat_id, account_id=account_id, last_read_at=read_at
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[ChatRead.chat_id, ChatRead.account_id],
            set_={"last_read_at": read_at},
        )
    )


async def list_messages(session: AsyncSession, *, chat_id: str) -> list[ChatMessage]:
    rows = await session.scalars(
        select(ChatMessage)
        .where(ChatMessage.chat_id == chat_id)
        .order_by(ChatMessage.created_at, ChatMessage.id)
    )
    return list(rows)
