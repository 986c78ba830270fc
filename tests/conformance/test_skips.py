"""What the target lacks is skipped with the reason, never passed (a scripted target)."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import httpx

from conformance.client import ApiClient, Journal
from conformance.contract import Contract
from conformance.scenarios import Context, chats, run_scenario, runs
from server.spec import merged_spec

BASE_URL = "http://target.test"
SESSION = "7e3b7c5f-4a97-4393-8a8e-90331a8f7583"
STAMP = "2026-11-22T22:37:34.599Z"
CHAT = {
    "id": "6877e661-acd1-4c71-aa5f-328a29a6bec8",
    "sessionId": SESSION,
    "title": "New chat",
    "modelId": "recoup/offline",
    "activeStreamId": None,
    "lastAssistantMessageAt": None,
    "createdAt": STAMP,
    "updatedAt": STAMP,
}
CREATED = {
    "session": {
        "id": SESSION,
        "title": "conformance",
        "status": "running",
        "artistId": None,
        "createdAt": STAMP,
        "updatedAt": STAMP,
    },
    "chat": CHAT,
}
SANDBOX = {
    "sessionId": SESSION,
    "createdAt": STAMP,
    "timeout": 1800000,
    "currentBranch": "main",
    "mode": "bwrap",
    "timing": {"readyMs": 1},
}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
Routes = dict[tuple[str, str], tuple[int, Any]]


def _context(routes: Routes, document: dict[str, Any] | None = None) -> Context:
    """A kit context whose target answers ``routes`` (401 without a key, else 404)."""

    def answer(request: httpx.Request) -> httpx.Response:
        # Any session id names the one scripted session, as the kit's route probes expect.
        key = (request.method, UUID.sub(SESSION, request.url.path))
        if key in routes and routes[key][0] == 405:
            return httpx.Response(405, json={"status": "error", "error": "Method not allowed"})
        if key not in routes:
            return httpx.Response(404, json={"status": "error", "error": "Not found"})
        if "x-api-key" not in request.headers:
            # /api/chat and /api/chats document `message`, session routes `error`.
            field = "message" if request.url.path.startswith("/api/chat") else "error"
            return httpx.Response(401, json={"status": "error", field: "Unauthorized"})
        status, body = routes[key]
        return httpx.Response(status, json=body)

    http = httpx.Client(base_url=BASE_URL, transport=httpx.MockTransport(answer))
    contract = Contract(document or merged_spec(), "scripted", BASE_URL)
    journal = Journal()
    client = ApiClient(http, contract, journal, "recoup_sk_scripted")
    return Context(contract, journal, client, ApiClient(http, contract, journal, None), None)


def _outcome(ctx: Context, scenario: Callable[[Context], None]) -> tuple[str, str]:
    result = run_scenario(ctx, scenario)
    return result.status, result.detail


def test_an_unimplemented_route_is_skipped():
    ctx = _context({("PATCH", f"/api/sessions/{SESSION}/chats/{SESSION}"): (405, None)})
    status, detail = _outcome(ctx, chats.patch_chat_trims_and_rejects)
    assert (status, detail) == (
        "skipped",
        "PATCH /api/sessions/{sessionId}/chats/{chatId} is not implemented (the route answers 405)",
    )


def test_an_operation_missing_from_the_contract_is_skipped():
    document = copy.deepcopy(merged_spec())
    del document["paths"]["/api/chat/{chatId}/stream"]
    status, detail = _outcome(_context({}, document), chats.resume_without_a_run_is_204)
    assert (status, detail) == (
        "skipped",
        "GET /api/chat/{chatId}/stream is not in the target's contract",
    )


def test_runs_that_answer_500_are_skipped_with_the_answer():
    ctx = _context(
        {
            ("POST", "/api/sessions"): (200, CREATED),
            ("POST", f"/api/sessions/{SESSION}/chats"): (200, {"chat": CHAT}),
            ("POST", "/api/sandbox"): (200, SANDBOX),
            ("POST", "/api/chat"): (500, {"status": "error", "message": "Not implemented"}),
        }
    )
    status, detail = _outcome(ctx, runs.stream_follows_the_chunk_grammar)
    assert status == "skipped"
    assert detail.startswith("POST /api/chat answered 500")


def test_a_response_outside_the_contract_fails_the_scenario():
    ctx = _context({("POST", f"/api/sessions/{SESSION}/chats"): (200, {"chat": 1})})

    def scenario(ctx: Context) -> None:
        ctx.client.call("POST", f"/api/sessions/{SESSION}/chats", json={})

    status, detail = _outcome(ctx, scenario)
    assert status == "failed"
    assert detail.startswith("response breaks the contract: POST /api/sessions/")
