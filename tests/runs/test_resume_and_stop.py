"""``GET /api/chat/{chatId}/stream`` and ``POST /api/chat/{chatId}/stop``."""

from __future__ import annotations

import pytest

from tests.conftest import Accounts, Caller
from tests.runs.conftest import HEADERS, RunChat, assert_valid_stream, parse_sse, sandboxed_chat


@pytest.fixture
def slow_chat(chat: RunChat, monkeypatch: pytest.MonkeyPatch) -> RunChat:
    monkeypatch.setenv("RECOUP_TEST_MODEL_DELAY", "0.05")
    chat.set_model("test/slow")
    return chat


def _resume(chat: RunChat, query: str = "") -> object:
    return chat.client.get(f"/api/chat/{chat.chat_id}/stream{query}", headers=chat.caller.headers)


def test_resuming_mid_run_replays_the_same_stream(slow_chat: RunChat) -> None:
    original = slow_chat.stream_in_background("POST", "/api/chat", json=slow_chat.body())
    original.wait_for("text-delta")

    resumed = _resume(slow_chat)

    assert resumed.status_code == 200  # type: ignore[attr-defined]
    assert {k: resumed.headers[k] for k in HEADERS} == HEADERS  # type: ignore[attr-defined]
    run_id = original.headers["x-workflow-run-id"]
    assert resumed.headers["x-workflow-run-id"] == run_id  # type: ignore[attr-defined]
    assert int(resumed.headers["x-workflow-stream-tail-index"]) >= 2  # type: ignore[attr-defined]
    chunks, frames = parse_sse(resumed.text)  # type: ignore[attr-defined]
    assert frames[-1] == "data: [DONE]"
    original.join()
    assert chunks == original.chunks
    assert chunks[0] == {"type": "start", "messageId": original.chunks[0]["messageId"]}
    assert_valid_stream(chunks)


def test_start_index_skips_chunks_and_counts_from_the_end(slow_chat: RunChat) -> None:
    original = slow_chat.stream_in_background("POST", "/api/chat", json=slow_chat.body())
    original.wait_for("text-delta")

    from_three = _resume(slow_chat, "?startIndex=3")
    original.join()
    assert parse_sse(from_three.text)[0] == original.chunks[3:]  # type: ignore[attr-defined]


def test_a_negative_start_index_counts_from_the_end(slow_chat: RunChat) -> None:
    original = slow_chat.stream_in_background("POST", "/api/chat", json=slow_chat.body())
    original.wait_for("text-delta")
    received_before = len(original.chunks)

    tail = _resume(slow_chat, "?startIndex=-2")

    tail_index = int(tail.headers["x-workflow-stream-tail-index"])  # type: ignore[attr-defined]
    original.join()
    # The stored stream held at least what the first client had received, and the tail starts
    # two chunks before its end: possibly inside a text part, so only the slice is checked.
    assert received_before <= tail_index + 1 <= len(original.chunks)
    chunks = parse_sse(tail.text)[0]  # type: ignore[attr-defined]
    assert chunks == original.chunks[tail_index - 1 :]
    assert chunks[-1] == {"type": "finish"}


def test_no_run_in_progress_is_204(chat: RunChat) -> None:
    assert _resume(chat).status_code == 204  # type: ignore[attr-defined]
    chat.post(chat.body())
    finished = _resume(chat)
    assert (finished.status_code, finished.text) == (204, "")  # type: ignore[attr-defined]


def test_a_bad_start_index_is_400(chat: RunChat) -> None:
    response = _resume(chat, "?startIndex=first")

    assert response.status_code == 400  # type: ignore[attr-defined]
    assert set(response.json()) == {"status", "message"}  # type: ignore[attr-defined]


def test_resume_and_stop_of_another_accounts_chat_are_403(
    chat: RunChat, client: object, bob: Caller
) -> None:
    for method, path in [("GET", "stream"), ("POST", "stop")]:
        response = chat.client.request(
            method, f"/api/chat/{chat.chat_id}/{path}", headers=bob.headers
        )
        assert response.status_code == 403
        assert response.json() == {
            "status": "error",
            "message": "You do not have access to this chat",
        }


def test_resume_and_stop_of_a_missing_chat_are_404(chat: RunChat) -> None:
    for method, path in [("GET", "stream"), ("POST", "stop")]:
        response = chat.client.request(
            method, f"/api/chat/no-such-chat/{path}", headers=chat.caller.headers
        )
        assert response.status_code == 404
        assert response.json() == {"status": "error", "message": "Chat not found"}


def test_stop_cancels_the_run_and_frees_the_slot(slow_chat: RunChat, people: Accounts) -> None:
    original = slow_chat.stream_in_background("POST", "/api/chat", json=slow_chat.body())
    original.wait_for("text-delta")

    stopped = slow_chat.client.post(
        f"/api/chat/{slow_chat.chat_id}/stop", headers=slow_chat.caller.headers
    )

    assert stopped.json() == {"success": True, "stopped": True}
    original.join()
    assert original.chunks[-1] == {"type": "finish"}
    assert original.frames[-1] == "data: [DONE]"
    run_id = original.headers["x-workflow-run-id"]
    status = slow_chat.client.get(f"/api/chat/runs/{run_id}", headers=slow_chat.caller.headers)
    assert status.json() == {"runId": run_id, "status": "cancelled"}
    assert slow_chat.detail()["isStreaming"] is False
    again = slow_chat.client.post(
        f"/api/chat/{slow_chat.chat_id}/stop", headers=slow_chat.caller.headers
    )
    assert again.json() == {"success": True, "stopped": False}
    assert slow_chat.post(slow_chat.body("/bash true", user_message_id="u2")).status_code == 200


def test_stop_without_a_run_stops_nothing(client: object, alice: Caller) -> None:
    chat = sandboxed_chat(client, alice)  # type: ignore[arg-type]

    response = chat.client.post(f"/api/chat/{chat.chat_id}/stop", headers=alice.headers)

    assert response.json() == {"success": True, "stopped": False}


def test_a_chat_id_the_router_refuses_gets_the_documented_404(chat: RunChat) -> None:
    response = chat.client.post("/api/chat/a%0Ab/stop", headers=chat.caller.headers)

    assert response.status_code == 404
    assert set(response.json()) == {"status", "message"}
