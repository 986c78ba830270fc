"""A run stream written on command, for the live-stream tests: in this process or another one.

``gated_writer`` appends each message sent to it (``DBOS.send``, topic :data:`TOPIC`) to its
stream under the runs' stream key, and closes the stream on :data:`END`. Run as a module, it is
the writer of another process: ``python -m tests.runs.stream_writer SYSTEM_DATABASE_URL RUN_ID``
launches DBOS (give it its own ``DBOS__VMID``), starts the writer under ``RUN_ID``, prints
``started`` and exits when the writer has ended.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from dbos import DBOS, SetWorkflowID

from runs.runtime import APP_NAME
from runs.workflow import STREAM_KEY

TOPIC = "chunk"
END = "end"


@DBOS.workflow(name="tests.gated_writer")
async def gated_writer() -> None:
    """Write each chunk sent to the workflow to its stream, until ``END`` (or a minute of quiet)."""
    while True:
        message: Any = await DBOS.recv_async(TOPIC, timeout_seconds=60)
        if message is None or message == END:
            break
        await DBOS.write_stream_async(STREAM_KEY, message)
    await DBOS.close_stream_async(STREAM_KEY)


async def _serve(system_database_url: str, run_id: str) -> None:
    DBOS(
        config={
            "name": APP_NAME,
            "system_database_url": system_database_url,
            "log_level": "WARNING",
        }
    )
    await asyncio.to_thread(DBOS.launch)
    try:
        with SetWorkflowID(run_id):
            handle = await DBOS.start_workflow_async(gated_writer)
        print("started", flush=True)
        await handle.get_result()
    finally:
        await asyncio.to_thread(DBOS.destroy)


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1], sys.argv[2]))
