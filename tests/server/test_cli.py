"""The CLI: processes starting together on an empty database make one account; a served app's
heap is frozen once it has started."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

from server import cli
from server.config import Settings
from storage import accounts, locks
from storage.db import Database


async def test_a_first_start_waits_for_one_in_progress_elsewhere(
    database_url: str, tmp_path: Path
) -> None:
    database = Database(database_url)
    await database.upgrade()
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    try:
        async with database.transaction() as tx:
            # Another process's first start, half done: its turn taken, no account found yet.
            await locks.take_turns(tx, name=cli.FIRST_START_LOCK)
            assert await accounts.count_accounts(tx) == 0
            starting = asyncio.create_task(cli._first_start(settings))
            # Time to migrate and count the accounts, were it not waiting for its turn.
            await asyncio.sleep(1)
            assert not starting.done()
            await accounts.create_account(tx, name="developer", kind="person")
        key = await asyncio.wait_for(starting, timeout=30)
        async with database.transaction() as tx:
            count = await accounts.count_accounts(tx)
    finally:
        await database.dispose()

    assert key is None
    assert count == 1


async def test_a_served_app_freezes_its_heap_once_started_and_passes_requests_on() -> None:
    seen: list[tuple[str, int]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["type"], gc.get_freeze_count()))
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "http.response.start", "status": 204, "headers": []})

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    served = cli.freeze_heap_after_startup(app)
    assert gc.get_freeze_count() == 0
    try:
        await served({"type": "lifespan"}, receive, send)
        frozen = gc.get_freeze_count()
        await served({"type": "http"}, receive, send)
    finally:
        gc.unfreeze()  # the test process starts many apps: keep its collector as it was

    assert seen == [("lifespan", 0), ("http", frozen)]
    assert frozen > 1000  # everything alive once started
    assert [message["type"] for message in sent] == [
        "lifespan.startup.complete",
        "http.response.start",
    ]
