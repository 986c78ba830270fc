"""Two `recoup-api serve` processes on one PostgreSQL database: creation stays race-safe.

In one process SQLite serializes writers; across processes only the database can, so the
unique chat id (and the retry after losing on it) is what these tests exercise.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from storage.db import Database
from storage.models import Chat, Session
from tests.e2e.served import Served
from tests.postgres import PostgresCluster

RACERS = 20


class Pair:
    """Two servers over one database, and the developer key the first one created."""

    def __init__(self, url: str, first: Served, second: Served) -> None:
        self.url = url
        self.servers = (first, second)
        self.key = first.first_start_key()

    def race(self, method: str, path: str, body: dict[str, str]) -> list[httpx.Response]:
        """``RACERS`` identical requests at once, alternating between the two servers."""

        async def go() -> list[httpx.Response]:
            clients = [
                httpx.AsyncClient(base_url=s.base_url, headers={"x-api-key": self.key}, timeout=30)
                for s in self.servers
            ]
            try:
                targets = itertools.islice(itertools.cycle(clients), RACERS)
                return list(
                    await asyncio.gather(*(c.request(method, path, json=body) for c in targets))
                )
            finally:
                for client in clients:
                    await client.aclose()

        return asyncio.run(go())

    def count(self, statement):  # type: ignore[no-untyped-def]
        """A count read straight from the database, not through either server."""

        async def go() -> int:
            database = Database(self.url)
            try:
                async with database.transaction() as tx:
                    return int(await tx.scalar(statement) or 0)
            finally:
                await database.dispose()

        return asyncio.run(go())


@pytest.fixture(scope="module")
def pair(postgres: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Shared by the tests below, which use ids of their own."""
    tmp_path = tmp_path_factory.mktemp("pair")
    with postgres.database() as url:
        # One after the other: the first creates the developer key, the second sees it exists.
        first = Served(tmp_path / "one", url, name="one")
        second = Served(tmp_path / "two", url, name="two")
        first.start()
        try:
            second.start()
            try:
                yield Pair(url, first, second)
            finally:
                second.stop()
        finally:
            first.stop()


def test_one_new_chat_id_raced_across_two_processes_makes_one_row(pair: Pair):
    created = httpx.post(
        f"{pair.servers[0].base_url}/api/sessions", headers={"x-api-key": pair.key}
    )
    session_id = created.json()["session"]["id"]
    for round_ in range(3):
        chat_id = f"raced-{round_}"
        responses = pair.race("POST", f"/api/sessions/{session_id}/chats", {"id": chat_id})
        assert [r.status_code for r in responses] == [200] * RACERS, [r.text for r in responses]
        assert {r.json()["chat"]["id"] for r in responses} == {chat_id}
        assert len({r.json()["chat"]["createdAt"] for r in responses}) == 1
        assert pair.count(select(func.count()).select_from(Chat).where(Chat.id == chat_id)) == 1
    assert (
        pair.count(select(func.count()).select_from(Chat).where(Chat.session_id == session_id)) == 4
    )


def test_one_chat_room_id_raced_across_two_processes_makes_one_chat(pair: Pair):
    sessions_before = pair.count(select(func.count()).select_from(Session))
    for _round in range(3):
        chat_id = str(uuid.uuid4())
        responses = pair.race("POST", "/api/chats", {"chatId": chat_id, "topic": "Race"})
        assert [r.status_code for r in responses] == [200] * RACERS, [r.text for r in responses]
        rooms = [r.json()["chat"] for r in responses]
        assert {room["id"] for room in rooms} == {chat_id}
        assert len({room["sessionId"] for room in rooms}) == 1
        assert pair.count(select(func.count()).select_from(Chat).where(Chat.id == chat_id)) == 1
    # The losers' sessions were rolled back with their chats: one session per room.
    assert pair.count(select(func.count()).select_from(Session)) == sessions_before + 3
