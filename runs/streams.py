"""A run's durable chunk stream, read as AI SDK UI message stream frames (Server-Sent Events).

Frames are ``data: <compact JSON>\\n\\n``; the last is ``data: [DONE]``. A stream whose run ended
without ``finish`` (cancelled, or failed outside a step) still ends with ``finish``, which
clients that reconnect on a missing ``finish`` need. Comment frames keep quiet streams alive.

A process reads each run's stream once, whatever its clients (:mod:`runs.fanout`), woken as
:mod:`runs.notify` says: notified on PostgreSQL, by the run itself on SQLite.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from dbos._dbos import _get_dbos_instance
from dbos._serialization import DBOSPortableJSON
from dbos._sys_db import _serialized_stream_closed_sentinel

from runs import fanout
from runs.workflow import STREAM_KEY

HEADERS = {
    "cache-control": "no-cache",
    "connection": "keep-alive",
    "x-vercel-ai-ui-message-stream": "v1",
    "x-accel-buffering": "no",
}
MEDIA_TYPE = "text/event-stream"
DONE = b"data: [DONE]\n\n"
KEEP_ALIVE = b": keep-alive\n\n"


def frame(chunk: dict[str, Any]) -> bytes:
    """One SSE frame; NaN can never be sent (the client's parser rejects it)."""
    text = json.dumps(chunk, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return f"data: {text}\n\n".encode()


def _count_chunks(run_id: str) -> int:
    # DBOS has no public length query; its system database keeps one row per chunk.
    sys_db = _get_dbos_instance()._sys_db
    streams = sys_db.tables.streams
    # The marker a closed stream ends with is no chunk.
    closed = sa.and_(
        streams.c.serialization == DBOSPortableJSON.name(),
        streams.c.value == _serialized_stream_closed_sentinel,
    )
    with sys_db.engine.begin() as connection:
        count = connection.execute(
            sa.select(sa.func.count())
            .select_from(streams)
            .where(streams.c.workflow_uuid == run_id, streams.c.key == STREAM_KEY, ~closed)
        ).scalar()
    return int(count or 0)


async def stream_length(run_id: str) -> int:
    """How many chunks the run's stream holds now."""
    return await asyncio.to_thread(_count_chunks, run_id)


def resolve_start(start_index: int, length: int) -> int:
    """A ``startIndex`` as an offset: negative counts from the end, clamped to the stream."""
    return max(0, length + start_index) if start_index < 0 else start_index


async def sse_frames(run_id: str, *, offset: int, keep_alive_s: float) -> AsyncIterator[bytes]:
    """Replay the run's chunks from ``offset`` then follow it live, as SSE frames.

    Every client of a run in this process follows the run's one tail (:mod:`runs.fanout`). Ends
    when the run closes its stream or its workflow ends. Closing the iterator (a client gone)
    leaves the run, and the run's other clients, alone.
    """
    tail = fanout.join(run_id, encode=frame)
    try:
        position, finished = offset, False
        while True:
            if position < len(tail.frames):
                sent = tail.frames[position]
                position += 1
                finished = sent.finish
                yield sent.data
                continue
            if tail.ended:
                break
            changed = tail.changed
            try:
                async with asyncio.timeout(keep_alive_s):
                    await changed.wait()
            except TimeoutError:
                yield KEEP_ALIVE
        if not finished:
            yield frame({"type": "finish"})
        yield DONE
    finally:
        fanout.leave(tail)
