"""``/api/sessions`` and ``/api/sessions/{sessionId}``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from storage.models import utc_now
from tests.api.conftest import (
    MISSING_UUID,
    TIMESTAMP,
    UUID4,
    Api,
    call,
    session_error,
    set_chat,
    set_session,
)
from tests.conftest import Accounts, Caller

NEW_CHAT = {
    "id": UUID4,
    "title": "New chat",
    "modelId": "recoup/offline",
    "activeStreamId": None,
    "lastAssistantMessageAt": None,
    "createdAt": TIMESTAMP,
    "updatedAt": TIMESTAMP,
}


@pytest.mark.parametrize("body", [None, {}], ids=["absent", "empty"])
def test_create_session_defaults(client: TestClient, alice: Caller, body: Any) -> None:
    response = client.post("/api/sessions", headers=alice.headers, json=body)

    assert response.status_code == 200
    created = response.json()
    session = created["session"]
    assert session == {
        "id": UUID4,
        "title": "New session",
        "status": "running",
        "artistId": None,
        "createdAt": TIMESTAMP,
        "updatedAt": TIMESTAMP,
    }
    assert created["chat"] == {**NEW_CHAT, "sessionId": session["id"]}
    assert created.keys() == {"session", "chat"}
    stored = client.get(f"/api/sessions/{session['id']}", headers=alice.headers)
    assert stored.json() == {"session": session}


def test_create_session_trims_title(as_alice: Api) -> None:
    session = as_alice.new_session(title="  Mix notes \t")["session"]

    assert session["title"] == "Mix notes"
    assert as_alice.sessions()["sessions"][0]["title"] == "Mix notes"


def test_create_session_for_an_artist_of_the_callers_org(
    client: TestClient, people: Accounts, new_org: Callable[[], str]
) -> None:
    label = new_org()
    manager = people.person(org=label)
    artist = people.artist(org=label)

    session = Api(client, manager).new_session(artistId=artist)["session"]

    assert session["artistId"] == artist
    stored = client.get(f"/api/sessions/{session['id']}", headers=manager.headers)
    assert stored.json()["session"]["artistId"] == artist


@pytest.mark.parametrize(
    ("artist", "status", "message"),
    [
        ("other-org", 403, "You do not have access to this artist"),
        ("unknown", 404, "Artist not found"),
        ("a-person", 404, "Artist not found"),
    ],
)
def test_create_session_refuses_an_artist_out_of_reach(
    client: TestClient,
    people: Accounts,
    new_org: Callable[[], str],
    artist: str,
    status: int,
    message: str,
) -> None:
    label = new_org()
    manager = people.person(org=label)
    artist_id = {
        "other-org": people.artist(org=new_org()),
        "unknown": MISSING_UUID,
        "a-person": people.person(org=label).id,
    }[artist]

    response = client.post("/api/sessions", headers=manager.headers, json={"artistId": artist_id})

    assert (response.status_code, response.json()) == (status, session_error(message))
    assert Api(client, manager).sessions() == {"sessions": [], "nextOffset": None}


@pytest.mark.parametrize(
    "body",
    [{"title": ""}, {"title": "   "}, {"title": 5}, {"artistId": "nope"}, {"colour": "red"}],
)
def test_create_session_invalid_body(client: TestClient, as_alice: Api, body: Any) -> None:
    response = client.post("/api/sessions", headers=as_alice.caller.headers, json=body)

    assert (response.status_code, response.json()) == (400, session_error())
    assert as_alice.sessions()["sessions"] == []


def test_list_sessions_newest_first_and_only_the_callers(
    people: Accounts, as_alice: Api, as_bob: Api
) -> None:
    ids = [as_alice.new_session(title=f"s{n}")["session"]["id"] for n in range(3)]
    as_bob.new_session()
    start = utc_now() - timedelta(hours=1)
    # The middle one is the newest: order follows createdAt, not insertion.
    for minutes, session_id in zip([0, 2, 1], ids, strict=True):
        set_session(people, session_id, created_at=start + timedelta(minutes=minutes))

    listed = as_alice.sessions()

    assert [s["id"] for s in listed["sessions"]] == [ids[1], ids[2], ids[0]]
    assert listed["nextOffset"] is None


def test_list_sessions_pages(as_alice: Api) -> None:
    for n in range(5):
        as_alice.new_session(title=f"s{n}")
    everything = [s["id"] for s in as_alice.sessions()["sessions"]]

    pages = [as_alice.sessions(limit=2, offset=offset) for offset in (0, 2, 4)]

    assert [[s["id"] for s in page["sessions"]] for page in pages] == [
        everything[0:2],
        everything[2:4],
        everything[4:5],
    ]
    assert [page["nextOffset"] for page in pages] == [2, 4, None]
    # A page that ends exactly at the last session has no next page.
    assert as_alice.sessions(limit=2, offset=3)["nextOffset"] is None
    assert as_alice.sessions(limit=2, offset=5) == {"sessions": [], "nextOffset": None}


def test_list_sessions_flags(client: TestClient, people: Accounts, as_alice: Api) -> None:
    headers = as_alice.caller.headers
    created = as_alice.new_session()
    session_id, first = created["session"]["id"], created["chat"]["id"]
    second = as_alice.new_chat(session_id)["id"]
    quiet = as_alice.new_session()["session"]["id"]
    long_ago = utc_now() - timedelta(hours=1)
    set_chat(people, first, updated_at=long_ago)
    set_chat(people, second, updated_at=long_ago + timedelta(minutes=1))

    def summary(sid: str) -> dict[str, Any]:
        return next(s for s in as_alice.sessions()["sessions"] if s["id"] == sid)

    assert summary(session_id) == {
        **created["session"],
        "hasUnread": False,
        "hasStreaming": False,
        "latestChatId": second,
    }

    set_chat(people, first, last_assistant_message_at=utc_now(), active_stream_id="wrun_1")
    assert summary(session_id)["hasUnread"] is True
    assert summary(session_id)["hasStreaming"] is True

    read = client.post(f"/api/sessions/{session_id}/chats/{first}/read", headers=headers)
    assert read.json() == {"success": True}
    assert summary(session_id)["hasUnread"] is False

    renamed = client.patch(
        f"/api/sessions/{session_id}/chats/{first}",
        headers=headers,
        json={"title": "Touched"},
    )
    assert renamed.status_code == 200
    assert summary(session_id)["latestChatId"] == first
    assert {k: summary(quiet)[k] for k in ("hasUnread", "hasStreaming")} == {
        "hasUnread": False,
        "hasStreaming": False,
    }


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"limit": "many"}, {"offset": -1}, {"page": 2}],
    ids=["limit-0", "limit-101", "limit-text", "offset-negative", "unknown-param"],
)
def test_list_sessions_invalid_query(client: TestClient, alice: Caller, params: Any) -> None:
    response = client.get("/api/sessions", headers=alice.headers, params=params)

    assert (response.status_code, response.json()) == (400, session_error())


def test_get_session(client: TestClient, as_alice: Api) -> None:
    session = as_alice.new_session(title="Mine")["session"]

    response = client.get(f"/api/sessions/{session['id']}", headers=as_alice.caller.headers)

    assert (response.status_code, response.json()) == (200, {"session": session})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"title": "  Renamed  "}, {"title": "Renamed", "status": "running"}),
        ({"status": "archived"}, {"title": "New session", "status": "archived"}),
        ({"title": "Done", "status": "completed"}, {"title": "Done", "status": "completed"}),
    ],
)
def test_update_session(
    client: TestClient, people: Accounts, as_alice: Api, body: Any, expected: Any
) -> None:
    session = as_alice.new_session()["session"]
    set_session(people, session["id"], updated_at=utc_now() - timedelta(hours=1))
    before = client.get(f"/api/sessions/{session['id']}", headers=as_alice.caller.headers)

    response = client.patch(
        f"/api/sessions/{session['id']}", headers=as_alice.caller.headers, json=body
    )

    assert response.status_code == 200
    updated = response.json()["session"]
    assert updated == {**session, **expected, "updatedAt": TIMESTAMP}
    assert updated["updatedAt"] > before.json()["session"]["updatedAt"]
    stored = client.get(f"/api/sessions/{session['id']}", headers=as_alice.caller.headers)
    assert stored.json() == {"session": updated}


@pytest.mark.parametrize(
    "body",
    [{}, {"title": "   "}, {"title": None}, {"status": "paused"}, {"title": "ok", "pinned": True}],
)
def test_update_session_invalid_body(client: TestClient, as_alice: Api, body: Any) -> None:
    session = as_alice.new_session()["session"]

    response = client.patch(
        f"/api/sessions/{session['id']}", headers=as_alice.caller.headers, json=body
    )

    assert (response.status_code, response.json()) == (400, session_error())
    stored = client.get(f"/api/sessions/{session['id']}", headers=as_alice.caller.headers)
    assert stored.json() == {"session": session}


@pytest.mark.parametrize("operation_id", ["sessions.get_session", "sessions.update_session"])
def test_session_of_another_account_is_403(
    client: TestClient, as_alice: Api, bob: Caller, operation_id: str
) -> None:
    session_id = as_alice.new_session()["session"]["id"]
    before = as_alice.snapshot()

    response = call(client, operation_id, headers=bob.headers, sessionId=session_id)

    assert (response.status_code, response.json()) == (
        403,
        session_error("You do not have access to this session"),
    )
    assert as_alice.snapshot() == before


@pytest.mark.parametrize("operation_id", ["sessions.get_session", "sessions.update_session"])
def test_missing_session_is_404(client: TestClient, alice: Caller, operation_id: str) -> None:
    response = call(client, operation_id, headers=alice.headers, sessionId=MISSING_UUID)

    assert (response.status_code, response.json()) == (404, session_error("Session not found"))
