"""A run's durable chunk stream, read as AI SDK UI message stream frames (Server-Sent Events).

Frames are ``data: <compact JSON>\\n\\n``; the last is ``data: [DONE]``. A stream whose run ended
without ``finish`` (cancelled, or failed outside a step) still ends with ``finish``, which
clients that reconnect on a missing ``finish`` need. Comment frames keep quiet streams alive.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from dbos import DBOS
from dbos._dbos import _get_dbos_instance
from dbos._error import DBOSException

from runs.workflow import STREAM_KEY

logger = logging.getLogger("recoup_api.runs")

HEADERS = {
    "cache-control": "no-cache",
    "connection": "keep-alive",
    "x-vercel-ai-ui-message-stream": "v1",
    "x-accel-buffering": "no",
}
MEDIA_TYPE = "text/event-stream"
DONE = b"data: [DONE]\n\n"
KEEP_ALIVE = b": keep-alive\n\n"
POLL_INTERVAL_S = 0.01


def frame(chunk: dict[str, Any]) -> bytes:
    """One SSE frame; NaN can never be sent (the client's parser rejects it)."""
    text = json.dumps(chunk, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return f"data: {text}\n\n".encode()


def _count_chunks(run_id: str) -> int:
    # DBOS has no public length query; its system database keeps one row per chunk.
    sys_db = _get_dbos_instance()._sys_db
    streams = sys_db.tables.streams
    with sys_db.engine.begin() as connection:
        count = connection.execute(
            sa.select(sa.func.count())
            .select_from(streams)
            .where(streams.c.workflow_uuid == run_id, streams.c.key == STREAM_KEY)
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

    Ends when the run's workflow ends. Closing the iterator (a client gone) leaves the run alone.
    """
    chunks = DBOS.read_stream_async(
        run_id, STREAM_KEY, offset=offset, polling_interval_sec=POLL_INTERVAL_S
    ).__aiter__()
    finished = False
    pending: asyncio.Future[Any] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(chunks.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=keep_alive_s)
            if not done:
                yield KEEP_ALIVE
                continue
            next_chunk, pending = pending, None
            try:
                chunk = next_chunk.result()
            except StopAsyncIteration:
                break
            except DBOSException as exc:
                logger.warning("run %s: stream read failed: %r", run_id, exc)
                break
            finished = chunk.get("type") == "finish"
            yield frame(chunk)
        if not finished:
            yield frame({"type": "finish"})
        yield DONE
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.wait({pending})
        await chunks.aclose()  # type: ignore[attr-defined]
