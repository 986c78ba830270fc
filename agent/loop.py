"""The agent loop: model call, tool calls, model call... streamed as AI SDK UI message chunks."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.exceptions import UsageLimitExceeded
from pydantic_ai.models import Model
from pydantic_ai.usage import UsageLimits

from agent.context import ToolContext
from agent.history import to_model_messages
from agent.stream import Chunk, UIChunkEncoder
from agent.tools import OUTPUT_TYPE, build_toolset

logger = logging.getLogger(__name__)

DEFAULT_MAX_STEPS = 20
INSTRUCTIONS = """\
You are Recoup's coding agent. You work in a git workspace (the current directory of `bash`; file
tools take paths relative to it) inside a sandbox: only the workspace is writable and the network
may be off. Use the tools to inspect and change files, keep a todo list for multi-step work, hand
self-contained investigations to `task`, and call `ask_user_question` when you need the user to
decide something. Finish with a short answer saying what you did."""


def max_steps_from_env() -> int:
    """`RECOUP_MAX_STEPS` (model calls per run), 20 when unset."""
    return int(os.environ.get("RECOUP_MAX_STEPS") or DEFAULT_MAX_STEPS)


def build_agent(model: Model, *, instructions: str = INSTRUCTIONS) -> Agent[ToolContext, Any]:
    """The run's agent: all tools, and output that is text or questions for the user."""
    return Agent(
        model,
        deps_type=ToolContext,
        output_type=OUTPUT_TYPE,
        toolsets=[build_toolset()],
        instructions=instructions,
    )


async def run_agent(
    *,
    messages: Sequence[Mapping[str, Any]],
    model: Model,
    context: ToolContext,
    message_id: str,
    max_steps: int | None = None,
    instructions: str = INSTRUCTIONS,
) -> AsyncIterator[Chunk]:
    """Run the agent on a chat's history and yield UI message chunks, `start` to `finish`.

    `messages` are the chat's UIMessages, the last one being the user's new message. Failures of
    the model or the loop end the stream with an `error` chunk then `finish`; failures of a tool
    are `tool-output-error` chunks and the model carries on. Fold the chunks with
    `agent.stream.fold_chunks` to get the assistant message (e.g. at each `finish-step`).
    """
    encoder = UIChunkEncoder(message_id=message_id)
    steps = max_steps or max_steps_from_env()
    for chunk in encoder.start():
        yield chunk
    try:
        history = to_model_messages(messages)
        agent = build_agent(model, instructions=instructions)
        async with agent.run_stream_events(
            None,
            message_history=history,
            deps=context,
            usage_limits=UsageLimits(request_limit=steps),
        ) as events:
            async for event in events:
                for chunk in encoder.encode(event):
                    yield chunk
    except UsageLimitExceeded:
        for chunk in encoder.fail(f"The run stopped after {steps} steps (RECOUP_MAX_STEPS)."):
            yield chunk
        return
    except Exception as exc:
        logger.exception("agent run failed")
        for chunk in encoder.fail(str(exc) or type(exc).__name__):
            yield chunk
        return
    for chunk in encoder.finish():
        yield chunk
