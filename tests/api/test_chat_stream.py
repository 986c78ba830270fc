"""``POST /api/chat``: everything decided before a run starts.

Its 200, and the 409 of a run already in progress, need a live run and a provisioned sandbox:
they are tested with the runs, not here.
"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.api.conftest import MISSING_UUID, USER_TURN, Api, room_error
from tests.conftest import Caller


@pytest.fixture
def turn(as_alice: Api) -> dict[str, Any]:
    """A valid request on Alice's session and its chat (whose sandbox is not provisioned)."""
    created = as_alice.new_session()
    return {
        "messages": [USER_TURN],
        "chatId": created["chat"]["id"],
        "sessionId": created["session"]["id"],
    }


def _post(client: TestClient, caller: Caller, body: Any) -> Any:
    return client.post("/api/chat", headers=caller.headers, json=body)


@pytest.mark.parametrize(
    "change",
    [
        {"messages": None},
        {"chatId": None},
        {"sessionId": None},
        {"chatId": "chat-1"},
        {"sessionId": "session-1"},
        {"messages": "Hello"},
        {"messages": [{"role": "robot", "content": "Hello"}]},
        {"messages": [{"role": "user", "content": 5}]},
        {"context": {"contextLimit": "all"}},
    ],
    ids=[
        "no-messages",
        "no-chat-id",
        "no-session-id",
        "chat-id-not-uuid",
        "session-id-not-uuid",
        "messages-not-array",
        "unknown-role",
        "content-not-string",
        "context-limit-not-integer",
    ],
)
def test_invalid_request_is_400(
    as_alice: Api, turn: dict[str, Any], change: dict[str, Any]
) -> None:
    body = {**turn, **change}
    body = {key: value for key, value in body.items() if value is not None}
    before = as_alice.snapshot()

    response = _post(as_alice.client, as_alice.caller, body)

    assert (response.status_code, response.json()) == (400, room_error())
    assert as_alice.snapshot() == before


def test_session_without_a_sandbox_is_400(as_alice: Api, turn: dict[str, Any]) -> None:
    before = as_alice.snapshot()

    response = _post(as_alice.client, as_alice.caller, turn)

    assert (response.status_code, response.json()) == (400, room_error("Sandbox not initialized"))
    assert as_alice.snapshot() == before
    detail = as_alice.client.get(
        f"/api/sessions/{turn['sessionId']}/chats/{turn['chatId']}",
        headers=as_alice.caller.headers,
    ).json()
    assert (detail["isStreaming"], detail["messages"]) == (False, [])


def test_another_accounts_session_is_403(as_alice: Api, bob: Caller, turn: dict[str, Any]) -> None:
    before = as_alice.snapshot()

    response = _post(as_alice.client, bob, turn)

    assert (response.status_code, response.json()) == (
        403,
        room_error("You do not have access to this session"),
    )
    assert as_alice.snapshot() == before


def test_another_accounts_chat_is_403(as_alice: Api, as_bob: Api, turn: dict[str, Any]) -> None:
    bobs_chat = as_bob.new_session()["chat"]["id"]
    before = as_bob.snapshot()

    response = _post(as_alice.client, as_alice.caller, {**turn, "chatId": bobs_chat})

    assert (response.status_code, response.json()) == (
        403,
        room_error("You do not have access to this chat"),
    )
    assert as_bob.snapshot() == before


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("missing-session", "Session not found"),
        ("missing-chat", "Chat not found"),
        ("chat-of-another-own-session", "Chat not found in this session"),
    ],
)
def test_missing_session_or_chat_is_404(
    as_alice: Api, turn: dict[str, Any], target: str, message: str
) -> None:
    change = {
        "missing-session": lambda: {"sessionId": MISSING_UUID},
        "missing-chat": lambda: {"chatId": MISSING_UUID},
        "chat-of-another-own-session": lambda: {"chatId": as_alice.new_session()["chat"]["id"]},
    }[target]()
    before = as_alice.snapshot()

    response = _post(as_alice.client, as_alice.caller, {**turn, **change})

    assert (response.status_code, response.json()) == (404, room_error(message))
    assert as_alice.snapshot() == before
