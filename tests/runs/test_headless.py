"""``POST /api/chat/runs`` and ``GET /api/chat/runs/{runId}``: runs without a streaming client."""

from __future__ import annotations

import time
import uuid
from typing import Any

from starlette.testclient import TestClient

from tests.conftest import Accounts, Caller
from tests.runs.conftest import assert_valid_stream, parse_sse

ERROR_KEYS = {"status", "message"}


def _create(client: TestClient, caller: Caller, body: dict[str, Any]) -> Any:
    return client.post("/api/chat/runs", headers=caller.headers, json=body)


def _wait_until_finished(client: TestClient, caller: Caller, run_id: str) -> str:
    for _ in range(400):
        status = client.get(f"/api/chat/runs/{run_id}", headers=caller.headers).json()["status"]
        if status not in ("queued", "running"):
            return str(status)
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} is still {status}")


def test_a_headless_run_answers_in_its_own_session(client: TestClient, alice: Caller) -> None:
    created = _create(client, alice, {"prompt": "/bash echo headless"})

    assert created.status_code == 202
    body = created.json()
    assert set(body) == {"runId", "chatId", "sessionId"}
    assert created.headers["location"] == f"/api/chat/runs/{body['runId']}"
    assert _wait_until_finished(client, alice, body["runId"]) == "completed"
    detail = client.get(
        f"/api/sessions/{body['sessionId']}/chats/{body['chatId']}", headers=alice.headers
    ).json()
    user, assistant = detail["messages"]
    assert user["parts"] == [{"type": "text", "text": "/bash echo headless"}]
    assert assistant["parts"][1]["output"]["output"] == "headless\n"
    assert detail["chat"]["title"] == "/bash echo headless"
    assert detail["isStreaming"] is False


def test_a_headless_run_can_be_followed_while_it_runs(client: TestClient, alice: Caller) -> None:
    created = _create(client, alice, {"prompt": "hello", "model": "test/slow"}).json()

    streamed = client.get(f"/api/chat/{created['chatId']}/stream", headers=alice.headers)

    assert streamed.status_code == 200
    assert streamed.headers["x-workflow-run-id"] == created["runId"]
    assert_valid_stream(parse_sse(streamed.text)[0])


def test_messages_instead_of_a_prompt(client: TestClient, alice: Caller) -> None:
    messages = [
        {"id": "m1", "role": "user", "content": "hello"},
        {"id": "m2", "role": "assistant", "content": "hi"},
        {"id": "m3", "role": "user", "parts": [{"type": "text", "text": "again"}]},
    ]

    created = _create(client, alice, {"messages": messages})

    assert created.status_code == 202
    assert _wait_until_finished(client, alice, created.json()["runId"]) == "completed"


def test_messages_that_cannot_be_answered_make_a_failed_run(
    client: TestClient, alice: Caller
) -> None:
    created = _create(client, alice, {"messages": [{"role": "assistant", "content": "hi"}]})

    assert created.status_code == 202
    assert _wait_until_finished(client, alice, created.json()["runId"]) == "failed"


def test_a_failing_model_makes_a_failed_run(client: TestClient, alice: Caller) -> None:
    created = _create(client, alice, {"prompt": "hello", "model": "test/fail"}).json()

    assert _wait_until_finished(client, alice, created["runId"]) == "failed"


def test_prompt_and_messages_together_are_400(client: TestClient, alice: Caller) -> None:
    response = _create(client, alice, {"prompt": "a", "messages": [{"role": "user"}]})

    assert response.status_code == 400
    assert set(response.json()) == ERROR_KEYS


def test_another_accounts_run_is_404(client: TestClient, alice: Caller, bob: Caller) -> None:
    run_id = _create(client, alice, {"prompt": "hello"}).json()["runId"]

    for caller, path in [(bob, run_id), (alice, "wrun_missing")]:
        response = client.get(f"/api/chat/runs/{path}", headers=caller.headers)
        assert response.status_code == 404
        assert response.json() == {"status": "error", "message": "Run not found"}


def test_an_account_out_of_reach_is_403(client: TestClient, alice: Caller) -> None:
    response = _create(client, alice, {"prompt": "hello", "accountId": str(uuid.uuid4())})

    assert response.status_code == 403
    assert set(response.json()) == ERROR_KEYS


def test_an_unknown_artist_is_404(client: TestClient, alice: Caller) -> None:
    response = _create(client, alice, {"prompt": "hello", "artistId": str(uuid.uuid4())})

    assert response.status_code == 404
    assert response.json() == {"status": "error", "message": "Artist not found"}


def test_runs_for_an_organization_member_belong_to_that_member(
    client: TestClient, people: Accounts
) -> None:
    org = f"org-{uuid.uuid4().hex}"
    lead, member = people.person(org=org), people.person(org=org)

    created = _create(client, lead, {"prompt": "hello", "accountId": member.id})

    assert created.status_code == 202
    run_id = created.json()["runId"]
    assert client.get(f"/api/chat/runs/{run_id}", headers=member.headers).status_code == 200
    assert client.get(f"/api/chat/runs/{run_id}", headers=lead.headers).status_code == 404


def test_unauthenticated_is_401(client: TestClient) -> None:
    for method, path in [("POST", "/api/chat/runs"), ("GET", "/api/chat/runs/wrun_x")]:
        response = client.request(method, path, json={"prompt": "x"})
        assert response.status_code == 401
        assert set(response.json()) == ERROR_KEYS
