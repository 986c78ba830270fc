"""Encoding agent events as AI SDK UI message stream chunks (the ai@5.0.0 field set), and back.

`UIChunkEncoder` is fed pydantic-ai events one at a time, so it works both over
`Agent.run_stream_events()` and from an `event_stream_handler` called once per durable step. Every
chunk is a plain dict with exactly the keys ai@5.0.0 accepts: optional fields are left out, never
null, and `finish` carries no `finishReason`. `fold_chunks` rebuilds the assistant UIMessage the
chunks describe, so it can be saved after every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic_ai.messages import (
    ERROR_OUTCOMES,
    AgentStreamEvent,
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    OutputToolCallEvent,
    OutputToolResultEvent,
    PartDeltaEvent,
    PartEndEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    ThinkingPart,
    ThinkingPartDelta,
    ToolCallPart,
    ToolCallPartDelta,
)
from pydantic_core import to_jsonable_python

Chunk = dict[str, Any]
UIMessage = dict[str, Any]


@dataclass
class UIChunkEncoder:
    """Turns one run's pydantic-ai events into UI message chunks, keeping the protocol's order.

    Call `start()` first, `encode(event)` for each event, then `finish()` (or `fail(text)`).
    """

    message_id: str
    _step_open: bool = False
    # False once tools run: the model's next part then starts a new step.
    _in_response: bool = False
    # Highest part index of the current response: a lower or equal one means a new response.
    _last_index: int = -1
    _counter: int = 0
    # Text and reasoning parts of the current step, by the event's part index.
    _open_parts: dict[int, tuple[str, str]] = field(default_factory=dict)
    # Tool calls announced to the client and not answered yet.
    _unanswered: set[str] = field(default_factory=set)
    _calls: dict[str, ToolCallPart] = field(default_factory=dict)

    def start(self) -> list[Chunk]:
        """The `start` chunk, always with the message id (a resumed stream must repeat it)."""
        return [{"type": "start", "messageId": self.message_id}]

    def encode(self, event: AgentStreamEvent | Any) -> list[Chunk]:
        """The chunks for one pydantic-ai event (events with no UI meaning give none)."""
        if isinstance(event, PartStartEvent):
            return self._open_step(event.index) + self._part_start(event)
        if isinstance(event, PartDeltaEvent):
            return self._part_delta(event)
        if isinstance(event, PartEndEvent):
            return self._part_end(event)
        if isinstance(event, FunctionToolCallEvent | OutputToolCallEvent):
            return self._tool_input(event.part)
        if isinstance(event, FunctionToolResultEvent | OutputToolResultEvent):
            return self._tool_output(event)
        return []

    def finish(self) -> list[Chunk]:
        """Close whatever is open and end the message with `finish`."""
        return self._close_step() + [{"type": "finish"}]

    def fail(self, error_text: str) -> list[Chunk]:
        """End the message after an error: open parts closed, unanswered tool calls failed."""
        chunks = self._close_parts()
        for call_id in sorted(self._unanswered):
            chunks += self._tool_error(call_id, "The run stopped before this tool finished.")
        return (
            chunks
            + self._close_step()
            + [{"type": "error", "errorText": error_text}, {"type": "finish"}]
        )

    def _new_id(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}_{self._counter}"

    def _open_step(self, index: int) -> list[Chunk]:
        """`start-step` before the first part of a model response (one step = one model call)."""
        if self._in_response and index > self._last_index:
            self._last_index = index
            return []
        chunks = self._close_step()
        self._step_open = self._in_response = True
        self._last_index = index
        return chunks + [{"type": "start-step"}]

    def _close_parts(self) -> list[Chunk]:
        chunks = [
            {"type": f"{kind}-end", "id": part_id} for kind, part_id in self._open_parts.values()
        ]
        self._open_parts.clear()
        return chunks

    def _close_step(self) -> list[Chunk]:
        chunks = self._close_parts()
        if self._step_open:
            chunks.append({"type": "finish-step"})
            self._step_open = False
        return chunks

    def _part_start(self, event: PartStartEvent) -> list[Chunk]:
        part = event.part
        if isinstance(part, TextPart | ThinkingPart):
            kind = "text" if isinstance(part, TextPart) else "reasoning"
            part_id = self._new_id(kind)
            self._open_parts[event.index] = (kind, part_id)
            chunks: list[Chunk] = [{"type": f"{kind}-start", "id": part_id}]
            if part.content:
                chunks.append({"type": f"{kind}-delta", "id": part_id, "delta": part.content})
            return chunks
        if isinstance(part, ToolCallPart):
            self._unanswered.add(part.tool_call_id)
            return [
                {
                    "type": "tool-input-start",
                    "toolCallId": part.tool_call_id,
                    "toolName": part.tool_name,
                }
            ]
        return []

    def _part_delta(self, event: PartDeltaEvent) -> list[Chunk]:
        delta = event.delta
        opened = self._open_parts.get(event.index)
        if opened is None or isinstance(delta, ToolCallPartDelta):
            # Tool arguments are announced whole by `tool-input-available`.
            return []
        if isinstance(delta, TextPartDelta | ThinkingPartDelta) and delta.content_delta:
            kind, part_id = opened
            return [{"type": f"{kind}-delta", "id": part_id, "delta": delta.content_delta}]
        return []

    def _part_end(self, event: PartEndEvent) -> list[Chunk]:
        opened = self._open_parts.pop(event.index, None)
        if opened is None:
            return []
        kind, part_id = opened
        return [{"type": f"{kind}-end", "id": part_id}]

    def _tool_input(self, part: ToolCallPart) -> list[Chunk]:
        # A tool call ends the model's response: its text parts are complete.
        chunks = self._close_parts()
        self._in_response = False
        if part.tool_call_id not in self._unanswered:
            self._unanswered.add(part.tool_call_id)
            chunks.append(
                {
                    "type": "tool-input-start",
                    "toolCallId": part.tool_call_id,
                    "toolName": part.tool_name,
                }
            )
        self._calls[part.tool_call_id] = part
        chunks.append(
            {
                "type": "tool-input-available",
                "toolCallId": part.tool_call_id,
                "toolName": part.tool_name,
                "input": _json(part.args_as_dict()),
            }
        )
        return chunks

    def _tool_output(self, event: FunctionToolResultEvent | OutputToolResultEvent) -> list[Chunk]:
        result = event.part
        self._in_response = False
        call = self._calls.pop(result.tool_call_id, None)
        if call is None:
            return []
        self._unanswered.discard(result.tool_call_id)
        if result.outcome in ERROR_OUTCOMES:
            return self._tool_error(
                result.tool_call_id, result.model_response_str(wrap_if_error=False)
            )
        # An output tool's result is only "final result processed": show the answer it carried.
        output = call.args_as_dict() if isinstance(event, OutputToolResultEvent) else result.content
        return [
            {
                "type": "tool-output-available",
                "toolCallId": result.tool_call_id,
                "output": _json(output),
            }
        ]

    def _tool_error(self, call_id: str, text: str) -> list[Chunk]:
        self._unanswered.discard(call_id)
        return [{"type": "tool-output-error", "toolCallId": call_id, "errorText": text}]


def _json(value: Any) -> Any:
    """A JSON-ready copy of a tool's input or output (TypedDicts, models, dataclasses...)."""
    return to_jsonable_python(value, fallback=str)


