"""Malformed input of every kind: a clear 4xx in the operation's documented error shape, never a
500, and nothing stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from server.config import Settings
from server.spec import operations
from tests.api.conftest import (
    MISSING_UUID,
    SPEC,
    Api,
    SmallApp,
    documented_error,
    fresh_id,
    operation,
    operation_ids,
    resolve,
    url,
    valid_body,
)
from tests.conftest import Accounts

BODY_OPERATIONS = operation_ids(with_body=True)
LIMITED_OPERATIONS = operation_ids(with_status=413)


@pytest.fixture(scope="module")
def as_alice(client: TestClient, settings: Settings) -> Api:
    """One caller for the module: every test compares what it can see before and after."""
    return Api(client, Accounts(settings).person(name="alice"))


@pytest.fixture(scope="module")
def ids(as_alice: Api) -> dict[str, str]:
    """Alice's session and chat: what a request would change if it got through."""
    created = as_alice.new_session()
    return {"sessionId": created["session"]["id"], "chatId": created["chat"]["id"]}


def _send(api: Api, operation_id: str, ids: dict[str, str], **request: Any) -> Any:
    method, path = url(operation_id, **ids)
    headers = {**api.caller.headers, **request.pop("headers", {"content-type": "application/json"})}
    return api.client.request(method, path, headers=headers, **request)


RAW_BODIES = {
    "malformed-json": b'{"title": ',
    "invalid-utf8": b'{"title": "\xff\xfe"}',
    "nan": b'{"title": NaN}',
    "infinity": b'{"title": -Infinity}',
    "deeply-nested": b"[" * 100_000 + b"]" * 100_000,
    "array": b"[]",
    "string": b'"x"',
    "null": b"null",
    "number": b"5",
}


def _outcomes(api: Api, operation_id: str, ids: dict[str, str], cases: dict[str, Any]) -> Any:
    """``{case: (status, body)}`` for each ``(headers, content)`` case."""
    outcomes = {}
    for name, (content_type, content) in cases.items():
        response = _send(api, operation_id, ids, content=content, headers=content_type)
        outcomes[name] = (response.status_code, response.json())
    return outcomes


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize("operation_id", BODY_OPERATIONS)
def test_unreadable_body_is_400(as_alice: Api, ids: dict[str, str], operation_id: str) -> None:
    well_formed = json.dumps(valid_body(operation_id, **ids) or {}).encode()
    cases = {name: (JSON, raw) for name, raw in RAW_BODIES.items()}
    cases["text/plain"] = ({"content-type": "text/plain"}, well_formed)
    cases["form"] = ({"content-type": "application/x-www-form-urlencoded"}, b"title=x")
    before = as_alice.snapshot()

    outcomes = _outcomes(as_alice, operation_id, ids, cases)

    expected = (400, documented_error(operation_id, 400))
    assert outcomes == dict.fromkeys(cases, expected)
    assert as_alice.snapshot() == before


def _closed(operation_id: str) -> bool:
    schema = operation(operation_id)[2]["requestBody"]["content"]["application/json"]["schema"]
    return resolve(schema).get("additionalProperties") is False


def _invalid_bodies(operation_id: str, ids: dict[str, str]) -> dict[str, Any]:
    """Bodies that are valid JSON but break the operation's schema or cannot be stored."""
    valid = valid_body(operation_id, **ids) or {}
    cases: dict[str, Any] = {}
    for field, value in valid.items():
        if not isinstance(value, str):
            continue
        for wrong in (12345, True, ["a"], {"a": 1}):
            cases[f"{field}={wrong!r}"] = {**valid, field: wrong}
        # Valid JSON text, but not Unicode text: no database stores it.
        cases[f"{field}=lone-surrogate"] = {**valid, field: "mix \ud800 notes"}
        cases[f"{field}=nul"] = {**valid, field: "mix \x00 notes"}
    if _closed(operation_id):
        cases["unknown-field"] = {**valid, "unexpected": "field"}
    return {name: (JSON, json.dumps(body).encode()) for name, body in cases.items()}


@pytest.mark.parametrize("operation_id", BODY_OPERATIONS)
def test_invalid_body_is_400(as_alice: Api, ids: dict[str, str], operation_id: str) -> None:
    cases = _invalid_bodies(operation_id, ids)
    before = as_alice.snapshot()

    outcomes = _outcomes(as_alice, operation_id, ids, cases)

    expected = (400, documented_error(operation_id, 400))
    assert outcomes == dict.fromkeys(cases, expected)
    assert as_alice.snapshot() == before


