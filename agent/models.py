"""Model providers: `provider/model` ids served by an OpenAI-compatible endpoint, or offline.

With `RECOUP_MODEL_BASE_URL` set (AI Gateway, OpenRouter, vLLM, Ollama...), every id goes to that
endpoint's chat-completions API unchanged (`openai/gpt-5.4`). Without it, or for the id
`recoup/offline`, runs use the built-in offline model: a deterministic command interpreter, not an
LLM, documented in docs/agent.md.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ModelResponsePart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

OFFLINE_MODEL_ID = "recoup/offline"
_MODEL_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/\S+$")
# How much of a tool result the offline model quotes back.
_SUMMARY_CHARS = 400


class UnknownModelError(ValueError):
    """A model id that is not of the form `provider/model`."""


@dataclass(frozen=True)
class ModelEndpoint:
    """Where `provider/model` ids are served: an OpenAI-compatible base URL and its key."""

    base_url: str | None = None
    api_key: str | None = None

    @classmethod
    def from_env(cls) -> ModelEndpoint:
        """Read `RECOUP_MODEL_BASE_URL` and `RECOUP_MODEL_API_KEY` (empty means unset)."""
        return cls(
            base_url=os.environ.get("RECOUP_MODEL_BASE_URL") or None,
            api_key=os.environ.get("RECOUP_MODEL_API_KEY") or None,
        )


def build_model(model_id: str | None, settings: ModelEndpoint) -> Model:
    """Return the model serving `model_id` (the offline model when it is None or none is set up).

    Raises:
        UnknownModelError: when `model_id` is not `provider/model`.
    """
    if model_id is not None and not _MODEL_ID.match(model_id):
        raise UnknownModelError(f"model ids look like 'provider/model', not {model_id!r}")
    if model_id is None or model_id == OFFLINE_MODEL_ID or settings.base_url is None:
        return offline_model()
    provider = OpenAIProvider(base_url=settings.base_url, api_key=settings.api_key or "unused")
    return OpenAIChatModel(model_id, provider=provider)


def offline_model() -> FunctionModel:
    """The built-in offline model: `/bash`, `/read`, `/write`, `/tool` lines become tool calls."""
    return FunctionModel(
        _offline_response, stream_function=_offline_stream, model_name=OFFLINE_MODEL_ID
    )


def _tool_call_from(prompt: str) -> tuple[str, str] | str:
    """Parse a user message: a (tool name, JSON arguments) pair, or an error sentence."""
    first_line, _, rest = prompt.strip().partition("\n")
    command, _, argument = first_line.partition(" ")
    argument = argument.strip()
    if command == "/bash":
        return "bash", json.dumps({"command": (argument + "\n" + rest).strip()})
    if command == "/read":
        return "read", json.dumps({"path": argument})
    if command == "/write":
        return "write", json.dumps({"path": argument, "content": rest})
    if command == "/tool":
        name, _, arguments = (argument + "\n" + rest).strip().partition(" ")
        return name, arguments.strip() or "{}"
    return "not a command"


def _last_user_text(messages: list[ModelMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            for part in reversed(message.parts):
                if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                    return part.content
    return ""


def _summary(message: ModelRequest) -> str:
    """One line per tool result of the previous step."""
    lines = []
    for part in message.parts:
        name = getattr(part, "tool_name", None)
        if name is None:
            continue
        failed = not isinstance(part, ToolReturnPart) or part.outcome != "success"
        if isinstance(part, ToolReturnPart):
            text = part.model_response_str(wrap_if_error=False)
        else:
            text = str(getattr(part, "content", ""))
        if len(text) > _SUMMARY_CHARS:
            text = text[:_SUMMARY_CHARS] + "..."
        lines.append(f"[offline model] {name} {'failed' if failed else 'returned'}: {text}")
    return "\n".join(lines)


def _words(text: str) -> list[str]:
    """Split text into word-sized deltas (whitespace kept) so the stream is visibly incremental."""
    return re.findall(r"\S+\s*|\s+", text)


async def _offline_stream(
    messages: list[ModelMessage], info: AgentInfo
) -> AsyncIterator[str | DeltaToolCalls]:
    """Answer one step: summarise tool results, make the requested tool call, or echo."""
    last = messages[-1] if messages else None
    if isinstance(last, ModelRequest) and not any(
        isinstance(part, UserPromptPart) for part in last.parts
    ):
        for word in _words(_summary(last) or "[offline model] done."):
            yield word
        return
    prompt = _last_user_text(messages)
    parsed = _tool_call_from(prompt)
    known = {tool.name for tool in [*info.function_tools, *info.output_tools]}
    if isinstance(parsed, tuple) and parsed[0] in known:
        name, arguments = parsed
        call_id = f"offline_{sum(1 for m in messages if not isinstance(m, ModelRequest))}"
        yield {0: DeltaToolCall(name=name, json_args=arguments, tool_call_id=call_id)}
        return
    reason = f"unknown tool {parsed[0]!r}" if isinstance(parsed, tuple) else "no command"
    echo = (
        f"[offline model] {reason}. You said: {prompt.strip()[:200]!r}. "
        "This is recoup/offline, not an LLM: start a message with /bash, /read, /write or "
        "/tool <name> <json> to call a tool."
    )
    for word in _words(echo):
        yield word


async def _offline_response(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """The same answer as `_offline_stream`, in one piece (sub-agents use non-streamed requests)."""
    text, parts = "", list[ModelResponsePart]()
    async for item in _offline_stream(messages, info):
        if isinstance(item, str):
            text += item
        else:
            parts += [
                ToolCallPart(call.name or "", call.json_args, tool_call_id=call.tool_call_id or "")
                for call in item.values()
            ]
    return ModelResponse(parts=[TextPart(text)] if text else parts, model_name=OFFLINE_MODEL_ID)
