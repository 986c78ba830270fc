"""A run as a DBOS workflow: each model request and each tool call is a recorded step.

The workflow drives the ordinary pydantic-ai agent (`agent.loop.build_agent`) with two wrappers:
the model's streamed request runs in a step that encodes the model's events as UI chunks and
appends them to the run's durable stream as they come; each tool call runs in a step. Tool
events are encoded in workflow code, where DBOS records each stream write, so a replay does not
write them twice.

A step's recorded result carries the encoder's state and the chunks the step wrote, so after a
crash the workflow rebuilds the exact encoder state and chunk list of the finished steps. A step
interrupted by the crash runs again and writes its chunks again: the client sees the interrupted
attempt's parts left open (valid for the AI SDK client), and the saved assistant message, folded
from the recorded chunks only, shows each step once.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbos import DBOS
from pydantic_ai import Agent, RunContext
from pydantic_ai.exceptions import UsageLimitExceeded
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import (
    CompletedStreamedResponse,
    Model,
    ModelRequestParameters,
    StreamedResponse,
)
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.toolsets import WrapperToolset
from pydantic_ai.toolsets.abstract import ToolsetTool
from pydantic_ai.usage import UsageLimits

from agent.context import ToolContext
from agent.history import to_model_messages
from agent.loop import build_agent, max_steps_from_env
from agent.stream import Chunk, UIChunkEncoder, fold_chunks
from agent.todos import JsonFileTodoStore
from agent.tools import build_toolset
from runs import runtime, wakeups
from runs.models import resolve_model
from storage import runs as run_store

logger = logging.getLogger("recoup_api.runs")

STREAM_KEY = "chunks"


class StepFailed(Exception):
    """A model step failed: its message, and the encoder and chunks of what it streamed.

    Built only of picklable parts, so that DBOS can record it and raise it again on replay.
    """

    def __init__(self, message: str, encoder: UIChunkEncoder, chunks: list[Chunk]) -> None:
        super().__init__(message, encoder, chunks)
        self.message, self.encoder, self.chunks = message, encoder, chunks

    def __str__(self) -> str:
        return self.message


@dataclass
class _RunState:
    """The run's encoder and every chunk the recorded steps produced, in stream order."""

    encoder: UIChunkEncoder
    chunks: list[Chunk] = field(default_factory=list)


def _in_workflow_code() -> bool:
    return DBOS.workflow_id is not None and DBOS.step_id is None


async def _append(chunks: list[Chunk]) -> None:
    for chunk in chunks:
        await DBOS.write_stream_async(STREAM_KEY, chunk)
        # The run's reader in this process reads it now, not at its next poll (SQLite).
        wakeups.announce(DBOS.workflow_id or "")


@DBOS.step(name="recoup.model_request")
async def _model_request(
    model: Model,
    encoder: UIChunkEncoder,
    messages: list[ModelMessage],
    model_settings: ModelSettings | None,
    parameters: ModelRequestParameters,
    run_context: RunContext[Any] | None,
) -> tuple[ModelResponse, UIChunkEncoder, list[Chunk]]:
    """One model call, streamed live into the run's stream."""
    encoder = copy.deepcopy(encoder)
    written: list[Chunk] = []
    try:
        async with model.request_stream(
            messages, model_settings, parameters, run_context
        ) as stream:
            async for event in stream:
                chunks = encoder.encode(event)
                await _append(chunks)
                written += chunks
            response = stream.get()
    except Exception as exc:
        logger.info("model request failed: %r", exc)
        raise StepFailed(str(exc) or type(exc).__name__, encoder, written) from None
    return response, encoder, written


@DBOS.step(name="recoup.model_request_whole")
async def _whole_model_request(
    model: Model,
    messages: list[ModelMessage],
    model_settings: ModelSettings | None,
    parameters: ModelRequestParameters,
) -> ModelResponse:
    """One model call answered in one piece (nothing to stream)."""
    return await model.request(messages, model_settings, parameters)


@DBOS.step(name="recoup.tool_call")
async def _tool_call(
    toolset: Any, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: Any
) -> Any:
    return await toolset.call_tool(name, tool_args, ctx, tool)


