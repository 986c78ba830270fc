"""``/api/sessions/{sessionId}/chats[/{chatId}[/read]]``."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from storage import chats
from storage.models import ChatMessage, utc_now
from tests.api.conftest import (
    MISSING_UUID,
    TIMESTAMP,
    UUID4,
    Api,
    call,
    fresh_id,
    session_error,
    set_account,
    set_chat,
)
from tests.conftest import Accounts, Caller

CHAT_OPERATIONS = [
    "session_chats.get_session_chat",
    "session_chats.update_session_chat",
    "session_chats.delete_session_chat",
    "session_chats.mark_session_chat_read",
]
SESSION_SCOPED = [
    "session_chats.create_session_chat",
    "session_chats.list_session_chats",
    *CHAT_OPERATIONS,
]


@pytest.fixture
def room(as_alice: Api) -> dict[str, Any]:
    """Alice's session with two chats, so that either may be deleted."""
    created = as_alice.new_session()
    second = as_alice.new_chat(created["session"]["id"], fresh_id("second"))
    return {"session": created["session"], "chat": created["chat"], "second": second}


def _summary(api: Api, session_id: str, chat_id: str) -> dict[str, Any]:
    return next(c for c in api.chats(session_id)["chats"] if c["id"] == chat_id)


@pytest.mark.parametrize(
    "send",
    [
        {},
        {"json": {}},
        {"content": b"", "headers": {"content-type": "application/json"}},
    ],
    ids=["absent", "empty-object", "empty-bytes"],
)
def test_create_chat_generates_an_id(
    client: TestClient, as_alice: Api, send: dict[str, Any]
) -> None:
    session_id = as_alice.new_session()["session"]["id"]
    headers = {**as_alice.caller.headers, **send.pop("headers", {})}

    response = client.post(f"/api/sessions/{session_id}/chats", headers=headers, **send)

    assert response.status_code == 200
    chat = response.json()["chat"]
    assert response.json() == {
        "chat": {
            "id": UUID4,
            "sessionId": session_id,
            "title": "New chat",
            "modelId": "recoup/offline",
            "activeStreamId": None,
            "lastAssistantMessageAt": None,
            "createdAt": TIMESTAMP,
            "updatedAt": TIMESTAMP,
        }
    }
    assert chat["id"] in [c["id"] for c in as_alice.chats(session_id)["chats"]]


def test_create_chat_with_a_client_id_is_idempotent_in_its_session(
    client: TestClient, as_alice: Api
) -> None:
    session_id = as_alice.new_session()["session"]["id"]
    chat_id = fresh_id("client-chat")
    created = as_alice.new_chat(session_id, chat_id)
    renamed = client.patch(
        f"/api/sessions/{session_id}/chats/{chat_id}",
        headers=as_alice.caller.headers,
        json={"title": "Kept"},
    ).json()["chat"]

    again = client.post(
        f"/api/sessions/{session_id}/chats",
        headers=as_alice.caller.headers,
        json={"id": chat_id},
    )

    assert created["id"] == chat_id
    assert (again.status_code, again.json()) == (200, {"chat": renamed})
    listed = [c["id"] for c in as_alice.chats(session_id)["chats"]]
    assert listed.count(chat_id) == 1
    assert len(listed) == 2


@pytest.mark.parametrize("owner", ["same-account", "other-account"])
def test_create_chat_with_an_id_of_another_session_is_409(
    client: TestClient, as_alice: Api, as_bob: Api, owner: str
) -> None:
    holder = as_alice if owner == "same-account" else as_bob
    holder_session = holder.new_session()["session"]["id"]
    taken = holder.new_chat(holder_session, fresh_id("taken"))
    session_id = as_alice.new_session()["session"]["id"]
    before = as_alice.chats(session_id)

    response = client.post(
        f"/api/sessions/{session_id}/chats",
        headers=as_alice.caller.headers,
        json={"id": taken["id"]},
    )

    assert (response.status_code, response.json()) == (409, {"error": "Chat ID conflict"})
    assert as_alice.chats(session_id) == before
    assert _summary(holder, holder_session, taken["id"])["updatedAt"] == taken["updatedAt"]


