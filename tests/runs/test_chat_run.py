"""``POST /api/chat`` starting a durable run, and the stream it answers with."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from runs.models import FAILURE_TEXT
from storage import runs as run_store
from storage.models import Run
from tests.api.conftest import set_chat
from tests.conftest import Accounts, Caller
from tests.runs.conftest import (
    HEADERS,
    KEEP_ALIVE,
    RunChat,
    assert_valid_stream,
    parse_sse,
    sandboxed_chat,
)

CHAT_ERROR_KEYS = {"status", "message"}


def _count(people: Accounts, model: type, **where: Any) -> int:
    async def work(tx):  # type: ignore[no-untyped-def]
        filters = [getattr(model, key) == value for key, value in where.items()]
        return await tx.scalar(select(func.count()).select_from(model).where(*filters))

    return int(people.run(work))


def _slot(people: Accounts, chat_id: str) -> str | None:
    async def work(tx):  # type: ignore[no-untyped-def]
        return await run_store.run_slot_holder(tx, chat_id=chat_id)

    return people.run(work)


def test_a_run_streams_in_the_ui_message_protocol(chat: RunChat, people: Accounts) -> None:
    response = chat.post(chat.body("/bash echo hi"))

    assert response.status_code == 200
    assert {key: response.headers[key] for key in HEADERS} == HEADERS
    run_id = response.headers["x-workflow-run-id"]
    assert run_id.startswith("wrun_")
    chunks, frames = parse_sse(response.text)
    assert frames[-1] == "data: [DONE]" and frames[-2] == 'data: {"type":"finish"}'
    assert response.text.endswith("\n\n") and ", " not in frames[0]
    assert_valid_stream(chunks)
    tool = next(c for c in chunks if c["type"] == "tool-output-available")
    assert tool["output"]["output"] == "hi\n"
    assert "[offline model] bash returned" in "".join(
        c["delta"] for c in chunks if c["type"] == "text-delta"
    )
    assert _slot(people, chat.chat_id) is None
    assert chat.client.get(f"/api/chat/runs/{run_id}", headers=chat.caller.headers).json() == {
        "runId": run_id,
        "status": "completed",
    }


def test_the_run_saves_both_messages_and_names_the_chat(chat: RunChat) -> None:
    response = chat.post(chat.body("Summarize the README please " + "x" * 100))

    detail = chat.detail()
    user, assistant = detail["messages"]
    assert user["id"] == "user-1" and user["role"] == "user"
    assert assistant["id"] == parse_sse(response.text)[0][0]["messageId"]
    assert assistant["parts"][0] == {"type": "step-start"}
    assert assistant["parts"][1]["type"] == "text" and assistant["parts"][1]["state"] == "done"
    assert detail["chat"]["title"] == ("Summarize the README please " + "x" * 100)[:80]
    assert detail["chat"]["lastAssistantMessageAt"] is not None
    assert detail["isStreaming"] is False
    listed = chat.client.get(f"/api/sessions/{chat.session_id}/chats", headers=chat.caller.headers)
    assert listed.json()["chats"][0]["hasUnread"] is True


def test_the_user_message_is_stored_once_and_a_title_is_kept(chat: RunChat) -> None:
    chat.post(chat.body("first"))
    chat.post(chat.body("first"))  # the same message id again, e.g. a retry

    messages = chat.detail()["messages"]
    assert [m["role"] for m in messages].count("user") == 1
    assert chat.detail()["chat"]["title"] == "first"
    chat.post(chat.body("second", user_message_id="user-2"))
    assert chat.detail()["chat"]["title"] == "first"


def test_the_first_user_message_of_the_history_names_the_chat(chat: RunChat) -> None:
    body = chat.body("latest", user_message_id="user-3")
    body["messages"][:0] = [
        {"id": "user-1", "role": "user", "parts": [{"type": "text", "text": "earliest"}]},
        {"id": "assistant-2", "role": "assistant", "parts": [{"type": "text", "text": "ok"}]},
    ]

    chat.post(body)

    detail = chat.detail()
    assert detail["chat"]["title"] == "earliest"
    assert [m["id"] for m in detail["messages"] if m["role"] == "user"] == ["user-3"]


def test_seed_content_messages_and_the_transport_body_are_accepted(chat: RunChat) -> None:
    body = {
        "id": chat.chat_id,
        "trigger": "submit-message",
        "messageId": None,
        "chatId": chat.chat_id,
        "sessionId": chat.session_id,
        "messages": [{"id": "seed-1", "role": "user", "content": "Hello there"}],
        "context": {"contextLimit": 5},
    }

    response = chat.post(body)

    assert response.status_code == 200, response.text
    assert chat.detail()["messages"][0]["parts"] == [{"type": "text", "text": "Hello there"}]


def test_a_continued_assistant_message_keeps_its_id(chat: RunChat) -> None:
    body = chat.body("hello")
    body["messages"].append({"id": "assistant-7", "role": "assistant", "parts": []})

    chunks, _ = parse_sse(chat.post(body).text)

    assert chunks[0] == {"type": "start", "messageId": "assistant-7"}


def test_messages_without_a_user_message_are_400(chat: RunChat, people: Accounts) -> None:
    body = chat.body()
    body["messages"] = [{"id": "a", "role": "assistant", "content": "hi"}]

    response = chat.post(body)

    assert response.status_code == 400
    assert set(response.json()) == CHAT_ERROR_KEYS
    assert _slot(people, chat.chat_id) is None


def test_concurrent_posts_start_exactly_one_run(
    chat: RunChat, people: Accounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECOUP_TEST_MODEL_DELAY", "0.05")  # the winner outlives the race
    chat.set_model("test/slow")

    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda _: chat.post(chat.body("hello")), range(6)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 409, 409, 409, 409, 409]
    conflict = next(r for r in responses if r.status_code == 409)
    assert conflict.json() == {
        "status": "error",
        "message": "A response is already streaming for this chat",
    }
    assert _count(people, Run, chat_id=chat.chat_id) == 1
    assert _slot(people, chat.chat_id) is None


def test_a_slot_held_by_a_run_that_does_not_exist_is_cleared(
    chat: RunChat, people: Accounts
) -> None:
    set_chat(people, chat.chat_id, active_stream_id="wrun_ghost")

    response = chat.post(chat.body())

    assert response.status_code == 200
    assert _slot(people, chat.chat_id) is None


def test_a_slot_held_by_a_finished_run_is_cleared(chat: RunChat, people: Accounts) -> None:
    async def finished_run_holding_the_slot(tx):  # type: ignore[no-untyped-def]
        await run_store.record_run(
            tx,
            run_id="wrun_finished",
            chat_id=chat.chat_id,
            session_id=chat.session_id,
            account_id=chat.caller.id,
            message_id="m",
        )
        await run_store.set_run_status(tx, run_id="wrun_finished", status="completed")
        assert await run_store.claim_run_slot(tx, chat_id=chat.chat_id, run_id="wrun_finished")

    people.run(finished_run_holding_the_slot)
    assert (
        chat.client.get(f"/api/chat/{chat.chat_id}/stream", headers=chat.caller.headers).status_code
        == 204
    )

    response = chat.post(chat.body())

    assert response.status_code == 200
    assert _slot(people, chat.chat_id) is None


def test_a_database_error_while_claiming_is_500_not_409(
    chat: RunChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_args: Any, **_kwargs: Any) -> bool:
        raise OperationalError("UPDATE chats", {}, Exception("database is locked"))

    monkeypatch.setattr(run_store, "claim_run_slot", broken)

    response = chat.post(chat.body())

    assert response.status_code == 500
    assert set(response.json()) == CHAT_ERROR_KEYS


def test_a_model_failing_mid_stream_ends_with_an_error_chunk(
    chat: RunChat, people: Accounts
) -> None:
    chat.set_model("test/fail")

    response = chat.post(chat.body())

    chunks, _ = parse_sse(response.text)
    assert_valid_stream(chunks)
    assert chunks[-2:] == [{"type": "error", "errorText": FAILURE_TEXT}, {"type": "finish"}]
    assert [c["type"] for c in chunks if c["type"].startswith("text")][-1] == "text-end"
    run_id = response.headers["x-workflow-run-id"]
    status = chat.client.get(f"/api/chat/runs/{run_id}", headers=chat.caller.headers).json()
    assert status["status"] == "failed"
    assert _slot(people, chat.chat_id) is None
    user, assistant = chat.detail()["messages"]
    assert user["id"] == "user-1"
    assert assistant["parts"][1]["text"] == "Working on it "


def test_reasoning_is_streamed_as_reasoning_chunks(chat: RunChat) -> None:
    chat.set_model("test/think")

    chunks, _ = parse_sse(chat.post(chat.body()).text)

    assert_valid_stream(chunks)
    kinds = [c["type"] for c in chunks]
    assert kinds.index("reasoning-start") < kinds.index("reasoning-end") < kinds.index("text-start")
    parts = chat.detail()["messages"][1]["parts"]
    assert [p["type"] for p in parts] == ["step-start", "reasoning", "text"]
    assert parts[1]["text"] == "Thinking it over."


def test_tool_errors_are_tool_output_errors(chat: RunChat) -> None:
    chunks, _ = parse_sse(chat.post(chat.body("/read missing.txt")).text)

    assert_valid_stream(chunks)
    error = next(c for c in chunks if c["type"] == "tool-output-error")
    assert "missing.txt" in error["errorText"]


def test_long_silences_get_keep_alive_comments(
    chat: RunChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECOUP_TEST_MODEL_DELAY", "0.5")
    chat.set_model("test/slow")

    response = chat.post(chat.body("/bash true"))

    chunks, frames = parse_sse(response.text)
    assert KEEP_ALIVE in frames
    assert_valid_stream(chunks)


def test_the_client_going_away_does_not_stop_the_run(chat: RunChat, people: Accounts) -> None:
    chat.set_model("test/slow")
    with chat.client.stream(
        "POST", "/api/chat", headers=chat.caller.headers, json=chat.body()
    ) as response:
        first = next(response.iter_text())
        assert first.startswith('data: {"type":"start"')
    run_id = response.headers["x-workflow-run-id"]

    status = ""
    for _ in range(300):
        got = chat.client.get(f"/api/chat/runs/{run_id}", headers=chat.caller.headers)
        status = got.json()["status"]
        if status == "completed":
            break
        time.sleep(0.05)
    assert status == "completed"
    assert chat.detail()["messages"][1]["parts"][1]["state"] == "done"


def test_another_accounts_chat_is_403_and_starts_nothing(
    chat: RunChat, client: Any, bob: Caller
) -> None:
    theirs = sandboxed_chat(client, bob)
    body = chat.body()
    body["chatId"] = theirs.chat_id

    response = chat.post(body)

    assert response.status_code == 403
    assert set(response.json()) == CHAT_ERROR_KEYS
    assert theirs.detail()["messages"] == []
