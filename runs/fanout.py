"""One reader of a run's stream per process, its chunks fanned out to every client following it.

The first client to follow a run starts the run's *tail*: one task that reads the run's durable
stream from its start, in batches, as :mod:`runs.notify` wakes it, and keeps every chunk it read
(encoded once, as an SSE frame) for as long as it lives. Each client replays from that list at
its own offset, then waits on the tail for more: a thousand clients of one run cost one read per
chunk, not a thousand. The tail ends as DBOS's own reader does: at the stream's end marker, or
once the workflow has ended and nothing more is written. The last client to leave drops the
tail (stopping its read if the run is still going); the next one starts a new tail.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dbos._dbos import _get_dbos_instance
from dbos._serialization import deserialize_value
from dbos._sys_db import is_stream_closed_sentinel, workflow_is_active

from runs import notify
from runs.workflow import STREAM_KEY

logger = logging.getLogger("recoup_api.runs")

# Chunks per read: a replay of a long run takes a few round trips, a live chunk one.
_BATCH = 500


@dataclass(frozen=True)
class Frame:
    """A chunk as sent: its SSE frame, and whether it is the stream's ``finish``."""

    data: bytes
    finish: bool


@dataclass(eq=False)
class Tail:
    """The frames of one run's stream read so far in this process, and who follows them."""

    run_id: str
    loop: asyncio.AbstractEventLoop
    encode: Callable[[dict[str, Any]], bytes]
    frames: list[Frame] = field(default_factory=list)
    ended: bool = False
    followers: int = 0
    task: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def changed(self) -> asyncio.Event:
        """Set at the next change (frames added, or the end); take it before waiting."""
        return self._changed

    def _announce(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


_tails: dict[str, Tail] = {}


def join(run_id: str, *, encode: Callable[[dict[str, Any]], bytes]) -> Tail:
    """Follow the run: its tail in this process, started if none is.

    ``encode`` makes a chunk's frame, once per chunk whatever the followers.
    """
    loop = asyncio.get_running_loop()
    tail = _tails.get(run_id)
    if tail is None or tail.loop is not loop:
        tail = _tails[run_id] = Tail(run_id=run_id, loop=loop, encode=encode)
        tail.task = loop.create_task(_follow(tail), name=f"stream tail {run_id}")
    tail.followers += 1
    return tail


def leave(tail: Tail) -> None:
    """Stop following; the last follower to leave drops the tail (and its read)."""
    tail.followers -= 1
    if tail.followers > 0:
        return
    if _tails.get(tail.run_id) is tail:
        del _tails[tail.run_id]
    if tail.task is not None:
        tail.task.cancel()


def tails() -> dict[str, Tail]:
    """The tails of this process, by run id."""
    return dict(_tails)


async def _follow(tail: Tail) -> None:
    try:
        sys_db = _get_dbos_instance()._sys_db
        with notify.listening(tail.run_id) as (wake, reread_s):
            final_read = False
            while True:
                # Cleared before the read: a write announced during it leaves the event set.
                wake.clear()
                status, chunks, closed = await asyncio.to_thread(
                    read_chunks, sys_db, tail.run_id, len(tail.frames)
                )
                if chunks:
                    for chunk in chunks:
                        tail.frames.append(Frame(tail.encode(chunk), chunk.get("type") == "finish"))
                    tail._announce()
                if closed:
                    return
                if status is None:
                    logger.warning("run %s: stream read failed: no such workflow", tail.run_id)
                    return
                if not workflow_is_active(status):
                    # Cancelling sets the status while the run may still write: drain to the
                    # first empty offset before ending.
                    if final_read and not chunks:
                        return
                    final_read = True
                    continue
                if len(chunks) < _BATCH:
                    await wake.wait_async(timeout=reread_s)
    except Exception as exc:  # the followers end their streams as on any end
        logger.warning("run %s: stream read failed: %r", tail.run_id, exc)
    finally:
        tail.ended = True
        tail._announce()


def read_chunks(sys_db: Any, run_id: str, offset: int) -> tuple[str | None, list[Any], bool]:
    """The run's workflow status, its chunks from ``offset`` on, and whether the stream closed.

    One round trip (DBOS reads the status and the values in one statement); runs on a thread.
    """
    status, rows = sys_db.read_stream_values(run_id, STREAM_KEY, offset, _BATCH)
    chunks: list[Any] = []
    for serialized, serialization in rows:
        value = deserialize_value(serialized, serialization, sys_db.serializer)
        if is_stream_closed_sentinel(value):
            return status, chunks, True
        chunks.append(value)
    return status, chunks, False
