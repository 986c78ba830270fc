"""How live stream readers learn of new chunks: notified on PostgreSQL, polling on SQLite.

On PostgreSQL DBOS does the notifying: each committed stream write is pushed as a ``NOTIFY``
(coalesced every 10 ms by its notifier thread), and one ``LISTEN`` connection per process
(reconnected a second after it drops) wakes the waiting readers of that stream, whichever process
wrote it. A reader then holds no connection while it waits. What DBOS leaves to each reader is
the re-read in case a notification is lost, and its end when a run is cancelled (which notifies
nobody); done by each of a thousand readers every second, that alone keeps a core busy. So one
safety poll per process does it instead: every :data:`SAFETY_POLL_S`, one query reads the last
offset and workflow status of every run that has waiting readers, and wakes the readers of each
run whose offset or status changed. Each reader's own re-read is left as a rare backstop.

SQLite has no notifications, but its runs execute in the process that serves their readers: the
workflow wakes the run's reader after each chunk it writes (:mod:`runs.wakeups`), and the reader
re-reads on its own every :data:`SQLITE_POLL_S` only for what nothing announced (a run
cancelled or failed outside a step).

Either way each process has one reader per run, whatever the clients following it
(:mod:`runs.fanout`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from dbos._dbos import _get_dbos_instance
from dbos._utils import LoopAwareEvent

from runs import wakeups
from runs.workflow import STREAM_KEY

logger = logging.getLogger("recoup_api.runs")

# SQLite: how often a waiting reader re-reads for what no wake-up announced (cancelled runs).
SQLITE_POLL_S = 0.5
# PostgreSQL: how often the process's safety poll looks for what no notification announced.
SAFETY_POLL_S = 1.0
# PostgreSQL: how often each reader re-reads on its own, should the safety poll itself stall.
READER_POLL_S = 30.0
# Run ids per safety-poll query, so that the statement stays small whatever the readers.
_BATCH = 500

_UNSEEN = object()


def notifies_stream_writes() -> bool:
    """Whether DBOS wakes stream readers with notifications (PostgreSQL) rather than polling."""
    sys_db = _get_dbos_instance()._sys_db
    return sys_db.engine.dialect.name == "postgresql" and bool(sys_db.use_listen_notify)


@contextmanager
def listening(run_id: str) -> Iterator[tuple[LoopAwareEvent, float]]:
    """A reader's time on a run's stream: the event set when the stream may have changed, and
    how often the reader should re-read on its own.

    On PostgreSQL DBOS's listener and the process's safety poll (run as long as one reader
    listens) set the event; on SQLite the run's workflow does (:mod:`runs.wakeups`).
    """
    if not notifies_stream_writes():
        event = LoopAwareEvent()
        with wakeups.registered(run_id, event):
            yield event, SQLITE_POLL_S
        return
    sys_db = _get_dbos_instance()._sys_db
    event, payload = sys_db.register_stream_listener(run_id, STREAM_KEY)
    poll = _SafetyPoll.current()
    poll.readers += 1
    poll.keep_running()
    try:
        yield event, READER_POLL_S
    finally:
        poll.readers -= 1
        sys_db.unregister_stream_listener(payload, event)


@dataclass
class _SafetyPoll:
    """The safety poll of one DBOS instance, run on one event loop while it has readers."""

    sys_db: Any
    loop: asyncio.AbstractEventLoop
    readers: int = 0
    task: asyncio.Task[None] | None = None
    # Each watched run's last (status, last offset), or None when it has no workflow.
    seen: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def current(cls) -> _SafetyPoll:
        global _poll
        sys_db, loop = _get_dbos_instance()._sys_db, asyncio.get_running_loop()
        if _poll is None or _poll.sys_db is not sys_db or _poll.loop is not loop:
            _poll = cls(sys_db=sys_db, loop=loop)
        return _poll

    def keep_running(self) -> None:
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(self._run())

    async def _run(self) -> None:
        # Checked on the loop that counts readers, so a reader arriving is never missed.
        while self.readers and self.sys_db._run_background_processes:
            await asyncio.sleep(SAFETY_POLL_S)
            try:
                await self._poll_once()
            except Exception as exc:  # the next round retries; readers have their backstop
                logger.warning("stream safety poll failed: %r", exc)
        self.seen.clear()

    async def _poll_once(self) -> None:
        waiting = {
            components[0]: signal
            for _payload, components, signal in self.sys_db.streams_map.snapshot()
            if components[1] == STREAM_KEY
        }
        states = await asyncio.to_thread(self._states, list(waiting))
        for run_id, signal in waiting.items():
            # A run seen for the first time is woken too: a notification may be lost before.
            if self.seen.get(run_id, _UNSEEN) != states.get(run_id):
                signal.set()
        self.seen = {run_id: states.get(run_id) for run_id in waiting}

    def _states(self, run_ids: list[str]) -> dict[str, tuple[str, int | None]]:
        status, streams = self.sys_db.tables.workflow_status, self.sys_db.tables.streams
        last_offset = (
            sa.select(sa.func.max(streams.c.offset))
            .where(streams.c.workflow_uuid == status.c.workflow_uuid, streams.c.key == STREAM_KEY)
            .scalar_subquery()
        )
        states: dict[str, tuple[str, int | None]] = {}
        with self.sys_db.engine.begin() as connection:
            for start in range(0, len(run_ids), _BATCH):
                rows = connection.execute(
                    sa.select(status.c.workflow_uuid, status.c.status, last_offset).where(
                        status.c.workflow_uuid.in_(run_ids[start : start + _BATCH])
                    )
                )
                states.update((row[0], (row[1], row[2])) for row in rows)
        return states


_poll: _SafetyPoll | None = None