@pytest.mark.parametrize("chat_id", ["", 5, None, ["a"], {"id": "a"}])
def test_create_chat_with_an_invalid_id_is_400(
    client: TestClient, as_alice: Api, chat_id: Any
) -> None:
    session_id = as_alice.new_session()["session"]["id"]
    before = as_alice.chats(session_id)

    response = client.post(
        f"/api/sessions/{session_id}/chats", headers=as_alice.caller.headers, json={"id": chat_id}
    )

    assert (response.status_code, response.json()) == (400, {"error": "Invalid chat id"})
    assert as_alice.chats(session_id) == before


def test_list_chats_oldest_first_then_by_id(people: Accounts, as_alice: Api) -> None:
    created = as_alice.new_session()
    session_id, first = created["session"]["id"], created["chat"]["id"]
    base = fresh_id("chat")
    a, b, c = (as_alice.new_chat(session_id, f"{base}-{n}")["id"] for n in "abc")
    start = utc_now() - timedelta(hours=1)
    for minutes, chat_id in [(0, first), (1, c), (2, b), (2, a)]:
        set_chat(people, chat_id, created_at=start + timedelta(minutes=minutes))

    listed = as_alice.chats(session_id)

    assert [chat["id"] for chat in listed["chats"]] == [first, c, a, b]
    assert listed["chats"][0] == {
        **created["chat"],
        "createdAt": TIMESTAMP,
        "hasUnread": False,
        "isStreaming": False,
    }
    assert listed["defaultModelId"] == "recoup/offline"


def test_default_model_is_the_accounts_preference(people: Accounts, as_alice: Api) -> None:
    set_account(people, as_alice.caller.id, default_model_id="openai/gpt-5.4")
    session_id = as_alice.new_session()["session"]["id"]

    listed = as_alice.chats(session_id)

    assert listed["defaultModelId"] == "openai/gpt-5.4"
    assert [c["modelId"] for c in listed["chats"]] == ["openai/gpt-5.4"]


def test_has_unread_follows_assistant_messages_and_reads(
    client: TestClient, people: Accounts, as_alice: Api, room: dict[str, Any]
) -> None:
    session_id, chat_id = room["session"]["id"], room["chat"]["id"]
    read_path = f"/api/sessions/{session_id}/chats/{chat_id}/read"

    assert _summary(as_alice, session_id, chat_id)["hasUnread"] is False
    set_chat(people, chat_id, last_assistant_message_at=utc_now() - timedelta(minutes=1))
    assert _summary(as_alice, session_id, chat_id)["hasUnread"] is True
    assert _summary(as_alice, session_id, room["second"]["id"])["hasUnread"] is False

    read = client.post(read_path, headers=as_alice.caller.headers)
    assert (read.status_code, read.json()) == (200, {"success": True})
    assert _summary(as_alice, session_id, chat_id)["hasUnread"] is False

    set_chat(people, chat_id, last_assistant_message_at=utc_now() + timedelta(minutes=1))
    assert _summary(as_alice, session_id, chat_id)["hasUnread"] is True


def test_has_unread_needs_a_strictly_later_assistant_message(
    people: Accounts, as_alice: Api, room: dict[str, Any]
) -> None:
    session_id, chat_id = room["session"]["id"], room["chat"]["id"]
    moment = utc_now() - timedelta(minutes=5)
    set_chat(people, chat_id, last_assistant_message_at=moment)

    async def read_at_the_same_moment(tx):  # type: ignore[no-untyped-def]
        await chats.mark_chat_read(tx, chat_id=chat_id, account_id=as_alice.caller.id, at=moment)

    people.run(read_at_the_same_moment)

    assert _summary(as_alice, session_id, chat_id)["hasUnread"] is False


def test_streaming_chat_is_flagged(
    client: TestClient, people: Accounts, as_alice: Api, room: dict[str, Any]
) -> None:
    session_id, chat_id = room["session"]["id"], room["chat"]["id"]
    set_chat(people, chat_id, active_stream_id="wrun_01")

    summary = _summary(as_alice, session_id, chat_id)
    detail = client.get(
        f"/api/sessions/{session_id}/chats/{chat_id}", headers=as_alice.caller.headers
    )

    assert (summary["isStreaming"], summary["activeStreamId"]) == (True, "wrun_01")
    assert _summary(as_alice, session_id, room["second"]["id"])["isStreaming"] is False
    assert detail.json()["isStreaming"] is True
    assert detail.json()["chat"]["activeStreamId"] == "wrun_01"


