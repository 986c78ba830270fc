"""The kit's stream grammar refuses what ai@5.0.0 refuses, and nothing a valid stream sends."""

from __future__ import annotations

import json

import pytest

from conformance.stream import DONE, FrameReader, grammar_problems

VALID: list[dict[str, object]] = [
    {"type": "start", "messageId": "msg_1"},
    {"type": "start-step"},
    {"type": "text-start", "id": "t1"},
    {"type": "text-delta", "id": "t1", "delta": "Hi"},
    {"type": "text-end", "id": "t1"},
    {"type": "tool-input-available", "toolCallId": "c1", "toolName": "bash", "input": None},
    {"type": "tool-output-available", "toolCallId": "c1", "output": {"ok": True}},
    {"type": "data-todo", "data": None},
    {"type": "finish-step"},
    {"type": "finish"},
]


def _payloads(chunks: list[dict[str, object]]) -> list[str]:
    return [json.dumps(chunk) for chunk in chunks] + [DONE]


def test_a_valid_stream_has_no_problems():
    assert grammar_problems(_payloads(VALID)) == []


@pytest.mark.parametrize(
    ("chunks", "problem"),
    [
        ([{"type": "start"}, *VALID[1:]], "start with a messageId"),
        ([*VALID[:3], {**VALID[3], "providerMetadata": None}, *VALID[4:]], "is null"),
        ([*VALID[:-1], {"type": "finish", "finishReason": "stop"}], "unknown to ai@5.0.0"),
        ([VALID[0], VALID[3], *VALID[4:]], "before its start"),
        (
            [*VALID[:6], {"type": "tool-output-error", "toolCallId": "c9", "errorText": "x"}],
            "before any input",
        ),
        ([VALID[0], {"type": "text-delta", "id": "t1"}, VALID[-1]], "required 'delta'"),
        ([VALID[0], {"type": "tool-input-error"}, VALID[-1]], "unknown chunk type"),
    ],
)
def test_each_defect_is_reported(chunks: list[dict[str, object]], problem: str):
    problems = grammar_problems(_payloads(chunks))
    assert any(problem in found for found in problems), problems


def test_the_end_of_the_stream_is_checked():
    assert "the last frame is not data: [DONE]" in grammar_problems(_payloads(VALID)[:-1])
    assert any("must be finish" in p for p in grammar_problems(_payloads(VALID[:-1])))
    assert any("not valid JSON" in p for p in grammar_problems(['{"type":"start","x":NaN}', DONE]))


def test_frames_split_anywhere_are_reassembled_and_comments_ignored():
    text = ': keep-alive\n\ndata: {"type":"start"}\n\ndata: [DONE]\n\n'
    reader = FrameReader()
    payloads = [payload for char in text for payload in reader.feed(char)] + reader.close()
    assert payloads == ['{"type":"start"}', DONE]
    assert reader.comments == 1
