"""Model ids and providers: a fake OpenAI-compatible endpoint driven by the real openai client."""

from __future__ import annotations

import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import pytest
from pydantic_ai.models.function import FunctionModel
from pydantic_ai.models.openai import OpenAIChatModel

from agent.context import ToolContext
from agent.loop import run_agent
from agent.models import (
    OFFLINE_MODEL_ID,
    ModelEndpoint,
    UnknownModelError,
    build_model,
)
from agent.stream import fold_chunks


def _chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "openai/gpt-5.4",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


# First answer: a bash call whose arguments arrive in pieces. Second: text in three deltas.
TOOL_CALL_ANSWER = [
    _chunk(
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "bash", "arguments": ""},
                }
            ],
        }
    ),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"command": '}}]}),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"echo from-tool"}'}}]}),
    _chunk({}, "tool_calls"),
]
TEXT_ANSWER = [
    _chunk({"role": "assistant", "content": "The command "}),
    _chunk({"content": "printed "}),
    _chunk({"content": "from-tool."}),
    _chunk({}, "stop"),
]


class FakeOpenAI(BaseHTTPRequestHandler):
    """Streams chat.completion.chunk events like an OpenAI-compatible gateway."""

    requests: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeOpenAI.requests.append(
            {"path": self.path, "auth": self.headers["Authorization"], "body": body}
        )
        has_tool_result = any(m["role"] == "tool" for m in body["messages"])
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for event in TEXT_ANSWER if has_tool_result else TOOL_CALL_ANSWER:
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_ids_must_be_provider_slash_model() -> None:
    for bad in ["gpt-5", "/gpt", "openai/", "openai gpt/5"]:
        with pytest.raises(UnknownModelError):
            build_model(bad, ModelEndpoint(base_url="http://x/v1"))


def test_without_endpoint_every_id_is_served_offline() -> None:
    for model_id in [None, "openai/gpt-5.4", OFFLINE_MODEL_ID]:
        model = build_model(model_id, ModelEndpoint())
        assert isinstance(model, FunctionModel) and model.model_name == OFFLINE_MODEL_ID
    configured = ModelEndpoint(base_url="http://x/v1", api_key="k")
    assert isinstance(build_model(OFFLINE_MODEL_ID, configured), FunctionModel)


def test_endpoint_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECOUP_MODEL_BASE_URL", "http://gateway/v1")
    monkeypatch.setenv("RECOUP_MODEL_API_KEY", "secret")
    assert ModelEndpoint.from_env() == ModelEndpoint("http://gateway/v1", "secret")
    monkeypatch.setenv("RECOUP_MODEL_BASE_URL", "")
    assert ModelEndpoint.from_env().base_url is None


async def test_openai_compatible_endpoint_end_to_end(
    serve: Callable[[type[BaseHTTPRequestHandler]], str],
    context: ToolContext,
    check_stream: Callable[[list[dict[str, Any]]], None],
) -> None:
    FakeOpenAI.requests = []
    base_url = serve(FakeOpenAI) + "/v1"
    model = build_model("openai/gpt-5.4", ModelEndpoint(base_url=base_url, api_key="test-key"))
    assert isinstance(model, OpenAIChatModel)

    chunks = [
        chunk
        async for chunk in run_agent(
            messages=[{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "run it"}]}],
            model=model,
            context=context,
            message_id="msg_a",
        )
    ]

    assert [r["path"] for r in FakeOpenAI.requests] == ["/v1/chat/completions"] * 2
    assert {r["auth"] for r in FakeOpenAI.requests} == {"Bearer test-key"}
    first, second = (r["body"] for r in FakeOpenAI.requests)
    assert first["model"] == second["model"] == "openai/gpt-5.4"
    assert first["stream"] is True
    assert "bash" in {tool["function"]["name"] for tool in first["tools"]}
    tool_message = next(m for m in second["messages"] if m["role"] == "tool")
    assert tool_message["tool_call_id"] == "call_1" and "from-tool" in tool_message["content"]

    check_stream(chunks)
    assert [c["type"] for c in chunks] == [
        "start",
        "start-step",
        "tool-input-start",
        "tool-input-available",
        "tool-output-available",
        "finish-step",
        "start-step",
        "text-start",
        "text-delta",
        "text-delta",
        "text-delta",
        "text-end",
        "finish-step",
        "finish",
    ]
    assert chunks[3]["input"] == {"command": "echo from-tool"}
    assert chunks[4]["output"]["output"] == "from-tool\n"
    message = fold_chunks(chunks)
    assert message["parts"][-1] == {
        "type": "text",
        "text": "The command printed from-tool.",
        "state": "done",
    }