def test_get_chat_with_its_messages_oldest_first(
    client: TestClient, people: Accounts, as_alice: Api, room: dict[str, Any]
) -> None:
    session_id, chat_id = room["session"]["id"], room["chat"]["id"]
    start = utc_now() - timedelta(minutes=10)
    parts = [{"type": "text", "text": "hi"}]

    async def add_messages(tx):  # type: ignore[no-untyped-def]
        for minutes, message_id, role in [(2, "m-b", "assistant"), (1, "m-a", "user")]:
            tx.add(
                ChatMessage(
                    chat_id=chat_id,
                    id=message_id,
                    role=role,
                    parts=parts,
                    created_at=start + timedelta(minutes=minutes),
                )
            )

    people.run(add_messages)

    response = client.get(
        f"/api/sessions/{session_id}/chats/{chat_id}", headers=as_alice.caller.headers
    )

    assert response.status_code == 200
    assert response.json() == {
        "chat": room["chat"],
        "isStreaming": False,
        "messages": [
            {"id": "m-a", "role": "user", "parts": parts, "createdAt": TIMESTAMP},
            {"id": "m-b", "role": "assistant", "parts": parts, "createdAt": TIMESTAMP},
        ],
    }


@pytest.mark.parametrize(
    ("body", "changed"),
    [
        ({"title": "  Release plan \n"}, {"title": "Release plan"}),
        ({"modelId": " openai/gpt-5.4 "}, {"modelId": "openai/gpt-5.4"}),
        ({"title": "Both", "modelId": "x/y"}, {"title": "Both", "modelId": "x/y"}),
    ],
)
def test_update_chat_trims_and_bumps_updated_at(
    client: TestClient,
    people: Accounts,
    as_alice: Api,
    room: dict[str, Any],
    body: Any,
    changed: Any,
) -> None:
    session_id, chat = room["session"]["id"], room["chat"]
    set_chat(people, chat["id"], updated_at=utc_now() - timedelta(hours=1))
    before = _summary(as_alice, session_id, chat["id"])

    response = client.patch(
        f"/api/sessions/{session_id}/chats/{chat['id']}", headers=as_alice.caller.headers, json=body
    )

    assert response.status_code == 200
    updated = response.json()["chat"]
    assert updated == {**chat, **changed, "updatedAt": TIMESTAMP}
    assert updated["updatedAt"] > before["updatedAt"]
    assert _summary(as_alice, session_id, chat["id"]) == {
        **updated,
        "hasUnread": False,
        "isStreaming": False,
    }


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": "x"},
        {"title": "Fine", "name": "x"},
        {"title": ""},
        {"title": "   "},
        {"modelId": " \t"},
        {"title": 5},
        {"modelId": None},
    ],
)
def test_update_chat_invalid_body_is_400(
    client: TestClient, as_alice: Api, room: dict[str, Any], body: Any
) -> None:
    session_id, chat_id = room["session"]["id"], room["chat"]["id"]
    before = as_alice.chats(session_id)

    response = client.patch(
        f"/api/sessions/{session_id}/chats/{chat_id}", headers=as_alice.caller.headers, json=body
    )

    assert (response.status_code, response.json()) == (400, session_error())
    assert as_alice.chats(session_id) == before


def test_delete_chat(
    client: TestClient, people: Accounts, as_alice: Api, room: dict[str, Any]
) -> None:
    session_id = room["session"]["id"]
    second = room["second"]["id"]
    path = f"/api/sessions/{session_id}/chats/{second}"

    async def add_message(tx):  # type: ignore[no-untyped-def]
        tx.add(ChatMessage(chat_id=second, id="m", role="user", parts=[], created_at=utc_now()))

    people.run(add_message)

    response = client.delete(path, headers=as_alice.caller.headers)

    assert (response.status_code, response.json()) == (200, {"success": True})
    gone = client.get(path, headers=as_alice.caller.headers)
    assert (gone.status_code, gone.json()) == (404, session_error("Chat not found"))
    assert [c["id"] for c in as_alice.chats(session_id)["chats"]] == [room["chat"]["id"]]
    # The id is free again, and the new chat starts without the old messages.
    as_alice.new_chat(session_id, second)
    assert client.get(path, headers=as_alice.caller.headers).json()["messages"] == []


