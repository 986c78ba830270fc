"""Chats of a session: ``/api/sessions/{sessionId}/chats[/{chatId}[/read]]``."""

from __future__ import annotations

from typing import Any

from handlers._access import authorize_session, chat_in_session, found_chat, owned_session
from handlers._shapes import chat_json, chat_summary_json, message_json
from server.context import database
from server.errors import Conflict, InvalidBody
from server.validation import trim
from storage import chats
from storage.sessions import NEW_CHAT_TITLE

# The three operations below are the hot ones: they run Core statements on a bare connection,
# at about half the CPU of the ORM's loading, tracking and flushing (bench/inprocess.py).


async def create_session_chat(
    session_id: str, user: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Create a chat, or return the one this session already has under the requested id."""
    requested_id = (body or {}).get("id")
    async with database().connection() as db:
        model = await authorize_session(db, session_id=session_id, account_id=user)
        try:
            chat, _created = await chats.create_chat(
                db,
                session_id=session_id,
                chat_id=requested_id,
                title=NEW_CHAT_TITLE,
                model_id=model,
            )
        except chats.ChatIdTaken:
            raise Conflict("Chat ID conflict") from None
    return {"chat": chat_json(chat)}


async def list_session_chats(session_id: str, user: str) -> dict[str, Any]:
    """Every chat of the session, oldest first, with the caller's unread flags."""
    async with database().connection(read_only=True) as db:
        model = await authorize_session(db, session_id=session_id, account_id=user)
        summaries = await chats.list_chat_summaries(db, session_id=session_id, account_id=user)
    return {"chats": [chat_summary_json(s) for s in summaries], "defaultModelId": model}


async def update_session_chat(
    session_id: str, chat_id: str, user: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Set a chat's title and/or model id, both trimmed."""
    title, model_id = body.get("title"), body.get("modelId")
    async with database().connection() as db:
        updated = await chats.update_owned_chat(
            db,
            session_id=session_id,
            account_id=user,
            chat_id=chat_id,
            title=trim(title) if title is not None else None,
            model_id=trim(model_id) if model_id is not None else None,
        )
        if updated is None:
            # Nothing changed: the session is missing (404) or another account's (403), or else
            # the chat is not one of its chats (404, below).
            await authorize_session(db, session_id=session_id, account_id=user)
    return {"chat": chat_json(found_chat(updated))}


async def get_session_chat(session_id: str, chat_id: str, user: str) -> dict[str, Any]:
    async with database().read() as tx:
        record = await owned_session(tx, session_id=session_id, account_id=user)
        chat = await chat_in_session(tx, session=record, chat_id=chat_id)
        messages = await chats.list_messages(tx, chat_id=chat.id)
    return {
        "chat": chat_json(chat),
        "isStreaming": chat.active_stream_id is not None,
        "messages": [message_json(message) for message in messages],
    }


async def delete_session_chat(session_id: str, chat_id: str, user: str) -> dict[str, Any]:
    """Delete a chat and its messages; never the last chat of a session or a streaming one."""
    async with database().transaction() as tx:
        # Locked, so two deletes in a two-chat session cannot both see a second chat.
        record = await owned_session(tx, session_id=session_id, account_id=user, for_update=True)
        chat = await chat_in_session(tx, session=record, chat_id=chat_id)
        if await chats.count_chats(tx, session_id=record.id) <= 1:
            raise InvalidBody("Cannot delete the only chat of a session")
        if chat.active_stream_id is not None:
            raise Conflict("A response is streaming in this chat")
        await chats.delete_chat(tx, chat=chat)
    return {"success": True}


async def mark_session_chat_read(session_id: str, chat_id: str, user: str) -> dict[str, Any]:
    """Record that the caller has read the chat up to now: this clears ``hasUnread``."""
    async with database().transaction() as tx:
        record = await owned_session(tx, session_id=session_id, account_id=user)
        chat = await chat_in_session(tx, session=record, chat_id=chat_id)
        await chats.mark_chat_read(tx, chat_id=chat.id, account_id=user)
    return {"success": True}
