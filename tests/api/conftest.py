"""Helpers for the API tests: the documented error shapes, sessions made through the API, and
direct writes of the columns no operation sets yet (runs, assistant messages, sandboxes)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import update
from starlette.testclient import TestClient

from server.app import create_app
from server.config import Settings
from server.spec import merged_spec, operations
from storage.models import Account, Chat, Session
from tests.conftest import BACKENDS, Accounts, Caller, fresh_database

SPEC = merged_spec()
MISSING_UUID = "00000000-0000-4000-8000-000000000000"
JWT_ISSUER = "https://issuer.recoup.test"
JWT_SECRET = "a-test-signing-secret-of-32-bytes-or-more"


class _AnyText:
    """Equal to any non-blank string: for messages the spec leaves free (validator wording)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other.strip() != ""

    def __repr__(self) -> str:
        return "<any text>"


ANY_TEXT: Any = _AnyText()


class _Matches:
    """Equal to any string matching a pattern in full."""

    def __init__(self, pattern: str) -> None:
        self.pattern = re.compile(pattern)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and self.pattern.fullmatch(other) is not None

    def __repr__(self) -> str:
        return f"<matching {self.pattern.pattern}>"


UUID4: Any = _Matches(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
TIMESTAMP: Any = _Matches(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def fresh_id(prefix: str) -> str:
    """A client-chosen chat id no other test uses (chat ids are unique across sessions)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def resolve(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = SPEC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def operation(operation_id: str) -> tuple[str, str, dict[str, Any]]:
    """``(METHOD, path template, operation)`` of an operation of the merged spec."""
    for method, path, op in operations(SPEC):
        if op["operationId"] == operation_id:
            return method.upper(), path, op
    raise KeyError(operation_id)


def operation_ids(*, with_status: int | None = None, with_body: bool = False) -> list[str]:
    """The operation ids of the merged spec, optionally only those documenting a status/body."""
    return [
        op["operationId"]
        for _method, _path, op in operations(SPEC)
        if (with_status is None or str(with_status) in op["responses"])
        and (not with_body or "requestBody" in op)
    ]


def secured(op: dict[str, Any]) -> bool:
    return op.get("security", SPEC.get("security")) != []


def documented_error(operation_id: str, status: int, message: Any = ANY_TEXT) -> dict[str, Any]:
    """The body an operation documents for an error status, with ``message`` as its text."""
    _method, _path, op = operation(operation_id)
    response = resolve(op["responses"][str(status)])
    schema = resolve(response["content"]["application/json"]["schema"])
    body: dict[str, Any] = {}
    for key in schema["required"]:
        enum = resolve(schema["properties"][key]).get("enum")
        body[key] = enum[0] if enum and len(enum) == 1 else message
    return body


def session_error(message: Any = ANY_TEXT) -> dict[str, Any]:
    """The error body of the session routes."""
    return {"status": "error", "error": message}


def room_error(message: Any = ANY_TEXT) -> dict[str, Any]:
    """The error body of ``/api/chats`` and ``/api/chat``."""
    return {"status": "error", "message": message}


def url(operation_id: str, **ids: str) -> tuple[str, str]:
    """``(METHOD, concrete path)``; path parameters not given default to ``x``."""
    method, path, _op = operation(operation_id)
    return method, re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), "x"), path)


@dataclass(frozen=True)
class Api:
    """Calls made through the real app as one caller."""

    client: TestClient
    caller: Caller

    def new_session(self, **body: Any) -> dict[str, Any]:
        """``POST /api/sessions``: ``{"session": ..., "chat": ...}``."""
        response = self.client.post("/api/sessions", headers=self.caller.headers, json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def new_chat(self, session_id: str, chat_id: str | None = None) -> dict[str, Any]:
        body = {} if chat_id is None else {"id": chat_id}
        response = self.client.post(
            f"/api/sessions/{session_id}/chats", headers=self.caller.headers, json=body
        )
        assert response.status_code == 200, response.text
        return response.json()["chat"]

    def chats(self, session_id: str) -> dict[str, Any]:
        response = self.client.get(f"/api/sessions/{session_id}/chats", headers=self.caller.headers)
        assert response.status_code == 200, response.text
        return response.json()

    def sessions(self, **params: Any) -> dict[str, Any]:
        response = self.client.get("/api/sessions", headers=self.caller.headers, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def snapshot(self) -> dict[str, Any]:
        """Everything the caller can see: sessions and every chat of each."""
        listed = self.sessions(limit=100)["sessions"]
        return {s["id"]: {"session": s, "chats": self.chats(s["id"])} for s in listed}


@pytest.fixture(scope="package", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Package-scoped here, so that one app per backend serves every API test."""
    return str(request.param)


@pytest.fixture(scope="package")
def settings(
    request: pytest.FixtureRequest, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """One database per backend for all API tests. Every test makes its own accounts and
    nothing is shared between accounts, so tests stay independent while the app (and its
    durable-run runtime) starts once per backend. JWTs from ``JWT_ISSUER`` are accepted."""
    data_dir = tmp_path_factory.mktemp("api") / "data"
    with fresh_database(request, backend, data_dir) as url:
        yield Settings(
            data_dir=data_dir,
            database_url=url,
            validate_responses=True,
            jwt_issuer=JWT_ISSUER,
            jwt_secret=JWT_SECRET,
        )


@pytest.fixture(scope="package")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def people(settings: Settings, client: TestClient) -> Accounts:
    return Accounts(settings)


@pytest.fixture
def new_org() -> Callable[[], str]:
    """Fresh organization names, so that accounts of different tests never share one."""
    return lambda: f"org-{uuid.uuid4().hex}"


@pytest.fixture
def as_alice(client: TestClient, alice: Caller) -> Api:
    return Api(client, alice)


@pytest.fixture
def as_bob(client: TestClient, bob: Caller) -> Api:
    return Api(client, bob)


def _column_writer(model: Any) -> Callable[..., None]:
    """Writes columns of one row directly: for what no operation sets yet (runs, assistant
    messages, preferences) or times a test needs to control."""

    def write(people: Accounts, row_id: str, **values: Any) -> None:
        async def work(tx):  # type: ignore[no-untyped-def]
            await tx.execute(update(model).where(model.id == row_id).values(**values))

        people.run(work)

    return write


set_chat = _column_writer(Chat)
set_session = _column_writer(Session)
set_account = _column_writer(Account)


@dataclass(frozen=True)
class SmallApp:
    """An app on SQLite whose body limit is tiny and which accepts no JWT, with its accounts."""

    client: TestClient
    people: Accounts
    limit: int


@pytest.fixture(scope="package")
def small_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmallApp]:
    data_dir = tmp_path_factory.mktemp("small") / "data"
    settings = Settings(data_dir=data_dir, max_body_bytes=64, validate_responses=True)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield SmallApp(client, Accounts(settings), settings.max_body_bytes)


USER_TURN = {"id": "msg-1", "role": "user", "content": "Hello"}


def valid_body(operation_id: str, **ids: str) -> Any:
    """A body the operation accepts, aimed at ``ids`` where it names a session or chat."""
    return {
        "sessions.create_session": {"title": "Made here"},
        "sessions.update_session": {"title": "Renamed"},
        "session_chats.create_session_chat": {"id": fresh_id("made-here")},
        "session_chats.update_session_chat": {"title": "Renamed"},
        "chats.create_chat": {"topic": "Made here"},
        "chats.update_chat": {"chatId": ids.get("chatId", MISSING_UUID), "topic": "Renamed"},
        "chat.stream_chat": {
            "messages": [USER_TURN],
            "chatId": ids.get("chatId", MISSING_UUID),
            "sessionId": ids.get("sessionId", MISSING_UUID),
        },
    }.get(operation_id)


def call(
    client: TestClient,
    operation_id: str,
    *,
    headers: dict[str, str] | None = None,
    **ids: str,
) -> Any:
    """Call an operation with a valid body (when it takes one) on the given ids."""
    method, path = url(operation_id, **ids)
    return client.request(method, path, headers=headers or {}, json=valid_body(operation_id, **ids))
