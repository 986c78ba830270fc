"""Chats of a session: creation, listing with per-account flags, updates and read markers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Chat, ChatMessage, ChatRead, storable_key, utc_now


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


async def get_chat(session: AsyncSession, *, chat_id: str) -> Chat | None:
    return await session.get(Chat, chat_id) if storable_key(chat_id) else None


async def create_chat(
    session: AsyncSession, *, session_id: str, chat_id: str | None, title: str, model_id: str
) -> tuple[Chat, bool]:
    """Create a chat in a session, idempotent on ``chat_id`` within that session.

    Returns ``(chat, created)``. Raises :class:`ChatIdTaken` when the id is used by another
    session. A concurrent create of the same new id loses on the primary key and then returns
    the winner's row, so both callers succeed and one row exists.
    """
    if chat_id is not None:
        existing = await session.get(Chat, chat_id)
        if existing is not None:
            return _same_session(existing, session_id), False
    now = utc_now()
    chat = Chat(
        id=chat_id or str(uuid.uuid4()),
        session_id=session_id,
        title=title,
        model_id=model_id,
        created_at=now,
        updated_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(chat)
    except IntegrityError:
        winner = await session.get(Chat, chat.id, populate_existing=True)
        if winner is None:
            raise
        return _same_session(winner, session_id), False
    return chat, True


def _same_session(chat: Chat, session_id: str) -> Chat:
    if chat.session_id != session_id:
        raise ChatIdTaken(chat.id)
    return chat


@dataclass(frozen=True)
class ChatSummary:
    chat: Chat
    has_unread: bool


# Built once: the statement is the same for every session and account, only its values change.
_CHAT_SUMMARIES = (
    select(Chat, unread_condition(bindparam("account_id")))
    .where(Chat.session_id == bindparam("session_id"))
    .order_by(Chat.created_at, Chat.id)
)


async def list_chat_summaries(
    session: AsyncSession, *, session_id: str, account_id: str
) -> list[ChatSummary]:
    """The session's chats, oldest first (ties by id), with the account's ``hasUnread``."""
    rows = await session.execute(
        _CHAT_SUMMARIES, {"session_id": session_id, "account_id": account_id}
    )
    return [ChatSummary(chat, bool(unread)) for chat, unread in rows]


async def count_chats(session: AsyncSession, *, session_id: str) -> int:
    count = await session.scalar(
        select(func.count()).select_from(Chat).where(Chat.session_id == session_id)
    )
    return int(count or 0)


async def update_chat(
    session: AsyncSession, *, chat: Chat, title: str | None = None, model_id: str | None = None
) -> Chat:
    if title is not None:
        chat.title = title
    if model_id is not None:
        chat.model_id = model_id
    chat.updated_at = utc_now()
    await session.flush()
    return chat


async def delete_chat(session: AsyncSession, *, chat: Chat) -> None:
    await session.execute(delete(ChatMessage).where(ChatMessage.chat_id == chat.id))
    await session.execute(delete(ChatRead).where(ChatRead.chat_id == chat.id))
    await session.delete(chat)
    await session.flush()


def _insert_for(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


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
