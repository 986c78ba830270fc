"""Runs: ``POST /api/chat``."""

from __future__ import annotations

from typing import Any

from handlers._access import owned_session
from server.context import database
from server.errors import ApiError, Forbidden, InvalidBody, NotFound
from storage import chats, sessions


class RunsUnavailable(ApiError):
    status = 500


async def stream_chat(user: str, body: dict[str, Any]) -> Any:
    """Answer the latest user turn of a chat with a streamed agent run."""
    async with database().transaction() as tx:
        record = await owned_session(tx, session_id=body["sessionId"], account_id=user)
        chat = await chats.get_chat(tx, chat_id=body["chatId"])
        if chat is None:
            raise NotFound("Chat not found")
        if chat.session_id != record.id:
            owner = await sessions.get_session(tx, session_id=chat.session_id)
            if owner is not None and owner.account_id != user:
                raise Forbidden("You do not have access to this chat")
            raise NotFound("Chat not found in this session")
        if record.sandbox_state is None:
            raise InvalidBody("Sandbox not initialized")
    # No operation provisions a sandbox yet, so no request reaches this line.
    raise RunsUnavailable("Runs are not available on this server yet")
