"""The fault middleware: off by default, refuses unknown names, rewrites streams frame by frame."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from server.faults import FaultsMiddleware, faults_from_env, wrap_with_faults


async def _stream(_request: Request) -> StreamingResponse:
    async def frames() -> AsyncIterator[bytes]:
        # Frames split across body messages, as a real server may send them.
        yield b'data: {"type":"text-delta","id":"t","del'
        yield b'ta":"a"}\n\ndata: [DO'
        yield b"NE]\n\n"

    headers = {"x-vercel-ai-ui-message-stream": "v1"}
    return StreamingResponse(frames(), media_type="text/event-stream", headers=headers)


APP = Starlette(routes=[Route("/api/chat", _stream, methods=["POST"])])


def test_no_faults_by_default_and_unknown_names_are_refused():
    assert faults_from_env({}) == []
    assert wrap_with_faults(APP, []) is APP
    with pytest.raises(ValueError, match="unknown fault"):
        faults_from_env({"RECOUP_FAULTS": "null-chunk-field,no-such-fault"})
    with pytest.raises(ValueError, match="unknown fault"):
        wrap_with_faults(APP, ["no-such-fault"])


def test_stream_faults_rewrite_split_frames():
    faults = ["null-chunk-field", "missing-stream-header", "stream-without-done"]
    with TestClient(FaultsMiddleware(APP, faults=faults)) as client:
        response = client.post("/api/chat")
    assert (
        response.text
        == 'data: {"type":"text-delta","id":"t","delta":"a","providerMetadata":null}\n\n'
    )
    assert "x-vercel-ai-ui-message-stream" not in response.headers
