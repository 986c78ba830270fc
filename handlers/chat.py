"""Runs on a chat: ``POST /api/chat``, ``GET /api/chat/{chatId}/stream``, ``POST .../stop``."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from handlers._access import owned_session
from runs import service
from runs.streams import resolve_start, stream_length
from server.context import database, settings
from server.errors import Conflict, Forbidden, InvalidBody, NotFound
from server.streaming import run_stream_response
from storage import chats, sessions
from storage.models import Chat


async def stream_chat(user: str, body: dict[str, Any]) -> Any:
    """Answer the latest user turn of a chat with a streamed, durable agent run."""
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
    try:
        run = await service.start_run(
            account_id=user,
            session=record,
            chat=chat,
            messages=body["messages"],
            context_limit=(body.get("context") or {}).get("contextLimit"),
        )
    except service.InvalidMessages as exc:
        raise InvalidBody(str(exc)) from None
    except service.SlotTaken:
        raise Conflict("A response is already streaming for this chat") from None
    return run_stream_response(run.run_id, offset=0, keep_alive_s=settings().stream_keep_alive_s)


async def _owned_chat(chat_id: str, user: str) -> Chat:
    """The chat (else 404) in a session of the caller (else 403)."""
    async with database().read() as tx:
        chat = await chats.get_chat(tx, chat_id=chat_id)
        if chat is None:
            raise NotFound("Chat not found")
        owner = await sessions.get_session(tx, session_id=chat.session_id)
        if owner is None or owner.account_id != user:
            raise Forbidden("You do not have access to this chat")
    return chat


async def resume_chat_stream(chat_id: str, user: str, start_index: int = 0) -> Any:
    """Replay the chat's run in progress from ``startIndex``, then follow it; 204 when none."""
    chat = await _owned_chat(chat_id, user)
    run = await service.live_run(chat_id=chat.id)
    if run is None:
        return Response(status_code=204)
    length = await stream_length(run.id)
    return run_stream_response(
        run.id,
        offset=resolve_start(start_index, length),
        tail_index=length - 1,
        keep_alive_s=settings().stream_keep_alive_s,
    )


async def stop_chat(chat_id: str, user: str) -> dict[str, Any]:
    """Cancel the chat's run in progress, if any."""
    chat = await _owned_chat(chat_id, user)
    return {"success": True, "stopped": await service.stop_run(chat_id=chat.id)}