@pytest.mark.parametrize("operation_id", ["chats.create_chat", "session_chats.create_session_chat"])
def test_unknown_field_is_ignored_where_the_seed_leaves_the_object_open(
    as_alice: Api, ids: dict[str, str], operation_id: str
) -> None:
    assert not _closed(operation_id)
    body = {**valid_body(operation_id, **ids), "unexpected": "field"}

    response = _send(as_alice, operation_id, ids, json=body)

    assert response.status_code == 200
    assert "unexpected" not in json.dumps(as_alice.snapshot())


PATH_PARAMETERS = [
    (op["operationId"], name)
    for _m, path, op in operations(SPEC)
    for name in ("sessionId", "chatId", "runId")
    if "{" + name + "}" in path
]
ODD_IDS = {
    "huge": "x" * 60_000,
    "emoji": "🎛️",
    "cjk": "日本語",
    "nul": "a\x00b",
    "space": "a b",
    "upper-uuid": MISSING_UUID.upper(),
}


@pytest.mark.parametrize(("operation_id", "parameter"), PATH_PARAMETERS)
def test_odd_path_ids_are_404(
    client: TestClient, as_alice: Api, ids: dict[str, str], operation_id: str, parameter: str
) -> None:
    before = as_alice.snapshot()

    outcomes = {}
    for name, odd in ODD_IDS.items():
        method, path = url(operation_id, **{**ids, parameter: quote(odd, safe="")})
        response = client.request(
            method,
            path,
            headers=as_alice.caller.headers,
            json=valid_body(operation_id, **ids),
        )
        outcomes[name] = (response.status_code, response.json())

    expected = (404, documented_error(operation_id, 404))
    assert outcomes == dict.fromkeys(ODD_IDS, expected)
    assert as_alice.snapshot() == before


def test_unicode_chat_id_round_trips(
    client: TestClient, as_alice: Api, ids: dict[str, str]
) -> None:
    chat_id = fresh_id("🎛️ mix ✓ 日本語")
    path = f"/api/sessions/{ids['sessionId']}/chats/{quote(chat_id)}"

    created = client.post(
        f"/api/sessions/{ids['sessionId']}/chats",
        headers=as_alice.caller.headers,
        json={"id": chat_id},
    )
    renamed = client.patch(path, headers=as_alice.caller.headers, json={"title": "ünïcödé"})
    fetched = client.get(path, headers=as_alice.caller.headers)

    assert created.status_code == 200
    assert created.json()["chat"]["id"] == chat_id
    assert renamed.json()["chat"]["title"] == "ünïcödé"
    assert fetched.json()["chat"] == renamed.json()["chat"]
    assert chat_id in [c["id"] for c in as_alice.chats(ids["sessionId"])["chats"]]


def _over_the_limit(limit: int) -> bytes:
    return b'{"title": "' + b"x" * limit + b'"}'


def _chunked(raw: bytes) -> Iterator[bytes]:
    for start in range(0, len(raw), 16):
        yield raw[start : start + 16]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("operation_id", LIMITED_OPERATIONS)
def test_body_over_the_limit_is_413(small_app: SmallApp, operation_id: str, framing: str) -> None:
    api = Api(small_app.client, small_app.people.person())
    created = api.new_session()
    ids = {"sessionId": created["session"]["id"], "chatId": created["chat"]["id"]}
    before = api.snapshot()
    raw = _over_the_limit(small_app.limit)

    response = _send(
        api, operation_id, ids, content=raw if framing == "content-length" else _chunked(raw)
    )

    assert (response.status_code, response.json()) == (413, documented_error(operation_id, 413))
    assert api.snapshot() == before


def test_body_at_the_limit_is_read(small_app: SmallApp) -> None:
    api = Api(small_app.client, small_app.people.person())
    title = "t" * (small_app.limit - len(b'{"title": ""}'))
    raw = json.dumps({"title": title}).encode()
    assert len(raw) == small_app.limit

    response = api.client.post(
        "/api/sessions",
        headers={**api.caller.headers, "content-type": "application/json"},
        content=raw,
    )

    assert response.status_code == 200
    assert response.json()["session"]["title"] == title
