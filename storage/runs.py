"""Runs: a chat's run slot (compare-and-set), run records, and the messages a run writes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.chats import _insert_for
from storage.models import Chat, ChatMessage, Run, storable_key, utc_now
from storage.sessions import NEW_CHAT_TITLE

FINISHED = ("completed", "failed", "cancelled")
TITLE_CHARS = 80


async def claim_run_slot(session: AsyncSession, *, chat_id: str, run_id: str) -> bool:
    """Take the chat's run slot for ``run_id``: one compare-and-set, true when it was free."""
    result = await session.execute(
        update(Chat)
        .where(Chat.id == chat_id, Chat.active_stream_id.is_(None))
        .values(active_stream_id=run_id)
        .execution_options(synchronize_session=False)
    )
    return _one_row(result)


async def release_run_slot(session: AsyncSession, *, chat_id: str, run_id: str) -> bool:
    """Free the chat's run slot if ``run_id`` still holds it (compare-and-set run -> null)."""
    result = await session.execute(
        update(Chat)
        .where(Chat.id == chat_id, Chat.active_stream_id == run_id)
        .values(active_stream_id=None)
        .execution_options(synchronize_session=False)
    )
    return _one_row(result)


def _one_row(result: Any) -> bool:
    return int(getattr(result, "rowcount", 0) or 0) == 1


async def record_run(
    session: AsyncSession,
    *,
    run_id: str,
    chat_id: str,
    session_id: str,
    account_id: str,
    message_id: str,
) -> Run:
    """A new run, ``queued`` until its workflow starts."""
    now = utc_now()
    run = Run(
        id=run_id,
        chat_id=chat_id,
        session_id=session_id,
        account_id=account_id,
        message_id=message_id,
        status="queued",
        created_at=now,
        updated_at=now,
    )
    session.add(run)
    await session.flush()
    return run


async def get_run(session: AsyncSession, *, run_id: str) -> Run | None:
    if not storable_key(run_id):
        return None
    return await session.get(Run, run_id, populate_existing=True)


async def set_run_status(
    session: AsyncSession, *, run_id: str, status: str, error: str | None = None
) -> None:
    """Move a run to ``status``; a finished run stays finished."""
    await session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status.not_in(FINISHED))
        .values(status=status, error=error, updated_at=utc_now())
        .execution_options(synchronize_session=False)
    )


async def save_user_message(
    session: AsyncSession, *, chat_id: str, message: dict[str, Any]
) -> None:
    """Store the user's message once (idempotent on its id)."""
    insert = _insert_for(session)
    await session.execute(
        insert(ChatMessage)
        .values(
            chat_id=chat_id,
            id=message["id"],
            role=message.get("role", "user"),
            parts=message["parts"],
            created_at=utc_now(),
        )
        .on_conflict_do_nothing(index_elements=[ChatMessage.chat_id, ChatMessage.id])
    )


async def name_untitled_chat(session: AsyncSession, *, chat_id: str, text: str) -> None:
    """A chat still titled ``New chat`` takes the first 80 characters of ``text``."""
    title = text.strip()[:TITLE_CHARS]
    if title:
        await session.execute(
            update(Chat)
            .where(Chat.id == chat_id, Chat.title == NEW_CHAT_TITLE)
            .values(title=title, updated_at=utc_now())
            .execution_options(synchronize_session=False)
        )


async def save_assistant_message(
    session: AsyncSession, *, chat_id: str, message: dict[str, Any]
) -> None:
    """Upsert the run's assistant message and mark the chat as having a new answer."""
    now = utc_now()
    insert = _insert_for(session)
    statement = insert(ChatMessage).values(
        chat_id=chat_id, id=message["id"], role="assistant", parts=message["parts"], created_at=now
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[ChatMessage.chat_id, ChatMessage.id],
            set_={"parts": message["parts"]},
        )
    )
    await session.execute(
        update(Chat)
        .where(Chat.id == chat_id)
        .values(last_assistant_message_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )


async def run_slot_holder(session: AsyncSession, *, chat_id: str) -> str | None:
    """The run id holding the chat's slot, read fresh from the database."""
    return await session.scalar(select(Chat.active_stream_id).where(Chat.id == chat_id))
