"""Chat rooms: ``POST /api/chats`` and ``PATCH /api/chats``."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.api.conftest import MISSING_UUID, TIMESTAMP, UUID4, Api, room_error
from tests.conftest import Accounts, Caller


def _create(client: TestClient, caller: Caller, body: Any = None) -> Any:
    return client.post("/api/chats", headers=caller.headers, json=body)


def _room(api: Api, session_id: str) -> dict[str, Any]:
    """What the session routes show of a chat room: its session and its one chat."""
    response = api.client.get(f"/api/sessions/{session_id}", headers=api.caller.headers)
    assert response.status_code == 200, response.text
    return {"session": response.json()["session"], "chats": api.chats(session_id)["chats"]}


@pytest.mark.parametrize(
    ("body", "title"),
    [(None, "New chat"), ({}, "New chat"), ({"topic": "Pulse Feb 2"}, "Pulse Feb 2")],
    ids=["absent", "empty", "topic"],
)
def test_create_chat_room(as_alice: Api, body: Any, title: str) -> None:
    response = _create(as_alice.client, as_alice.caller, body)

    assert response.status_code == 200
    chat = response.json()["chat"]
    assert response.json() == {
        "status": "success",
        "chat": {
            "id": UUID4,
            "title": title,
            "accountId": as_alice.caller.id,
            "sessionId": UUID4,
            "updatedAt": TIMESTAMP,
            "artistId": None,
        },
    }
    room = _room(as_alice, chat["sessionId"])
    assert room["session"]["artistId"] is None
    assert [(c["id"], c["title"], c["updatedAt"]) for c in room["chats"]] == [
        (chat["id"], title, chat["updatedAt"])
    ]


def test_create_chat_room_for_an_artist_of_the_callers_org(
    client: TestClient, people: Accounts, new_org: Callable[[], str]
) -> None:
    label = new_org()
    manager, artist = people.person(org=label), people.artist(org=label)

    response = _create(client, manager, {"artistId": artist, "topic": "Tour"})

    assert response.status_code == 200
    chat = response.json()["chat"]
    assert (chat["artistId"], chat["accountId"]) == (artist, manager.id)
    assert _room(Api(client, manager), chat["sessionId"])["session"]["artistId"] == artist


@pytest.mark.parametrize(
    ("artist", "status", "message"),
    [
        ("other-org", 403, "You do not have access to this artist"),
        ("unknown", 404, "Artist not found"),
    ],
)
def test_create_chat_room_refuses_an_artist_out_of_reach(
    client: TestClient,
    people: Accounts,
    new_org: Callable[[], str],
    artist: str,
    status: int,
    message: str,
) -> None:
    manager = people.person(org=new_org())
    artist_id = people.artist(org=new_org()) if artist == "other-org" else MISSING_UUID

    response = _create(client, manager, {"artistId": artist_id})

    assert (response.status_code, response.json()) == (status, room_error(message))
    assert Api(client, manager).sessions()["sessions"] == []


def test_create_chat_room_with_its_own_chat_id_returns_it_unchanged(as_alice: Api) -> None:
    chat_id = str(uuid.uuid4())
    first = _create(as_alice.client, as_alice.caller, {"chatId": chat_id, "topic": "First"})

    again = _create(as_alice.client, as_alice.caller, {"chatId": chat_id, "topic": "Second"})

    assert first.status_code == 200
    assert first.json()["chat"]["id"] == chat_id
    assert (again.status_code, again.json()) == (200, first.json())
    assert len(as_alice.sessions()["sessions"]) == 1


def test_create_chat_room_with_another_accounts_chat_id_is_400(as_alice: Api, as_bob: Api) -> None:
    chat_id = str(uuid.uuid4())
    bobs = _create(as_bob.client, as_bob.caller, {"chatId": chat_id, "topic": "Bob's"}).json()
    bob_before = as_bob.snapshot()

    response = _create(as_alice.client, as_alice.caller, {"chatId": chat_id, "topic": "Mine"})

    assert (response.status_code, response.json()) == (400, room_error("chatId is already in use"))
    assert as_bob.snapshot() == bob_before
    assert _room(as_bob, bobs["chat"]["sessionId"])["chats"][0]["title"] == "Bob's"
    assert as_alice.sessions()["sessions"] == []


def test_create_chat_room_for_an_org_mate(
    client: TestClient, people: Accounts, new_org: Callable[[], str]
) -> None:
    label = new_org()
    manager, mate = people.person(org=label), people.person(org=label)

    response = _create(client, manager, {"accountId": mate.id, "topic": "For you"})

    assert response.status_code == 200
    chat = response.json()["chat"]
    assert chat["accountId"] == mate.id
    assert _room(Api(client, mate), chat["sessionId"])["chats"][0]["title"] == "For you"
    owned_by_mate = client.get(f"/api/sessions/{chat['sessionId']}", headers=manager.headers)
    assert owned_by_mate.status_code == 403
    assert Api(client, manager).sessions()["sessions"] == []


@pytest.mark.parametrize("target", ["stranger", "unknown"])
def test_create_chat_room_for_an_account_out_of_reach_is_403(
    client: TestClient, alice: Caller, bob: Caller, target: str
) -> None:
    account_id = bob.id if target == "stranger" else MISSING_UUID

    response = _create(client, alice, {"accountId": account_id})

    assert (response.status_code, response.json()) == (
        403,
        room_error("You do not have access to the specified accountId"),
    )
    assert Api(client, alice).sessions()["sessions"] == []
    assert Api(client, bob).sessions()["sessions"] == []


def test_create_chat_room_for_oneself_by_account_id(client: TestClient, alice: Caller) -> None:
    response = _create(client, alice, {"accountId": alice.id})

    assert response.status_code == 200
    assert response.json()["chat"]["accountId"] == alice.id


@pytest.mark.parametrize(
    "body",
    [{"chatId": "nope"}, {"artistId": 5}, {"accountId": "me"}, {"topic": ["a"]}],
)
def test_create_chat_room_invalid_body_is_400(as_alice: Api, body: Any) -> None:
    response = _create(as_alice.client, as_alice.caller, body)

    assert (response.status_code, response.json()) == (400, room_error())
    assert as_alice.sessions()["sessions"] == []


def _rename(client: TestClient, caller: Caller, body: Any) -> Any:
    return client.patch("/api/chats", headers=caller.headers, json=body)


def test_rename_chat_room(as_alice: Api) -> None:
    created = _create(as_alice.client, as_alice.caller, {"topic": "Old"}).json()["chat"]

    response = _rename(
        as_alice.client, as_alice.caller, {"chatId": created["id"], "topic": "  New topic "}
    )

    assert response.status_code == 200
    assert response.json() == {
        "status": "success",
        "chat": {**created, "title": "New topic", "updatedAt": TIMESTAMP},
    }
    assert response.json()["chat"]["updatedAt"] >= created["updatedAt"]
    assert _room(as_alice, created["sessionId"])["chats"][0]["title"] == "New topic"


@pytest.mark.parametrize(
    "body",
    [
        {"topic": "x"},
        {"chatId": "MISSING"},
        {"chatId": "CHAT", "topic": "   "},
        {"chatId": "CHAT", "topic": ""},
        {"chatId": "not-a-uuid", "topic": "x"},
        {"chatId": "CHAT", "topic": "x", "pinned": True},
    ],
    ids=["no-chat-id", "no-topic", "blank-topic", "empty-topic", "bad-uuid", "unknown-key"],
)
def test_rename_chat_room_invalid_body_is_400(as_alice: Api, body: dict[str, Any]) -> None:
    created = _create(as_alice.client, as_alice.caller, {"topic": "Old"}).json()["chat"]
    ids = {"CHAT": created["id"], "MISSING": MISSING_UUID}
    body = {key: ids.get(value, value) for key, value in body.items()}
    before = as_alice.snapshot()

    response = _rename(as_alice.client, as_alice.caller, body)

    assert (response.status_code, response.json()) == (400, room_error())
    assert as_alice.snapshot() == before


def test_rename_another_accounts_chat_room_is_403(as_alice: Api, as_bob: Api) -> None:
    bobs = _create(as_bob.client, as_bob.caller, {"topic": "Bob's"}).json()["chat"]
    before = as_bob.snapshot()

    response = _rename(as_alice.client, as_alice.caller, {"chatId": bobs["id"], "topic": "Mine"})

    assert (response.status_code, response.json()) == (
        403,
        room_error("You do not have access to this chat"),
    )
    assert as_bob.snapshot() == before


def test_rename_a_missing_chat_room_is_404(client: TestClient, alice: Caller) -> None:
    response = _rename(client, alice, {"chatId": MISSING_UUID, "topic": "x"})

    assert (response.status_code, response.json()) == (404, room_error("Chat not found"))
