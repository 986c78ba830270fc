"""``recoup-api serve`` that also logs when each stream chunk was written (benchmark only).

The run writes its chunks with ``DBOS.write_stream_async`` (``runs/workflow.py``). This entry
point wraps that call, in this process only, so that once the write has returned (the chunk is
committed and readable) one line ``<run id> <chunk index> <time.time()>`` is appended to the file
named by ``RECOUP_BENCH_WRITE_LOG``. The client runs on the same machine and stamps each frame it
receives with the same clock, so receive time minus write time is the live delay of that chunk.
Nothing else changes: the app, its options and uvicorn are those of ``recoup-api serve``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

from dbos import DBOS

from runs.workflow import STREAM_KEY
from server.cli import main as cli_main

WRITE_LOG_ENV = "RECOUP_BENCH_WRITE_LOG"


def install(path: str) -> None:
    """Stamp every chunk the runs of this process write to their stream."""
    original = DBOS.write_stream_async
    counts: dict[str, int] = {}
    lock = threading.Lock()
    log = open(path, "a", buffering=1)  # noqa: SIM115 - open for the life of the server

    async def stamped(key: str, value: Any, **kwargs: Any) -> None:
        await original(key, value, **kwargs)
        written = time.time()
        run_id = DBOS.workflow_id
        if key != STREAM_KEY or run_id is None:
            return
        with lock:
            index = counts.get(run_id, 0)
            counts[run_id] = index + 1
            log.write(f"{run_id} {index} {written:.6f}\n")

    DBOS.write_stream_async = staticmethod(stamped)  # type: ignore[assignment,method-assign]


def main() -> int:
    install(os.environ[WRITE_LOG_ENV])
    return cli_main(["serve"])


if __name__ == "__main__":
    sys.exit(main())
