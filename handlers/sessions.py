"""Sessions: ``/api/sessions`` and ``/api/sessions/{sessionId}``."""

from __future__ import annotations

from typing import Any

from handlers._access import default_model, owned_session, usable_artist
from handlers._shapes import chat_json, session_json, session_summary_json
from server.context import database
from server.validation import trim
from storage import sessions

DEFAULT_SESSION_TITLE = "New session"


async def create_session(user: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Create a session and its first chat, `New chat`, in one transaction."""
    body = body or {}
    async with database().transaction() as tx:
        artist_id = await usable_artist(tx, account_id=user, artist_id=body.get("artistId"))
        record, chat = await sessions.create_session_with_chat(
            tx,
            account_id=user,
            title=trim(body.get("title") or DEFAULT_SESSION_TITLE),
            artist_id=artist_id,
            model_id=await default_model(tx, account_id=user),
        )
    return {"session": session_json(record), "chat": chat_json(chat)}


async def list_sessions(user: str, limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """The caller's sessions, newest first; ``nextOffset`` is null on the last page."""
    async with database().read() as tx:
        page = await sessions.list_sessions(tx, account_id=user, limit=limit + 1, offset=offset)
    more = len(page) > limit
    return {
        "sessions": [session_summary_json(summary) for summary in page[:limit]],
        "nextOffset": offset + limit if more else None,
    }


async def get_session(session_id: str, user: str) -> dict[str, Any]:
    async with database().read() as tx:
        record = await owned_session(tx, session_id=session_id, account_id=user)
    return {"session": session_json(record)}


async def update_session(session_id: str, user: str, body: dict[str, Any]) -> dict[str, Any]:
    """Rename a session (trimmed) or set its status."""
    title = body.get("title")
    async with database().transaction() as tx:
        record = await owned_session(tx, session_id=session_id, account_id=user)
        await sessions.update_session(
            tx,
            record=record,
            title=trim(title) if title is not None else None,
            status=body.get("status"),
        )
    return {"session": session_json(record)}
