"""Cross-cutting HTTP: probes, the served spec and docs, routing errors, CORS, request ids."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from server.app import create_app
from server.config import Settings
from server.context import AppStateMiddleware
from server.spec import HTTP_METHODS, operations
from tests.api.conftest import (
    SPEC,
    Api,
    documented_error,
    operation,
    secured,
    session_error,
)

ORIGIN = "https://app.recoup.test"
OTHER_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz(client: TestClient) -> None:
    response = client.get("/readyz")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.fixture
def unreachable_database(tmp_path: Path) -> Iterator[TestClient]:
    """An app whose database file went away after start-up: a directory stands in its place."""
    settings = Settings(data_dir=tmp_path / "data", validate_responses=True)
    database_file = settings.data_dir / "recoup.db"
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        state = next(
            m.keywords["state"]
            for m in client.app.middleware.middlewares
            if isinstance(m, partial) and m.func is AppStateMiddleware
        )
        assert state.settings.resolved_database_url.endswith(str(database_file.resolve()))
        # Close the pooled connections, so that the next query has to open the file again.
        client.portal.call(state.database.engine.dispose)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database_file}{suffix}").unlink(missing_ok=True)
        database_file.mkdir()
        yield client
        database_file.rmdir()


def test_readyz_is_503_when_the_database_is_unreachable(
    unreachable_database: TestClient,
) -> None:
    response = unreachable_database.get("/readyz")

    assert (response.status_code, response.json()) == (503, {"status": "unavailable"})
    assert unreachable_database.get("/healthz").status_code == 200


def test_openapi_document(client: TestClient) -> None:
    response = client.get("/api/openapi.json")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["openapi"] == "3.1.0"
    assert response.json() == SPEC


def test_docs_page(client: TestClient) -> None:
    response = client.get("/api/docs")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger" in response.text.lower()


@pytest.mark.parametrize("path", ["/nope", "/api/nope", "/api/sessions/x/chats/y/z", "/api/"])
def test_unknown_route_is_404(client: TestClient, path: str) -> None:
    response = client.get(path)

    assert (response.status_code, response.json()) == (404, session_error("Not found"))


def _unrouted_error(operation_id: str) -> dict[str, Any]:
    """An operation's 404 body, or its 401 shape where it documents no 404 (its shape for
    errors it does not list)."""
    _method, _path, op = operation(operation_id)
    status = 404 if "404" in op["responses"] else 401
    return documented_error(operation_id, status, "Not found")


@pytest.mark.parametrize(
    "operation_id", [op["operationId"] for _method, path, op in operations(SPEC) if "{" in path]
)
def test_an_encoded_slash_in_a_path_parameter_is_404_in_the_operations_shape(
    client: TestClient, operation_id: str
) -> None:
    """The router decodes ``%2F`` before matching, so no route takes the request; its error
    body is still the one the operation at that path documents."""
    method, template, _op = operation(operation_id)
    path = re.sub(r"\{\w+\}", "a%2Fb", template)

    response = client.request(method, path, json={})

    assert (response.status_code, response.json()) == (404, _unrouted_error(operation_id))


def _path_error(path: str, message: str) -> dict[str, Any]:
    """No operation documents a 405: its body takes the error shape of the path's operations
    (the session shape off the spec)."""
    item = SPEC["paths"].get(path, {})
    for method in HTTP_METHODS:
        if method in item and secured(item[method]):
            return documented_error(item[method]["operationId"], 401, message)
    return session_error(message)


def _allowed(path: str) -> set[str]:
    return {method.upper() for method in SPEC["paths"][path] if method in HTTP_METHODS}


WRONG_METHODS = [
    (path, method)
    for path in SPEC["paths"]
    for method in OTHER_METHODS
    if method not in _allowed(path)
] + [("/api/openapi.json", method) for method in ("POST", "PUT", "DELETE")]


@pytest.mark.parametrize(("path", "method"), WRONG_METHODS)
def test_wrong_method_is_405_with_allow(client: TestClient, path: str, method: str) -> None:
    concrete = re.sub(r"\{\w+\}", "x1", path)
    documented = _allowed(path) if path in SPEC["paths"] else {"GET"}

    response = client.request(method, concrete)

    assert (response.status_code, response.json()) == (405, _path_error(path, "Method not allowed"))
    allow = {entry.strip() for entry in response.headers["allow"].split(",")}
    # HEAD and OPTIONS may be added by the framework; every documented method must be there.
    assert allow - {"HEAD", "OPTIONS"} == documented


@pytest.mark.parametrize(
    "path", ["/api/sessions", "/api/sessions/s1/chats/c1", "/api/chats", "/api/chat"]
)
def test_cors_preflight_needs_no_credentials(client: TestClient, path: str) -> None:
    response = client.options(
        path,
        headers={
            "origin": ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "x-api-key, content-type, authorization",
        },
    )

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", ORIGIN)
    allowed_headers = response.headers["access-control-allow-headers"].lower()
    for header in ("x-api-key", "content-type", "authorization"):
        assert header in allowed_headers
    assert "POST" in response.headers["access-control-allow-methods"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/api/sessions", 401), ("GET", "/nope", 404), ("PUT", "/api/chats", 405)],
)
def test_cors_headers_on_errors(client: TestClient, method: str, path: str, status: int) -> None:
    response = client.request(method, path, headers={"origin": ORIGIN})

    assert response.status_code == status
    assert response.headers["access-control-allow-origin"] in ("*", ORIGIN)
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "x-workflow-run-id" in exposed
    assert "x-workflow-stream-tail-index" in exposed


def test_cors_headers_on_success(client: TestClient, as_alice: Api) -> None:
    response = client.get("/api/sessions", headers={**as_alice.caller.headers, "origin": ORIGIN})

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", ORIGIN)


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/healthz/", "/healthz"),
        ("/api/sessions/", "/api/sessions"),
        ("/api/sessions/s-1/chats/", "/api/sessions/s-1/chats"),
    ],
)
def test_a_trailing_slash_redirects_to_the_operation(
    client: TestClient, path: str, target: str
) -> None:
    # Routing skips the routes that cannot match a path; the redirect of one that matches with
    # the slash removed must survive it.
    response = client.get(path, follow_redirects=False)

    assert response.status_code == 307
    assert response.headers["location"].endswith(target)


@pytest.mark.parametrize("path", ["/healthz", "/api/sessions", "/nope"])
def test_request_id_is_echoed(client: TestClient, path: str) -> None:
    response = client.get(path, headers={"x-request-id": "req-42.abc"})

    assert response.headers["x-request-id"] == "req-42.abc"


@pytest.mark.parametrize("given", [None, "", "x" * 1000], ids=["absent", "empty", "too-long"])
def test_request_id_is_generated(client: TestClient, given: str | None) -> None:
    headers = {} if given is None else {"x-request-id": given}

    first = client.get("/healthz", headers=headers).headers["x-request-id"]
    second = client.get("/healthz", headers=headers).headers["x-request-id"]

    assert first and second and first != second
    assert first != given


def test_chunked_json_body_is_read(client: TestClient, as_alice: Api) -> None:
    session_id = as_alice.new_session()["session"]["id"]

    def chunks() -> Iterator[bytes]:
        yield b'{"title": '
        yield b'"Sent in chunks"}'

    response = client.patch(
        f"/api/sessions/{session_id}",
        headers={**as_alice.caller.headers, "content-type": "application/json"},
        content=chunks(),
    )

    assert response.status_code == 200
    assert response.json()["session"]["title"] == "Sent in chunks"
    assert as_alice.sessions()["sessions"][0]["title"] == "Sent in chunks"
