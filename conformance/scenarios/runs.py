"""Runs: the streamed answer of ``POST /api/chat``, its run slot, resume (DESIGN.md §6).

Every scenario here needs a working run: a session with a sandbox and ``POST /api/chat``
answering 200. A target that answers 400/500 (runs not there yet) makes them skip with the answer.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from conformance.client import StreamedResponse
from conformance.scenarios.base import RUN_UNAVAILABLE, Context, Skip, expect, short
from conformance.stream import DONE, grammar_problems

# Any model answers a plain message; the built-in offline model echoes it, so a long one keeps
# the run busy long enough to race it and to resume it while it is in progress.
SHORT_PROMPT = "Say hello."
LONG_PROMPT = "Please repeat these words back: " + " ".join(f"word{i}" for i in range(300))
STREAM_HEADERS = {
    "cache-control": "no-cache",
    "x-vercel-ai-ui-message-stream": "v1",
    "x-accel-buffering": "no",
}


def _chunks(payloads: list[str]) -> list[Any]:
    return [json.loads(payload) for payload in payloads if payload != DONE]


def stream_has_the_protocol_headers(ctx: Context) -> None:
    """The run's stream carries the UI message stream headers and its run id."""
    session_id = ctx.sandboxed_session()
    chat_id = ctx.new_chat(session_id)
    with ctx.run(session_id, chat_id, SHORT_PROMPT) as streamed:
        headers = streamed.headers
        streamed.read_all()
    content_type = headers.get("content-type", "")
    expect(content_type.startswith("text/event-stream"), f"content-type is {content_type!r}")
    for name, value in STREAM_HEADERS.items():
        expect(headers.get(name) == value, f"{name} is {headers.get(name)!r}, expected {value!r}")
    expect(headers.get("x-workflow-run-id"), "no x-workflow-run-id header")


def stream_follows_the_chunk_grammar(ctx: Context) -> None:
    """start (with messageId) first, finish then [DONE] last, ai@5.0.0 fields only, no nulls."""
    session_id = ctx.sandboxed_session()
    chat_id = ctx.new_chat(session_id)
    with ctx.run(session_id, chat_id, SHORT_PROMPT) as streamed:
        payloads = streamed.read_all()
    problems = grammar_problems(payloads)
    expect(not problems, "; ".join(problems[:5]))


def unread_follows_the_assistant_reply(ctx: Context) -> None:
    """An assistant reply makes the chat unread; a read clears it."""
    session_id = ctx.sandboxed_session()
    chat_id = ctx.new_chat(session_id)
    expect(ctx.chat_row(session_id, chat_id)["hasUnread"] is False, "a new chat has hasUnread true")
    with ctx.run(session_id, chat_id, SHORT_PROMPT) as streamed:
        streamed.read_all()
    expect(
        ctx.wait_until_idle(session_id, chat_id)["hasUnread"] is True, "no hasUnread after a reply"
    )
    ctx.require("POST", "/api/sessions/{sessionId}/chats/{chatId}/read")
    read = ctx.client.call("POST", f"/api/sessions/{session_id}/chats/{chat_id}/read")
    expect(read.status_code == 200, f"read: {read.status_code} {short(read.text)}")
    expect(
        ctx.chat_row(session_id, chat_id)["hasUnread"] is False, "hasUnread still true after a read"
    )


def second_run_on_a_chat_is_409(ctx: Context) -> None:
    """Two concurrent ``POST /api/chat`` for one chat: one streams, the other is 409."""
    session_id = ctx.sandboxed_session()
    chat_id = ctx.new_chat(session_id)
    both_answered = threading.Barrier(2, timeout=60)
    results: list[tuple[int, bytes]] = []
    errors: list[BaseException] = []

    def post() -> None:
        body = ctx.chat_request(session_id, chat_id, LONG_PROMPT)
        try:
            with ctx.client.stream("POST", "/api/chat", json=body) as streamed:
                status = streamed.status_code
                # Hold the winner's stream open until the loser has its answer.
                both_answered.wait()
                results.append((status, streamed.body() if status != 200 else b""))
        except BaseException as exc:  # reported below, in the scenario's own thread
            both_answered.abort()
            errors.append(exc)

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    statuses = sorted(status for status, _body in results)
    for status, body in results:
        if status in RUN_UNAVAILABLE:
            raise Skip(f"POST /api/chat answered {status} ({short(body.decode(errors='replace'))})")
    expect(statuses == [200, 409], f"expected one 200 and one 409, got {statuses}")


def resume_replays_the_same_message(ctx: Context) -> None:
    """During a run, a resume replays it from 0 (same messageId) or from startIndex; then 204."""
    ctx.require("GET", "/api/chat/{chatId}/stream")
    session_id = ctx.sandboxed_session()
    chat_id = ctx.new_chat(session_id)
    url = f"/api/chat/{chat_id}/stream"
    with ctx.run(session_id, chat_id, LONG_PROMPT) as original:
        expect(original.next_payload() is not None, "the run's stream is empty")
        # Both resumes are opened while the run is in progress, then read to their end.
        with (
            ctx.client.stream("GET", url) as replay,
            ctx.client.stream("GET", url, params={"startIndex": "2"}) as tail,
        ):
            if 204 in (replay.status_code, tail.status_code):
                raise Skip("the run ended before it could be resumed (the resume answered 204)")
            expect(replay.status_code == 200, f"GET {url}: {replay.status_code}")
            expect(tail.status_code == 200, f"GET {url}?startIndex=2: {tail.status_code}")
            replay_payloads, tail_payloads = _read_all(replay), _read_all(tail)
        chunks = _chunks(original.read_all())
    expect(chunks and chunks[0].get("type") == "start", "the original stream has no start chunk")
    replayed = _chunks(replay_payloads)
    expect(
        replayed[:1] and replayed[0].get("messageId") == chunks[0].get("messageId"),
        f"the replay starts with {replayed[:1]}, not the original's start {chunks[0]}",
    )
    expect(replayed == chunks, "the replay from 0 differs from the original stream")
    expect(
        _chunks(tail_payloads) == chunks[2:],
        "the replay from startIndex=2 is not the original's tail",
    )
    problems = grammar_problems(replay_payloads)
    expect(not problems, "the replay: " + "; ".join(problems[:5]))
    ctx.wait_until_idle(session_id, chat_id)
    after = ctx.client.call("GET", url)
    expect(after.status_code == 204, f"after the run, expected 204, got {after.status_code}")


def _read_all(streamed: StreamedResponse) -> list[str]:
    deadline = time.monotonic() + 120
    while streamed.next_payload() is not None:
        expect(time.monotonic() < deadline, "a resumed stream did not end within 120 s")
    return streamed.payloads
