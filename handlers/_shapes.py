"""Rows shaped into the documented response bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from storage.chats import ChatRecord, ChatSummary
from storage.models import Chat, ChatMessage, Session
from storage.sessions import SessionSummary


def timestamp(value: datetime) -> str:
    """RFC 3339 UTC with milliseconds: ``2026-11-22T08:12:00.123Z``."""
    # isoformat ends "+00:00" in UTC; it is also faster than strftime, and pads years < 1000.
    return value.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _optional_timestamp(value: datetime | None) -> str | None:
    return None if value is None else timestamp(value)


def chat_json(chat: Chat | ChatRecord) -> dict[str, Any]:
    return {
        "id": chat.id,
        "sessionId": chat.session_id,
        "title": chat.title,
        "modelId": chat.model_id,
        "activeStreamId": chat.active_stream_id,
        "lastAssistantMessageAt": _optional_timestamp(chat.last_assistant_message_at),
        "createdAt": timestamp(chat.created_at),
        "updatedAt": timestamp(chat.updated_at),
    }


def chat_summary_json(summary: ChatSummary) -> dict[str, Any]:
    return {
        **chat_json(summary),
        "hasUnread": summary.has_unread,
        "isStreaming": summary.active_stream_id is not None,
    }


def chat_room_json(chat: Chat, session: Session) -> dict[str, Any]:
    return {
        "id": chat.id,
        "title": chat.title,
        "accountId": session.account_id,
        "sessionId": session.id,
        "updatedAt": timestamp(chat.updated_at),
        "artistId": session.artist_id,
    }


def session_json(session: Session) -> dict[str, Any]:
    return {
        "id": session.id,
        "title": session.title,
        "status": session.status,
        "artistId": session.artist_id,
        "createdAt": timestamp(session.created_at),
        "updatedAt": timestamp(session.updated_at),
    }


def session_summary_json(summary: SessionSummary) -> dict[str, Any]:
    return {
        **session_json(summary.session),
        "hasUnread": summary.has_unread,
        "hasStreaming": summary.has_streaming,
        "latestChatId": summary.latest_chat_id,
    }


def message_json(message: ChatMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "role": message.role,
        "parts": message.parts,
        "createdAt": timestamp(message.created_at),
    }
