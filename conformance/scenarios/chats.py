"""Sessions and chats: the rules of DESIGN.md §3–§5 that a schema cannot express."""

from __future__ import annotations

import time
import uuid
from datetime import datetime

from conformance.scenarios.base import Context, Skip, expect, short, unique_id

LIST = ("GET", "/api/sessions/{sessionId}/chats")
CREATE = ("POST", "/api/sessions/{sessionId}/chats")
UPDATE = ("PATCH", "/api/sessions/{sessionId}/chats/{chatId}")
READ = ("POST", "/api/sessions/{sessionId}/chats/{chatId}/read")
RESUME = ("GET", "/api/chat/{chatId}/stream")
UNKNOWN_KEY = "recoup_sk_" + "A" * 43


def credentials_are_required(ctx: Context) -> None:
    """No credentials, or an unknown key, is a 401 before anything else is revealed."""
    ctx.require(*LIST)
    session_id, _chat = ctx.new_session()
    for api_key, label in ((None, "no credentials"), (UNKNOWN_KEY, "an unknown API key")):
        response = ctx.client.call("GET", f"/api/sessions/{session_id}/chats", api_key=api_key)
        expect(response.status_code == 401, f"{label}: expected 401, got {response.status_code}")


def create_chat_is_idempotent_in_its_session(ctx: Context) -> None:
    """The same client chat id twice in one session: 200 both times, one unchanged row."""
    ctx.require(*CREATE)
    session_id, _chat = ctx.new_session()
    chat_id = unique_id("idem")
    url = f"/api/sessions/{session_id}/chats"
    first = ctx.client.call("POST", url, json={"id": chat_id})
    second = ctx.client.call("POST", url, json={"id": chat_id})
    expect(first.status_code == 200, f"first create: {first.status_code} {short(first.text)}")
    expect(second.status_code == 200, f"second create: {second.status_code} {short(second.text)}")
    expect(
        first.json()["chat"] == second.json()["chat"],
        f"the second create changed the chat: {first.json()['chat']} != {second.json()['chat']}",
    )
    ids = [row["id"] for row in ctx.list_chats(session_id)]
    expect(ids.count(chat_id) == 1, f"chat {chat_id} is listed {ids.count(chat_id)} times")


def chat_id_conflicts_across_sessions(ctx: Context) -> None:
    """A chat id already used in another session is 409 {"error":"Chat ID conflict"}."""
    ctx.require(*CREATE)
    first_session, _chat = ctx.new_session()
    second_session, _chat = ctx.new_session()
    chat_id = ctx.new_chat(first_session, unique_id("conflict"))
    response = ctx.client.call(
        "POST", f"/api/sessions/{second_session}/chats", json={"id": chat_id}
    )
    expect(response.status_code == 409, f"expected 409, got {response.status_code}")
    expect(
        response.json() == {"error": "Chat ID conflict"},
        f'expected exactly {{"error":"Chat ID conflict"}}, got {short(response.text)}',
    )


def empty_chat_id_is_rejected(ctx: Context) -> None:
    """``{"id": ""}`` is 400 {"error":"Invalid chat id"}."""
    ctx.require(*CREATE)
    session_id, _chat = ctx.new_session()
    response = ctx.client.call("POST", f"/api/sessions/{session_id}/chats", json={"id": ""})
    expect(response.status_code == 400, f"expected 400, got {response.status_code}")
    expect(
        response.json() == {"error": "Invalid chat id"},
        f'expected exactly {{"error":"Invalid chat id"}}, got {short(response.text)}',
    )


def sessions_are_owner_only(ctx: Context) -> None:
    """Another account gets 403 on a session and its chats, and changes nothing."""
    if ctx.other is None:
        raise Skip("needs a second account: pass --other-api-key")
    ctx.require(*LIST)
    session_id, chat_id = ctx.new_session()
    attempts = [
        ("GET", "/api/sessions/{sessionId}", None),
        (*LIST, None),
        (*CREATE, {"id": unique_id("intruder")}),
        (*UPDATE, {"title": "taken over"}),
        (*READ, None),
        ("GET", "/api/sessions/{sessionId}/chats/{chatId}", None),
    ]
    for method, template, body in attempts:
        if not ctx.implements(method, template):
            continue
        path = template.format(sessionId=session_id, chatId=chat_id)
        response = ctx.other.call(method, path, json=body)
        expect(
            response.status_code == 403,
            f"{method} {path} as another account: {response.status_code}",
        )
    titles = {row["id"]: row["title"] for row in ctx.list_chats(session_id)}
    expect(list(titles) == [chat_id], f"another account changed the session's chats: {titles}")
    expect(titles[chat_id] != "taken over", "another account renamed the chat")


