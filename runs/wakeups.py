"""In-process wake-ups of a run's stream reader: SQLite's stand-in for a notification.

On SQLite a run executes in the process that serves its readers, so the workflow announces each
chunk it writes (and the stream's end) straight to the waiting reader of that run, whichever
thread or event loop the step runs on. Kept apart from :mod:`runs.notify`, which reads the
workflow's stream key, so that the workflow can import it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from dbos._utils import LoopAwareEvent

_lock = threading.Lock()
_events: dict[str, set[LoopAwareEvent]] = {}


@contextmanager
def registered(run_id: str, event: LoopAwareEvent) -> Iterator[None]:
    """Have ``event`` set by every :func:`announce` of ``run_id`` while the block runs."""
    with _lock:
        _events.setdefault(run_id, set()).add(event)
    try:
        yield
    finally:
        with _lock:
            waiting = _events.get(run_id, set())
            waiting.discard(event)
            if not waiting:
                _events.pop(run_id, None)


def announce(run_id: str) -> None:
    """The run's stream changed: wake its readers in this process (thread-safe)."""
    with _lock:
        waiting = list(_events.get(run_id, ()))
    for event in waiting:
        event.set()  # wakes async waiters through their own loop's call_soon_threadsafe
