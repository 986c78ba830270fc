"""The agent loop end to end: offline model, scripted multi-step runs, failures, limits."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from pydantic_ai import RunContext
from pydantic_ai.messages import AgentStreamEvent, ModelMessage, ModelRequest, ToolReturnPart
from pydantic_ai.models.function import (
    AgentInfo,
    DeltaThinkingCalls,
    DeltaThinkingPart,
    DeltaToolCall,
    DeltaToolCalls,
    FunctionModel,
)

from agent.context import ToolContext
from agent.history import response_message_id, to_model_messages
from agent.loop import build_agent, run_agent
from agent.models import offline_model
from agent.stream import UIChunkEncoder, fold_chunks

Checker = Callable[[list[dict[str, Any]]], None]


def _user(text: str, message_id: str = "u1") -> dict[str, Any]:
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}


async def _run(
    messages: list[dict[str, Any]], model: Any, context: ToolContext, **options: Any
) -> list[dict[str, Any]]:
    return [
        chunk
        async for chunk in run_agent(
            messages=messages, model=model, context=context, message_id="msg_1", **options
        )
    ]


def _types(chunks: list[dict[str, Any]]) -> list[str]:
    return [chunk["type"] for chunk in chunks]


def _read(path: Path) -> str:
    return path.read_text()


async def test_offline_model_runs_a_tool_and_summarises(
    context: ToolContext, check_stream: Checker
) -> None:
    chunks = await _run([_user("/bash echo offline-ok")], offline_model(), context)
    check_stream(chunks)
    assert chunks[0] == {"type": "start", "messageId": "msg_1"}
    assert chunks[3] == {
        "type": "tool-input-available",
        "toolCallId": "offline_0",
        "toolName": "bash",
        "input": {"command": "echo offline-ok"},
    }
    text = "".join(c["delta"] for c in chunks if c["type"] == "text-delta")
    assert text.startswith("[offline model] bash returned:") and "offline-ok" in text
    assert sum(c["type"] == "text-delta" for c in chunks) > 3  # streamed, not one blob


async def test_offline_model_echoes_plain_messages(
    context: ToolContext, check_stream: Checker
) -> None:
    chunks = await _run([{"role": "user", "content": "hi there"}], offline_model(), context)
    check_stream(chunks)
    assert _types(chunks)[:3] == ["start", "start-step", "text-start"]
    text = fold_chunks(chunks)["parts"][1]["text"]
    assert text.startswith("[offline model] no command. You said: 'hi there'.")
    assert "not an LLM" in text


async def test_offline_write_then_read_over_a_saved_history(
    context: ToolContext, workspace: Path, check_stream: Checker
) -> None:
    first = await _run([_user("/write hello.txt\nline one\nline two")], offline_model(), context)
    assert _read(workspace / "hello.txt") == "line one\nline two"
    saved = fold_chunks(first)
    history = [_user("/write hello.txt\nline one\nline two"), saved, _user("/read hello.txt", "u2")]
    second = await _run(history, offline_model(), context)
    check_stream(second)
    outputs = [c for c in second if c["type"] == "tool-output-available"]
    assert outputs[0]["output"]["content"] == "     1\tline one\n     2\tline two"


async def test_offline_ask_user_question_ends_the_turn(
    context: ToolContext, check_stream: Checker
) -> None:
    args = {"questions": [{"question": "Which branch?", "options": ["main", "dev"]}]}
    chunks = await _run(
        [_user(f"/tool ask_user_question {json.dumps(args)}")], offline_model(), context
    )
    check_stream(chunks)
    assert _types(chunks) == [
        "start",
        "start-step",
        "tool-input-start",
        "tool-input-available",
        "tool-output-available",
        "finish-step",
        "finish",
    ]
    assert chunks[4]["output"] == args


async def test_offline_task_runs_a_sub_agent(context: ToolContext, check_stream: Checker) -> None:
    args = {"description": "list files", "prompt": "/bash ls src"}
    chunks = await _run([_user(f"/tool task {json.dumps(args)}")], offline_model(), context)
    check_stream(chunks)
    output = next(c["output"] for c in chunks if c["type"] == "tool-output-available")
    assert "app.py" in output["answer"]


class ScriptedModel:
    """A model that plays a fixed list of steps and records what it was shown each time."""

    def __init__(self, steps: list[list[str | DeltaToolCalls | DeltaThinkingCalls]]) -> None:
        self.steps = steps
        self.seen: list[list[ModelMessage]] = []

    async def __call__(
        self, messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | DeltaToolCalls | DeltaThinkingCalls]:
        self.seen.append(list(messages))
        for item in self.steps[len(self.seen) - 1]:
            yield item


def _call(index: int, name: str, args: dict[str, Any], call_id: str) -> DeltaToolCalls:
    return {index: DeltaToolCall(name=name, json_args=json.dumps(args), tool_call_id=call_id)}


async def test_scripted_multi_step_run_with_a_failing_tool(
    context: ToolContext, workspace: Path, check_stream: Checker
) -> None:
    (workspace / "blocker").write_text("a file, not a directory")
    script = ScriptedModel(
        [
            [
                _call(0, "write", {"path": "out/a.txt", "content": "A"}, "c1"),
                _call(1, "write", {"path": "blocker/b.txt", "content": "B"}, "c2"),
            ],
            [_call(0, "read", {"path": "out/a.txt"}, "c3")],
            ["All ", "done."],
        ]
    )
    chunks = await _run([_user("go")], FunctionModel(stream_function=script), context)
    check_stream(chunks)

    assert _types(chunks).count("start-step") == 3
    errors = [c for c in chunks if c["type"] == "tool-output-error"]
    assert [e["toolCallId"] for e in errors] == ["c2"]
    assert errors[0]["errorText"].startswith(("NotADirectoryError", "FileExistsError"))
    # The model saw the failure as a tool result and went on.
    second_request = script.seen[1][-1]
    assert isinstance(second_request, ModelRequest)
    returns = {p.tool_call_id: p for p in second_request.parts if isinstance(p, ToolReturnPart)}
    assert returns["c2"].outcome == "failed"
    assert returns["c2"].model_response_str(wrap_if_error=False) == errors[0]["errorText"]
    assert returns["c1"].outcome == "success"
    assert _read(workspace / "out" / "a.txt") == "A"

    message = fold_chunks(chunks)
    assert message["id"] == "msg_1" and message["role"] == "assistant"
    assert [p["type"] for p in message["parts"]] == [
        "step-start",
        "tool-write",
        "tool-write",
        "step-start",
        "tool-read",
        "step-start",
        "text",
    ]
    assert message["parts"][2]["state"] == "output-error"
    assert message["parts"][4]["output"]["content"] == "     1\tA"
    assert message["parts"][-1] == {"type": "text", "text": "All done.", "state": "done"}


async def test_escape_attempt_is_a_tool_error_not_a_crash(
    context: ToolContext, check_stream: Checker
) -> None:
    script = ScriptedModel([[_call(0, "read", {"path": "../../etc/passwd"}, "c1")], ["ok"]])
    chunks = await _run([_user("go")], FunctionModel(stream_function=script), context)
    check_stream(chunks)
    error = next(c for c in chunks if c["type"] == "tool-output-error")
    assert "outside the workspace" in error["errorText"]
    assert chunks[-2:] == [{"type": "finish-step"}, {"type": "finish"}]


async def test_invalid_arguments_are_reported_and_retried(
    context: ToolContext, check_stream: Checker
) -> None:
    script = ScriptedModel([[_call(0, "read", {"nope": 1}, "c1")], ["fixed"]])
    chunks = await _run([_user("go")], FunctionModel(stream_function=script), context)
    check_stream(chunks)
    assert any(c["type"] == "tool-output-error" for c in chunks)
    assert chunks[-2] == {"type": "finish-step"}


async def test_reasoning_is_streamed(context: ToolContext, check_stream: Checker) -> None:
    script = ScriptedModel(
        [
            [{0: DeltaThinkingPart(content="Let me ")}, {0: DeltaThinkingPart(content="think.")}],
            ["ok"],
        ]
    )
    chunks = await _run([_user("go")], FunctionModel(stream_function=script), context)
    check_stream(chunks)
    assert _types(chunks)[2:6] == [
        "reasoning-start",
        "reasoning-delta",
        "reasoning-delta",
        "reasoning-end",
    ]
    assert "error" not in _types(chunks)
    assert fold_chunks(chunks)["parts"][1] == {
        "type": "reasoning",
        "text": "Let me think.",
        "state": "done",
    }


async def test_a_retried_model_call_is_a_new_step(
    context: ToolContext, check_stream: Checker
) -> None:
    # Reasoning without an answer makes pydantic-ai ask the model again: a second model call.
    script = ScriptedModel([[{0: DeltaThinkingPart(content="hmm")}], ["answer"]])
    chunks = await _run([_user("go")], FunctionModel(stream_function=script), context)
    check_stream(chunks)
    parts = fold_chunks(chunks)["parts"]
    assert [p["type"] for p in parts] == ["step-start", "reasoning", "step-start", "text"]


async def test_step_limit_ends_with_an_error_then_finish(
    context: ToolContext, check_stream: Checker
) -> None:
    looping = [[_call(0, "glob", {"pattern": "*"}, f"c{i}")] for i in range(5)]
    chunks = await _run(
        [_user("go")], FunctionModel(stream_function=ScriptedModel(looping)), context, max_steps=2
    )
    check_stream(chunks)
    assert _types(chunks)[-2:] == ["error", "finish"]
    assert "2 steps" in chunks[-2]["errorText"]
    assert _types(chunks).count("tool-output-available") == 2


async def test_model_failure_ends_with_an_error_then_finish(
    context: ToolContext, check_stream: Checker
) -> None:
    async def broken(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        yield "partial "
        raise RuntimeError("upstream went away")

    chunks = await _run([_user("go")], FunctionModel(stream_function=broken), context)
    check_stream(chunks)
    assert _types(chunks)[-3:] == ["finish-step", "error", "finish"]
    assert chunks[-2]["errorText"] == "upstream went away"
    assert fold_chunks(chunks)["parts"][1] == {"type": "text", "text": "partial ", "state": "done"}


def test_history_accepts_parts_and_legacy_content() -> None:
    history = to_model_messages(
        [
            {"role": "user", "content": "legacy"},
            {
                "id": "a1",
                "role": "assistant",
                "parts": [{"type": "step-start"}, {"type": "text", "text": "answer"}],
            },
            _user("next", "u2"),
        ]
    )
    assert len(history) == 3
    assert response_message_id([_user("x")]).startswith("msg_")
    assert response_message_id([_user("x"), {"id": "a9", "role": "assistant", "parts": []}]) == "a9"


async def test_encoder_fed_per_step_matches_the_streamed_run(context: ToolContext) -> None:
    """Durable runs call an event_stream_handler once per step: the chunks must be the same."""
    messages = [_user("/bash echo step")]
    encoder = UIChunkEncoder(message_id="msg_1")
    chunks = encoder.start()

    async def handler(
        ctx: RunContext[ToolContext], events: AsyncIterator[AgentStreamEvent]
    ) -> None:
        async for event in events:
            chunks.extend(encoder.encode(event))

    await build_agent(offline_model()).run(
        None,
        message_history=to_model_messages(messages),
        deps=context,
        event_stream_handler=handler,
    )
    chunks += encoder.finish()
    assert chunks == await _run(messages, offline_model(), context)