def test_delete_the_only_chat_is_400(client: TestClient, as_alice: Api) -> None:
    created = as_alice.new_session()
    session_id, chat_id = created["session"]["id"], created["chat"]["id"]

    response = client.delete(
        f"/api/sessions/{session_id}/chats/{chat_id}", headers=as_alice.caller.headers
    )

    assert (response.status_code, response.json()) == (
        400,
        session_error("Cannot delete the only chat of a session"),
    )
    assert [c["id"] for c in as_alice.chats(session_id)["chats"]] == [chat_id]


def test_delete_a_streaming_chat_is_409(
    client: TestClient, people: Accounts, as_alice: Api, room: dict[str, Any]
) -> None:
    session_id, second = room["session"]["id"], room["second"]["id"]
    set_chat(people, second, active_stream_id="wrun_01")

    response = client.delete(
        f"/api/sessions/{session_id}/chats/{second}", headers=as_alice.caller.headers
    )

    assert (response.status_code, response.json()) == (
        409,
        session_error("A response is streaming in this chat"),
    )
    assert _summary(as_alice, session_id, second)["isStreaming"] is True


# A chat the session does not have is 403 too: ownership is checked first, so ids can't be probed.
@pytest.mark.parametrize("chat", ["its-chat", "no-such-chat"])
@pytest.mark.parametrize("operation_id", SESSION_SCOPED)
def test_chats_of_another_accounts_session_are_403(
    client: TestClient,
    as_alice: Api,
    bob: Caller,
    room: dict[str, Any],
    operation_id: str,
    chat: str,
) -> None:
    before = as_alice.snapshot()

    response = call(
        client,
        operation_id,
        headers=bob.headers,
        sessionId=room["session"]["id"],
        chatId=room["second"]["id"] if chat == "its-chat" else chat,
    )

    assert (response.status_code, response.json()) == (
        403,
        session_error("You do not have access to this session"),
    )
    assert as_alice.snapshot() == before


@pytest.mark.parametrize("operation_id", SESSION_SCOPED)
def test_chats_of_a_missing_session_are_404(
    client: TestClient, alice: Caller, operation_id: str
) -> None:
    response = call(client, operation_id, headers=alice.headers, sessionId=MISSING_UUID)

    assert (response.status_code, response.json()) == (404, session_error("Session not found"))


@pytest.mark.parametrize("where", ["missing", "in-another-session"])
@pytest.mark.parametrize("operation_id", CHAT_OPERATIONS)
def test_chat_outside_the_session_is_404(
    client: TestClient, as_alice: Api, room: dict[str, Any], operation_id: str, where: str
) -> None:
    elsewhere = as_alice.new_session()
    elsewhere_chat = as_alice.new_chat(elsewhere["session"]["id"])
    chat_id = {"missing": "no-such-chat", "in-another-session": elsewhere_chat["id"]}[where]
    before = as_alice.snapshot()

    response = call(
        client,
        operation_id,
        headers=as_alice.caller.headers,
        sessionId=room["session"]["id"],
        chatId=chat_id,
    )

    assert (response.status_code, response.json()) == (404, session_error("Chat not found"))
    assert as_alice.snapshot() == before


def test_concurrent_creates_of_one_new_id_both_succeed(client: TestClient, as_alice: Api) -> None:
    session_id = as_alice.new_session()["session"]["id"]
    chat_id = fresh_id("raced")

    def create(_: int) -> Any:
        return client.post(
            f"/api/sessions/{session_id}/chats",
            headers=as_alice.caller.headers,
            json={"id": chat_id},
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(create, range(4)))

    assert [r.status_code for r in responses] == [200] * 4
    assert len({json.dumps(r.json(), sort_keys=True) for r in responses}) == 1
    assert [c["id"] for c in as_alice.chats(session_id)["chats"]].count(chat_id) == 1