def fold_chunks(chunks: list[Chunk]) -> UIMessage:
    """Rebuild the assistant UIMessage (`{id, role, parts}`) that `chunks` describe so far.

    Parts follow the AI SDK client's own shape: `step-start`, `text`/`reasoning` with `state`, and
    `tool-<name>` with `toolCallId`, `state`, `input`, and `output` or `errorText`.
    """
    message: UIMessage = {"id": "", "role": "assistant", "parts": []}
    parts: list[dict[str, Any]] = message["parts"]
    by_id: dict[str, dict[str, Any]] = {}
    for chunk in chunks:
        kind = chunk["type"]
        if kind == "start":
            message["id"] = chunk.get("messageId", message["id"])
        elif kind == "start-step":
            parts.append({"type": "step-start"})
        elif kind in ("text-start", "reasoning-start"):
            part = {"type": kind.removesuffix("-start"), "text": "", "state": "streaming"}
            by_id[chunk["id"]] = part
            parts.append(part)
        elif kind in ("text-delta", "reasoning-delta"):
            by_id[chunk["id"]]["text"] += chunk["delta"]
        elif kind in ("text-end", "reasoning-end"):
            by_id[chunk["id"]]["state"] = "done"
        elif kind == "tool-input-start":
            part = {
                "type": f"tool-{chunk['toolName']}",
                "toolCallId": chunk["toolCallId"],
                "state": "input-streaming",
                "input": None,
            }
            by_id[chunk["toolCallId"]] = part
            parts.append(part)
        elif kind == "tool-input-available":
            by_id[chunk["toolCallId"]].update(state="input-available", input=chunk["input"])
        elif kind == "tool-output-available":
            by_id[chunk["toolCallId"]].update(state="output-available", output=chunk["output"])
        elif kind == "tool-output-error":
            by_id[chunk["toolCallId"]].update(state="output-error", errorText=chunk["errorText"])
    return message
