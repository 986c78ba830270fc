"""Which model serves a run: `agent.models.build_model`, plus scripted models for tests.

With `RECOUP_TEST_MODELS=1` the ids below are scripted models (never enable it in production):

- `test/slow`: the offline model, each streamed word delayed `RECOUP_TEST_MODEL_DELAY` seconds
  (default 0.2), so that a test can disconnect, resume or kill the server mid-run;
- `test/fail`: streams a few words, then fails (the run ends with an `error` chunk);
- `test/think`: streams reasoning, then the text `Here is my answer.`
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

from pydantic_ai.messages import ModelMessage
from pydantic_ai.models import Model
from pydantic_ai.models.function import (
    AgentInfo,
    DeltaThinkingCalls,
    DeltaThinkingPart,
    DeltaToolCalls,
    FunctionModel,
)

from agent.models import ModelEndpoint, build_model, offline_model

TEST_MODELS_ENV = "RECOUP_TEST_MODELS"
FAILURE_TEXT = "The scripted model failed mid-stream."


class ScriptedModelFailure(RuntimeError):
    """What `test/fail` raises."""


def resolve_model(model_id: str | None) -> Model:
    """The model serving a chat's model id."""
    if os.environ.get(TEST_MODELS_ENV) == "1" and model_id in _SCRIPTED:
        return _SCRIPTED[model_id]()
    return build_model(model_id, ModelEndpoint.from_env())


def _delay() -> float:
    return float(os.environ.get("RECOUP_TEST_MODEL_DELAY") or 0.2)


def _slow() -> Model:
    offline = offline_model()
    function, stream = offline.function, offline.stream_function
    assert function is not None and stream is not None

    async def slow_stream(
        messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | DeltaToolCalls]:
        async for item in stream(messages, info):  # type: ignore[union-attr]
            await asyncio.sleep(_delay())
            yield item  # type: ignore[misc]

    return FunctionModel(function, stream_function=slow_stream, model_name="test/slow")


async def _failing_stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
    for word in ("Working ", "on ", "it "):
        yield word
    raise ScriptedModelFailure(FAILURE_TEXT)


async def _thinking_stream(
    messages: list[ModelMessage], info: AgentInfo
) -> AsyncIterator[str | DeltaThinkingCalls]:
    for text in ("Thinking ", "it ", "over."):
        yield {0: DeltaThinkingPart(content=text)}
    for word in ("Here ", "is ", "my ", "answer."):
        yield word


def _failing() -> Model:
    return FunctionModel(stream_function=_failing_stream, model_name="test/fail")


def _thinking() -> Model:
    return FunctionModel(stream_function=_thinking_stream, model_name="test/think")


_SCRIPTED = {"test/slow": _slow, "test/fail": _failing, "test/think": _thinking}
