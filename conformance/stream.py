"""The AI SDK UI message stream, as the oldest and strictest client (ai@5.0.0) parses it.

``FrameReader`` splits Server-Sent Events into ``data:`` payloads; ``grammar_problems`` lists
every way a complete stream would make a real client fail (see AI-SDK-STREAM.md).
"""

from __future__ import annotations

import json
from typing import Any

DONE = "[DONE]"
# The fields of every chunk type in ai@5.0.0's `uiMessageChunkSchema` (zod strict objects):
# kind "str" / "bool" / "obj" (optional provider metadata) / "any"; `True` marks required ones.
_STR, _BOOL, _OBJ, _ANY = "str", "bool", "obj", "any"
_META = {"providerMetadata": (_OBJ, False)}
_TOOL_FLAGS = {"providerExecuted": (_BOOL, False), "dynamic": (_BOOL, False)}
CHUNK_FIELDS: dict[str, dict[str, tuple[str, bool]]] = {
    "text-start": {"id": (_STR, True), **_META},
    "text-delta": {"id": (_STR, True), "delta": (_STR, True), **_META},
    "text-end": {"id": (_STR, True), **_META},
    "error": {"errorText": (_STR, True)},
    "tool-input-start": {"toolCallId": (_STR, True), "toolName": (_STR, True), **_TOOL_FLAGS},
    "tool-input-delta": {"toolCallId": (_STR, True), "inputTextDelta": (_STR, True)},
    "tool-input-available": {
        "toolCallId": (_STR, True),
        "toolName": (_STR, True),
        "input": (_ANY, True),
        **_TOOL_FLAGS,
        **_META,
    },
    "tool-output-available": {"toolCallId": (_STR, True), "output": (_ANY, True), **_TOOL_FLAGS},
    "tool-output-error": {"toolCallId": (_STR, True), "errorText": (_STR, True), **_TOOL_FLAGS},
    "reasoning": {"text": (_STR, True), **_META},
    "reasoning-start": {"id": (_STR, True), **_META},
    "reasoning-delta": {"id": (_STR, True), "delta": (_STR, True), **_META},
    "reasoning-end": {"id": (_STR, True), **_META},
    "reasoning-part-finish": {},
    "source-url": {
        "sourceId": (_STR, True),
        "url": (_STR, True),
        "title": (_STR, False),
        **_META,
    },
    "source-document": {
        "sourceId": (_STR, True),
        "mediaType": (_STR, True),
        "title": (_STR, True),
        "filename": (_STR, False),
        **_META,
    },
    "file": {"url": (_STR, True), "mediaType": (_STR, True), **_META},
    "start-step": {},
    "finish-step": {},
    "start": {"messageId": (_STR, False), "messageMetadata": (_ANY, False)},
    "finish": {"messageMetadata": (_ANY, False)},
    "abort": {},
    "message-metadata": {"messageMetadata": (_ANY, True)},
}
_DATA_FIELDS = {"id": (_STR, False), "data": (_ANY, True), "transient": (_BOOL, False)}
_KIND_CHECKS = {
    _STR: lambda value: isinstance(value, str),
    _BOOL: lambda value: isinstance(value, bool),
    _OBJ: lambda value: isinstance(value, dict),
    _ANY: lambda value: True,
}


class FrameReader:
    """Incremental SSE parser: feed bytes, get the ``data:`` payloads of complete events."""

    def __init__(self) -> None:
        self._pending = ""
        self.comments = 0

    def feed(self, text: str) -> list[str]:
        self._pending += text.replace("\r\n", "\n")
        *events, self._pending = self._pending.split("\n\n")
        return [payload for event in events if (payload := self._payload(event)) is not None]

    def close(self) -> list[str]:
        rest, self._pending = self._pending, ""
        payload = self._payload(rest) if rest.strip() else None
        return [payload] if payload is not None else []

    def _payload(self, event: str) -> str | None:
        data = []
        for line in event.split("\n"):
            if line.startswith(":"):
                self.comments += 1
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        return "\n".join(data) if data else None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_chunk(payload: str) -> dict[str, Any]:
    """One chunk as the client's secure JSON parser reads it; raises ``ValueError`` otherwise."""
    chunk = json.loads(payload, parse_constant=_refuse_constant)
    if not isinstance(chunk, dict):
        raise ValueError("a chunk must be a JSON object")
    if _has_proto_key(chunk):
        raise ValueError("a chunk must not contain a __proto__ key")
    return chunk


