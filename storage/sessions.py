"""Sessions: a sandbox and its chats, owned by one account."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.chats import ChatIdTaken, unread_condition
from storage.db import Connectable
from storage.models import Account, Chat, Session, storable_key, utc_now

NEW_CHAT_TITLE = "New chat"


async def create_session_with_chat(
    session: AsyncSession,
    *,
    account_id: str,
    title: str,
    artist_id: str | None,
    model_id: str,
    chat_id: str | None = None,
    chat_title: str = NEW_CHAT_TITLE,
    session_id: str | None = None,
    sandbox_state: dict[str, Any] | None = None,
) -> tuple[Session, Chat]:
    """Create a session and its first chat in the caller's transaction."""
    now = utc_now()
    record = Session(
        id=session_id or str(uuid.uuid4()),
        sandbox_state=sandbox_state,
        account_id=account_id,
        artist_id=artist_id,
        title=title,
        status="running",
        created_at=now,
        updated_at=now,
    )
    chat = Chat(
        id=chat_id or str(uuid.uuid4()),
        session_id=record.id,
        title=chat_title,
        model_id=model_id,
        created_at=now,
        updated_at=now,
    )
    session.add(record)
    await session.flush()
    session.add(chat)
    await session.flush()
    return record, chat


async def get_session(
    session: AsyncSession, *, session_id: str, for_update: bool = False
) -> Session | None:
    """The session; ``for_update`` locks its row (PostgreSQL) until the transaction ends."""
    if not storable_key(session_id):
        return None
    return await session.get(Session, session_id, with_for_update=for_update or None)


@dataclass(frozen=True, slots=True)
class SessionAccess:
    """Who owns a session, and the model the account asking prefers."""

    account_id: str
    default_model_id: str | None


_SESSION_ACCESS = select(
    Session.account_id,
    select(Account.default_model_id).where(Account.id == bindparam("account_id")).scalar_subquery(),
).where(Session.id == bindparam("session_id"))


async def session_access(
    db: Connectable, *, session_id: str, account_id: str
) -> SessionAccess | None:
    """The session's owner and the account's preferred model (one statement); None: no session."""
    if not storable_key(session_id):
        return None
    row = (
        await db.execute(_SESSION_ACCESS, {"session_id": session_id, "account_id": account_id})
    ).first()
    return None if row is None else SessionAccess(*row)


@dataclass(frozen=True)
class SessionSummary:
    session: Session
    has_unread: bool
    has_streaming: bool
    latest_chat_id: str | None


async def list_sessions(
    session: AsyncSession, *, account_id: str, limit: int, offset: int
) -> list[SessionSummary]:
    """The account's sessions, newest first, with per-session unread and streaming flags."""
    chats_of = Chat.session_id == Session.id
    unread = exists().where(chats_of, unread_condition(account_id))
    streaming = exists().where(chats_of, Chat.active_stream_id.is_not(None))
    latest = (
        select(Chat.id)
        .where(chats_of)
        .order_by(Chat.updated_at.desc(), Chat.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(Session, unread, streaming, latest)
        .where(Session.account_id == account_id)
        .order_by(Session.created_at.desc(), Session.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [SessionSummary(row[0], bool(row[1]), bool(row[2]), row[3]) for row in rows]


async def set_sandbox_state(
    session: AsyncSession, *, record: Session, sandbox_state: dict[str, Any]
) -> Session:
    """Record the session's provisioned sandbox."""
    record.sandbox_state = sandbox_state
    record.updated_at = utc_now()
    await session.flush()
    return record


async def update_session(
    session: AsyncSession, *, record: Session, title: str | None, status: str | None
) -> Session:
    if title is not None:
        record.title = title
    if status is not None:
        record.status = status
    record.updated_at = utc_now()
    await session.flush()
    return record


async def _room_of(
    session: AsyncSession, *, chat_id: str, account_id: str
) -> tuple[Session, Chat] | None:
    row = (
        await session.execute(
            select(Session, Chat)
            .join(Chat, Chat.session_id == Session.id)
            .where(Chat.id == chat_id)
            .execution_options(populate_existing=True)
        )
    ).first()
    if row is None:
        return None
    if row[0].account_id != account_id:
        raise ChatIdTaken(chat_id)
    return row[0], row[1]


async def create_chat_room(
    session: AsyncSession,
    *,
    account_id: str,
    artist_id: str | None,
    chat_id: str | None,
    title: str,
    model_id: str,
) -> tuple[Session, Chat]:
    """A new session holding one chat titled ``title``; idempotent on ``chat_id``.

    An existing ``chat_id`` of the same account returns that chat unchanged; one of another
    account raises :class:`ChatIdTaken`. Never overwrites a chat.
    """
    if chat_id is not None:
        existing = await _room_of(session, chat_id=chat_id, account_id=account_id)
        if existing is not None:
            return existing
    try:
        async with session.begin_nested():
            return await create_session_with_chat(
                session,
                account_id=account_id,
                title=title,
                artist_id=artist_id,
                model_id=model_id,
                chat_id=chat_id,
                chat_title=title,
            )
    except IntegrityError:
        # A concurrent request created the same chat id first.
        if chat_id is None:
            raise
        existing = await _room_of(session, chat_id=chat_id, account_id=account_id)
        if existing is None:
            raise
        return existing