def missing_resources_are_404(ctx: Context) -> None:
    """A missing session, a missing chat, and a chat of another session are 404."""
    ctx.require(*LIST)
    missing = str(uuid.uuid4())
    for method, template in (LIST, CREATE):
        if ctx.implements(method, template):
            path = template.format(sessionId=missing)
            response = ctx.client.call(method, path, json={} if method == "POST" else None)
            expect(
                response.status_code == 404,
                f"{method} {path} (no such session): {response.status_code}",
            )
    session_id, _chat = ctx.new_session()
    other_session, other_chat = ctx.new_session()
    attempts: list[tuple[str, str, dict[str, str] | None]] = [
        (*UPDATE, {"title": "x"}),
        (*READ, None),
    ]
    for method, template, body in attempts:
        if not ctx.implements(method, template):
            continue
        for chat_id, label in (
            (unique_id("missing"), "no such chat"),
            (other_chat, "another session's chat"),
        ):
            path = template.format(sessionId=session_id, chatId=chat_id)
            response = ctx.client.call(method, path, json=body)
            expect(
                response.status_code == 404, f"{method} {path} ({label}): {response.status_code}"
            )
    expect(
        ctx.chat_row(other_session, other_chat)["title"] != "x",
        "a PATCH through the wrong session renamed the chat",
    )


def _timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def chats_are_listed_oldest_first(ctx: Context) -> None:
    """``GET .../chats`` is ``createdAt`` ascending (ties by id), whatever the ids."""
    ctx.require(*CREATE)
    session_id, first = ctx.new_session()
    created = [first]
    for label in ("z", "a", "m"):
        time.sleep(0.01)  # distinct millisecond timestamps: creation order is the only order
        created.append(ctx.new_chat(session_id, unique_id(label)))
    rows = ctx.list_chats(session_id)
    listed = [row["id"] for row in rows]
    expect(listed == created, f"expected creation order {created}, got {listed}")
    keys = [(_timestamp(row["createdAt"]), row["id"]) for row in rows]
    expect(keys == sorted(keys), f"not sorted by (createdAt, id): {keys}")


def unread_is_false_without_a_reply(ctx: Context) -> None:
    """A chat without an assistant message is not unread, before and after a read."""
    ctx.require(*LIST)
    session_id, chat_id = ctx.new_session()
    expect(ctx.chat_row(session_id, chat_id)["hasUnread"] is False, "a new chat has hasUnread true")
    ctx.require(*READ)
    response = ctx.client.call("POST", f"/api/sessions/{session_id}/chats/{chat_id}/read")
    expect(response.status_code == 200, f"read: {response.status_code} {short(response.text)}")
    expect(response.json() == {"success": True}, f"read: {short(response.text)}")
    expect(
        ctx.chat_row(session_id, chat_id)["hasUnread"] is False, "hasUnread is true after a read"
    )


def patch_chat_trims_and_rejects(ctx: Context) -> None:
    """PATCH trims title/modelId and refuses unknown keys, empty bodies and blank values."""
    ctx.require(*UPDATE)
    session_id, chat_id = ctx.new_session()
    url = f"/api/sessions/{session_id}/chats/{chat_id}"
    before = ctx.chat_row(session_id, chat_id)
    time.sleep(0.01)
    renamed = ctx.client.call("PATCH", url, json={"title": "  Renamed chat  "})
    expect(renamed.status_code == 200, f"PATCH title: {renamed.status_code} {short(renamed.text)}")
    chat = renamed.json()["chat"]
    expect(chat["title"] == "Renamed chat", f"title not trimmed: {chat['title']!r}")
    expect(
        _timestamp(chat["updatedAt"]) > _timestamp(before["updatedAt"]),
        f"updatedAt not bumped: {before['updatedAt']} -> {chat['updatedAt']}",
    )
    model = ctx.client.call("PATCH", url, json={"modelId": f"  {before['modelId']}  "})
    expect(model.status_code == 200, f"PATCH modelId: {model.status_code} {short(model.text)}")
    expect(model.json()["chat"]["modelId"] == before["modelId"], "modelId not trimmed")
    for body, label in (
        ({"title": "Other", "color": "red"}, "an unknown key"),
        ({}, "an empty body"),
        ({"title": "   "}, "a whitespace-only title"),
        ({"title": ""}, "an empty title"),
        ({"modelId": "  "}, "a whitespace-only modelId"),
    ):
        response = ctx.client.call("PATCH", url, json=body)
        expect(response.status_code == 400, f"{label}: expected 400, got {response.status_code}")
    expect(
        ctx.chat_row(session_id, chat_id)["title"] == "Renamed chat",
        "a rejected PATCH changed the chat",
    )


def resume_without_a_run_is_204(ctx: Context) -> None:
    """``GET /api/chat/{chatId}/stream`` on a chat with no run in progress is 204, no body."""
    ctx.require(*RESUME)
    _session, chat_id = ctx.new_session()
    response = ctx.client.call("GET", f"/api/chat/{chat_id}/stream")
    expect(response.status_code == 204, f"expected 204, got {response.status_code}")
    expect(response.content == b"", f"a 204 with a body: {short(response.text)}")
