"""Chat rooms: ``/api/chats``."""

from __future__ import annotations

from typing import Any

from handlers._access import acting_account, default_model, usable_artist
from handlers._shapes import chat_room_json
from server.context import database
from server.errors import Forbidden, InvalidBody, NotFound
from server.validation import trim
from storage import chats, sessions
from storage.chats import ChatIdTaken
from storage.sessions import NEW_CHAT_TITLE


async def create_chat(user: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Create a session and a chat room in it, for the caller or a permitted ``accountId``."""
    body = body or {}
    title = trim(body.get("topic") or "") or NEW_CHAT_TITLE
    async with database().transaction() as tx:
        owner = await acting_account(tx, caller=user, account_id=body.get("accountId"))
        artist_id = await usable_artist(tx, account_id=owner, artist_id=body.get("artistId"))
        try:
            record, chat = await sessions.create_chat_room(
                tx,
                account_id=owner,
                artist_id=artist_id,
                chat_id=body.get("chatId"),
                title=title,
                model_id=await default_model(tx, account_id=owner),
            )
        except ChatIdTaken:
            raise InvalidBody("chatId is already in use") from None
    return {"status": "success", "chat": chat_room_json(chat, record)}


async def update_chat(user: str, body: dict[str, Any]) -> dict[str, Any]:
    """Rename a chat room the caller owns."""
    async with database().transaction() as tx:
        chat = await chats.get_chat(tx, chat_id=body["chatId"])
        if chat is None:
            raise NotFound("Chat not found")
        record = await sessions.get_session(tx, session_id=chat.session_id)
        if record is None or record.account_id != user:
            raise Forbidden("You do not have access to this chat")
        await chats.update_chat(tx, chat=chat, title=trim(body["topic"]))
    return {"status": "success", "chat": chat_room_json(chat, record)}