def _has_proto_key(value: Any) -> bool:
    if isinstance(value, dict):
        return "__proto__" in value or any(_has_proto_key(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_proto_key(v) for v in value)
    return False


def chunk_problems(chunk: dict[str, Any]) -> list[str]:
    """Why ai@5.0.0 would refuse this chunk on its own (unknown keys, nulls, wrong types)."""
    kind = chunk.get("type")
    if not isinstance(kind, str):
        return [f"chunk without a string type: {chunk}"]
    fields = _DATA_FIELDS if kind.startswith("data-") else CHUNK_FIELDS.get(kind)
    if fields is None:
        return [f"unknown chunk type {kind!r}"]
    problems = []
    for key, value in chunk.items():
        if key == "type":
            continue
        if key not in fields:
            problems.append(f"{kind}: key {key!r} is unknown to ai@5.0.0")
        elif value is None and fields[key][0] != _ANY:
            problems.append(f"{kind}: {key} is null (leave optional fields out)")
        elif not _KIND_CHECKS[fields[key][0]](value):
            problems.append(f"{kind}: {key} has the wrong type ({value!r})")
    for key, (_kind, required) in fields.items():
        if required and key not in chunk:
            problems.append(f"{kind}: required {key!r} is missing")
    return problems


def grammar_problems(payloads: list[str]) -> list[str]:
    """Every reason a client would refuse this complete stream (empty when it is valid)."""
    if not payloads:
        return ["the stream has no data frames"]
    problems: list[str] = []
    if payloads[-1] != DONE:
        problems.append("the last frame is not data: [DONE]")
    if payloads.count(DONE) > 1 or (DONE in payloads and payloads[-1] != DONE):
        problems.append("data: [DONE] is not the only and last frame")
    chunks: list[dict[str, Any]] = []
    for index, payload in enumerate(p for p in payloads if p != DONE):
        try:
            chunks.append(parse_chunk(payload))
        except ValueError as exc:
            problems.append(f"chunk {index} is not valid JSON for the client: {exc}")
    for index, chunk in enumerate(chunks):
        problems.extend(f"chunk {index}: {problem}" for problem in chunk_problems(chunk))
    problems.extend(_order_problems(chunks))
    return problems


def _order_problems(chunks: list[dict[str, Any]]) -> list[str]:
    if not chunks:
        return ["the stream has no chunks"]
    problems = []
    first, last = chunks[0], chunks[-1]
    if first.get("type") != "start" or not isinstance(first.get("messageId"), str):
        problems.append(f"the first chunk must be start with a messageId, not {first}")
    if sum(1 for chunk in chunks if chunk.get("type") == "start") > 1:
        problems.append("more than one start chunk")
    if last.get("type") != "finish":
        problems.append(f"the last chunk before [DONE] must be finish, not {last.get('type')}")
    open_parts: dict[str, set[str]] = {"text": set(), "reasoning": set()}
    tool_inputs: set[str] = set()
    started_tools: set[str] = set()
    for index, chunk in enumerate(chunks):
        kind = str(chunk.get("type"))
        family, _, phase = kind.rpartition("-")
        if family in open_parts and phase == "start":
            open_parts[family].add(str(chunk.get("id")))
        elif family in open_parts and phase in ("delta", "end"):
            if chunk.get("id") not in open_parts[family]:
                problems.append(f"chunk {index}: {kind} for {chunk.get('id')!r} before its start")
            if phase == "end":
                open_parts[family].discard(str(chunk.get("id")))
        elif kind == "finish-step":
            for ids in open_parts.values():
                ids.clear()
        elif kind == "tool-input-start":
            started_tools.add(str(chunk.get("toolCallId")))
        elif kind == "tool-input-delta" and chunk.get("toolCallId") not in started_tools:
            problems.append(f"chunk {index}: tool-input-delta before tool-input-start")
        elif kind == "tool-input-available":
            tool_inputs.add(str(chunk.get("toolCallId")))
        elif kind.startswith("tool-output-") and chunk.get("toolCallId") not in (
            tool_inputs | started_tools
        ):
            problems.append(f"chunk {index}: {kind} before any input of that tool call")
    return problems