class _StepModel(WrapperModel):
    """The chat's model, its streamed requests run as steps when called from the workflow."""

    def __init__(self, wrapped: Model, state: _RunState) -> None:
        super().__init__(wrapped)
        self._state = state

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        if not _in_workflow_code():
            return await self.wrapped.request(messages, model_settings, model_request_parameters)
        return await _whole_model_request(
            self.wrapped, messages, model_settings, model_request_parameters
        )

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncIterator[StreamedResponse]:
        if not _in_workflow_code():
            # A sub-agent inside a tool step: the enclosing step is the durable unit.
            async with self.wrapped.request_stream(
                messages, model_settings, model_request_parameters, run_context
            ) as stream:
                yield stream
            return
        response, encoder, written = await _model_request(
            self.wrapped,
            self._state.encoder,
            messages,
            model_settings,
            model_request_parameters,
            run_context,
        )
        self._state.encoder = encoder
        self._state.chunks += written
        yield CompletedStreamedResponse(response, model_request_parameters=model_request_parameters)


@dataclass
class _StepToolset(WrapperToolset[ToolContext]):
    """The run's tools, each call a step when made from the workflow."""

    async def call_tool(
        self,
        name: str,
        tool_args: dict[str, Any],
        ctx: RunContext[ToolContext],
        tool: ToolsetTool[ToolContext],
    ) -> Any:
        if not _in_workflow_code():
            return await super().call_tool(name, tool_args, ctx, tool)
        return await _tool_call(self.wrapped, name, tool_args, ctx, tool)


@DBOS.step(name="recoup.mark_running")
async def _mark_running(run_id: str) -> None:
    async with runtime.database().transaction() as tx:
        await run_store.set_run_status(tx, run_id=run_id, status="running")


@DBOS.step(name="recoup.save_message")
async def _save_message(chat_id: str, message: dict[str, Any]) -> None:
    async with runtime.database().transaction() as tx:
        await run_store.save_assistant_message(tx, chat_id=chat_id, message=message)


@DBOS.step(name="recoup.finish_run")
async def _finish_run(run_id: str, chat_id: str, status: str, error: str | None) -> None:
    async with runtime.database().transaction() as tx:
        await run_store.set_run_status(tx, run_id=run_id, status=status, error=error)
        await run_store.release_run_slot(tx, chat_id=chat_id, run_id=run_id)


async def _emit(state: _RunState, chunks: list[Chunk]) -> None:
    await _append(chunks)
    state.chunks += chunks


@DBOS.workflow(name="recoup.chat_run")
async def chat_run(request: dict[str, Any]) -> str:
    """Answer a chat's latest turn; returns the run's final status.

    ``request``: ``runId``, ``chatId``, ``sessionId``, ``messageId``, ``modelId``,
    ``workspace`` and ``messages`` (the chat's UIMessages, the new user message last).
    """
    run_id, chat_id = request["runId"], request["chatId"]
    state = _RunState(encoder=UIChunkEncoder(message_id=request["messageId"]))
    await _emit(state, state.encoder.start())
    await _mark_running(run_id)

    async def save(_ctx: RunContext[ToolContext], events: AsyncIterable[Any]) -> None:
        async for event in events:
            await _emit(state, state.encoder.encode(event))
        await _save_message(chat_id, fold_chunks(state.chunks))

    status, error, steps = "completed", None, max_steps_from_env()
    try:
        agent = build_agent(_StepModel(resolve_model(request.get("modelId")), state))
        context = ToolContext(
            workspace=Path(request["workspace"]),
            session_id=request["sessionId"],
            todo_store=JsonFileTodoStore(runtime.current().data_dir / "todos"),
        )
        with (
            agent.override(toolsets=[_StepToolset(build_toolset())]),
            Agent.parallel_tool_call_execution_mode("sequential"),
        ):
            await agent.run(
                None,
                message_history=to_model_messages(request["messages"]),
                deps=context,
                usage_limits=UsageLimits(request_limit=steps),
                event_stream_handler=save,
            )
    except UsageLimitExceeded:
        status, error = "failed", f"The run stopped after {steps} steps (RECOUP_MAX_STEPS)."
    except StepFailed as exc:
        # Keep what the model streamed before it failed, so its parts are closed and saved.
        state.encoder, state.chunks = exc.encoder, state.chunks + exc.chunks
        status, error = "failed", exc.message
    except Exception as exc:
        logger.info("run %s failed: %r", run_id, exc)
        status, error = "failed", str(exc) or type(exc).__name__
    final = state.encoder.finish() if error is None else state.encoder.fail(error)
    await _emit(state, final)
    await _save_message(chat_id, fold_chunks(state.chunks))
    await _finish_run(run_id, chat_id, status, error)
    # Closing notifies the readers (on PostgreSQL): they end now, the slot already released,
    # rather than at their next safety poll, as the workflow's own end notifies nobody.
    await DBOS.close_stream_async(STREAM_KEY)
    wakeups.announce(run_id)
    return status
