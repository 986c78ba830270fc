"""SQLite: a run wakes its stream's reader itself after each chunk; the poll is only a safety net.

The reader's own re-read is set to a minute, far beyond every wait below: a run whose chunks
reach its reader in time was announced chunk by chunk (runs/wakeups.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from runs import notify
from server.app import create_app
from server.config import Settings
from tests.conftest import Accounts, fresh_database
from tests.runs.conftest import RunChat, assert_valid_stream, sandboxed_chat

SLOW_POLL_S = 60.0
WAIT_S = 15.0  # bound on the whole run's stream: far below one poll


@pytest.fixture
def sqlite_chat(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RunChat]:
    monkeypatch.setattr(notify, "SQLITE_POLL_S", SLOW_POLL_S)
    monkeypatch.setenv("RECOUP_TEST_MODEL_DELAY", "0.05")
    with fresh_database(request, "sqlite", tmp_path / "data") as url:
        settings = Settings(data_dir=tmp_path / "data", database_url=url, stream_keep_alive_s=1.0)
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            assert not notify.notifies_stream_writes()
            chat = sandboxed_chat(client, Accounts(settings).person(name="alice"))
            chat.set_model("test/slow")
            yield chat


def test_each_chunk_reaches_a_resumed_reader_without_its_poll(sqlite_chat: RunChat) -> None:
    original = sqlite_chat.stream_in_background("POST", "/api/chat", json=sqlite_chat.body())
    original.wait_for("text-delta")
    resumed = sqlite_chat.stream_in_background("GET", f"/api/chat/{sqlite_chat.chat_id}/stream")

    # Each live chunk needs a wake-up: without the run's, the first would wait for the poll.
    resumed.join(timeout=WAIT_S)
    original.join(timeout=WAIT_S)

    assert resumed.status == 200
    assert resumed.frames[-1] == "data: [DONE]"
    assert resumed.chunks == original.chunks
    assert_valid_stream(resumed.chunks)


def test_stopping_a_run_ends_its_readers_without_their_poll(sqlite_chat: RunChat) -> None:
    original = sqlite_chat.stream_in_background("POST", "/api/chat", json=sqlite_chat.body())
    original.wait_for("text-delta")

    stopped = sqlite_chat.client.post(
        f"/api/chat/{sqlite_chat.chat_id}/stop", headers=sqlite_chat.caller.headers
    )

    assert stopped.json() == {"success": True, "stopped": True}
    original.join(timeout=WAIT_S)
    assert original.chunks[-1] == {"type": "finish"}
    assert original.frames[-1] == "data: [DONE]"
