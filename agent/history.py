"""Reading a chat's history (AI SDK UIMessages, or the seed's `{role, content}`) for the model."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic_ai.messages import ModelMessage
from pydantic_ai.ui.vercel_ai import VercelAIAdapter
from pydantic_ai.ui.vercel_ai.request_types import UIMessage


def normalize_ui_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """Return `message` as a UIMessage with `parts` (a legacy `content` string becomes text)."""
    normalized = dict(message)
    if "parts" not in normalized:
        content = normalized.pop("content", "")
        text = content if isinstance(content, str) else ""
        normalized["parts"] = [{"type": "text", "text": text}]
    else:
        normalized.pop("content", None)
    normalized.setdefault("id", f"msg_{uuid.uuid4().hex}")
    return normalized


def to_model_messages(messages: Sequence[Mapping[str, Any]]) -> list[ModelMessage]:
    """Convert a chat's UIMessages into pydantic-ai's message history."""
    ui_messages = [UIMessage.model_validate(normalize_ui_message(m)) for m in messages]
    return VercelAIAdapter.load_messages(ui_messages)


def response_message_id(messages: Sequence[Mapping[str, Any]]) -> str:
    """The id of the message a run produces: a continued assistant message keeps its own."""
    if messages and messages[-1].get("role") == "assistant" and messages[-1].get("id"):
        return str(messages[-1]["id"])
    return f"msg_{uuid.uuid4().hex}"
