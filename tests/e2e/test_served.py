"""The real server: `recoup-api serve` on a free port, driven over HTTP."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.served import KEY_LINE, Served


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[Served]:
    server = Served(tmp_path / "data", database_url)
    server.start()
    yield server
    server.stop()


def test_first_start_prints_a_working_key_and_the_api_answers(served: Served):
    match = KEY_LINE.search(served.output.read_text())
    assert match, served.output.read_text()
    headers = {"x-api-key": match.group(1)}
    with httpx.Client(base_url=served.base_url, headers=headers) as http:
        created = http.post("/api/sessions", json={"title": "e2e"})
        assert created.status_code == 200
        session_id = created.json()["session"]["id"]
        chat = http.post(f"/api/sessions/{session_id}/chats", json={"id": "client-chat"})
        assert chat.status_code == 200
        listed = http.get(f"/api/sessions/{session_id}/chats").json()
        assert [c["title"] for c in listed["chats"]] == ["New chat", "New chat"]
        assert listed["chats"][1]["id"] == "client-chat"
        assert http.get("/api/openapi.json").json()["openapi"] == "3.1.0"
        unauthenticated = httpx.get(f"{served.base_url}/api/sessions/{session_id}/chats")
        assert unauthenticated.status_code == 401
        assert unauthenticated.json()["status"] == "error"
        assert unauthenticated.headers["x-request-id"]
        http.get(f"/api/sessions/{session_id}/chats", headers={"x-request-id": "e2e-listed"})

    # Every request is logged once: time, level, logger, method, path, operation, status,
    # duration and request id, in the format `serve` configures.
    logged = [line for line in served.output.read_text().splitlines() if "e2e-listed" in line]
    assert len(logged) == 1, logged
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO recoup_api\.access GET "
        rf"/api/sessions/{session_id}/chats handlers\.session_chats\.list_session_chats 200 "
        r"\d+\.\dms e2e-listed",
        logged[0],
    ), logged[0]


def test_concurrent_creates_of_one_chat_id_over_http(served: Served):
    key = KEY_LINE.search(served.output.read_text()).group(1)  # type: ignore[union-attr]

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=served.base_url, headers={"x-api-key": key}) as http:
            session_id = (await http.post("/api/sessions")).json()["session"]["id"]
            url = f"/api/sessions/{session_id}/chats"
            responses = await asyncio.gather(
                *(http.post(url, json={"id": "raced"}) for _ in range(20))
            )
            listed = (await http.get(url)).json()["chats"]
            assert [c["id"] for c in listed].count("raced") == 1
            return list(responses)

    responses = asyncio.run(race())
    assert {r.status_code for r in responses} == {200}
    assert {r.json()["chat"]["id"] for r in responses} == {"raced"}


def test_concurrent_deletes_never_leave_a_session_without_a_chat(served: Served):
    key = KEY_LINE.search(served.output.read_text()).group(1)  # type: ignore[union-attr]

    async def race() -> tuple[list[int], list[dict[str, object]]]:
        async with httpx.AsyncClient(base_url=served.base_url, headers={"x-api-key": key}) as http:
            created = (await http.post("/api/sessions")).json()
            session_id, first = created["session"]["id"], created["chat"]["id"]
            url = f"/api/sessions/{session_id}/chats"
            second = (await http.post(url)).json()["chat"]["id"]
            responses = await asyncio.gather(
                http.delete(f"{url}/{first}"), http.delete(f"{url}/{second}")
            )
            return [r.status_code for r in responses], (await http.get(url)).json()["chats"]

    for _round in range(5):
        statuses, left = asyncio.run(race())
        assert sorted(statuses) == [200, 400]
        assert len(left) == 1


def test_cli_accounts_and_keys_work_against_the_served_database(served: Served):
    org_member = served.cli("accounts", "create", "--name", "Ann", "--org", "Label")
    artist = served.cli("accounts", "create", "--name", "Band", "--org", "Label", "--artist")
    assert artist["apiKey"] is None
    headers = {"x-api-key": str(org_member["apiKey"])}
    with httpx.Client(base_url=served.base_url, headers=headers) as http:
        room = http.post("/api/chats", json={"artistId": artist["id"], "topic": "Pulse"})
        assert room.status_code == 200, room.text
        assert room.json()["chat"]["artistId"] == artist["id"]
        second = served.cli("keys", "create", "--account", str(org_member["id"]))
        assert (
            http.get("/api/sessions", headers={"x-api-key": str(second["apiKey"])}).status_code
            == 200
        )
        served.cli("keys", "revoke", str(second["id"]))
        revoked = http.get("/api/sessions", headers={"x-api-key": str(second["apiKey"])})
        assert revoked.status_code == 401


def test_a_restart_keeps_data_and_prints_no_new_key(served: Served):
    key = KEY_LINE.search(served.output.read_text()).group(1)  # type: ignore[union-attr]
    created = httpx.post(f"{served.base_url}/api/sessions", headers={"x-api-key": key})
    session_id = created.json()["session"]["id"]
    served.stop()
    served.start()
    assert not KEY_LINE.search(served.output.read_text())
    again = httpx.get(f"{served.base_url}/api/sessions/{session_id}", headers={"x-api-key": key})
    assert again.status_code == 200
