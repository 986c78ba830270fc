"""What RecoupApp builds once per operation answers exactly as Connexion does per request.

One small spec, served twice by ``RecoupApp``: once as the server runs (the argument binding of
``server.connexion_app._Binding``, the cached request validators), once with Connexion's own
parameter and response decorators and its own request-validation middleware. Every request
below must get the same status, headers and body from both, and the binding must have bound the
requests it claims to handle (else this would compare Connexion with itself).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from connexion.datastructures import MediaTypeDict
from connexion.lifecycle import ConnexionResponse
from connexion.middleware.request_validation import RequestValidationMiddleware
from connexion.validators import ParameterValidator
from starlette.requests import Request
from starlette.testclient import TestClient

from server import connexion_app
from server.connexion_app import (
    SECURITY_MAP,
    CachedRequestValidationMiddleware,
    RecoupApp,
    middlewares,
)
from server.validation import OpenAPI31BodyValidator, OpenAPI31ParameterValidator

HERE = "tests.server.test_binding"
_ID = {"name": "itemId", "in": "path", "required": True, "schema": {"type": "string"}}
_OBJECT = {"type": "object", "properties": {"title": {"type": "string"}}}


def _json_body(schema: dict[str, Any], *, required: bool = False, **extra: Any) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}, **extra}


def _operation(handler: str, **fields: Any) -> dict[str, Any]:
    """An operation with the ``itemId`` path parameter unless ``parameters`` says otherwise."""
    return {
        "operationId": f"{HERE}.{handler}",
        "parameters": [_ID],
        "responses": {"200": {"description": "ok"}},
        **fields,
    }


SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "binding", "version": "1"},
    "security": [{"key": []}],
    "components": {
        "securitySchemes": {
            "key": {
                "type": "apiKey",
                "in": "header",
                "name": "x-api-key",
                "x-apikeyInfoFunc": f"{HERE}.key_info",
            }
        }
    },
    "paths": {
        "/items/{itemId}": {
            "get": _operation("read"),
            "post": _operation("create", requestBody=_json_body({**_OBJECT, "default": {"a": 1}})),
            "put": _operation("replace", requestBody=_json_body(_OBJECT, required=True)),
            "patch": _operation(
                "rename", requestBody=_json_body(_OBJECT, **{"x-body-name": "changes"})
            ),
            "delete": _operation("everything", requestBody=_json_body(_OBJECT)),
        },
        "/nullable/{itemId}": {
            "post": _operation(
                "create_nullable", requestBody=_json_body({**_OBJECT, "nullable": True})
            ),
        },
        "/context/{itemId}": {"get": _operation("with_context")},
        "/shapes/{itemId}": {"get": _operation("shaped")},
        "/search": {
            "get": _operation(
                "search",
                parameters=[
                    {"name": "q", "in": "query", "schema": {"type": "string", "default": "all"}}
                ],
            )
        },
        "/dashed/{item-id}": {
            "get": _operation(
                "read_dashed",
                parameters=[{**_ID, "name": "item-id"}],
            )
        },
        "/numbers/{itemId}": {
            "get": _operation(
                "read_number", parameters=[{**_ID, "schema": {"type": "string", "maxLength": 3}}]
            )
        },
    },
}


def key_info(key: str, required_scopes: Any = None) -> dict[str, Any] | None:
    return {"sub": f"account-{key}"} if key else None


async def read(item_id: str, user: str) -> dict[str, Any]:
    return {"item": item_id, "user": user}


async def read_number(item_id: str, user: str) -> dict[str, Any]:
    return {"number": item_id, "user": user}


async def read_dashed(item_id: str) -> dict[str, Any]:
    return {"dashed": item_id}


async def create(item_id: str, user: str, body: Any = "absent") -> dict[str, Any]:
    return {"item": item_id, "user": user, "body": repr(body)}


async def create_nullable(item_id: str, user: str, body: Any = "absent") -> dict[str, Any]:
    return {"item": item_id, "user": user, "body": repr(body)}


async def replace(item_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"item": item_id, "body": repr(body)}


async def rename(item_id: str, changes: Any = "absent", body: Any = "absent") -> dict[str, Any]:
    return {"item": item_id, "changes": repr(changes), "body": repr(body)}


async def everything(**kwargs: Any) -> dict[str, Any]:
    return {"kwargs": {key: repr(value) for key, value in sorted(kwargs.items())}}


async def with_context(item_id: str, context_: Any) -> dict[str, Any]:
    return {"item": item_id, "context": sorted(context_)}


async def search(q: str, user: str) -> dict[str, Any]:
    return {"q": q, "user": user}


async def shaped(item_id: str) -> Any:
    answers: dict[str, Any] = {
        "list": [1, "two", None],
        "created": ({"made": True}, 201),
        "headed": ({"with": "headers"}, {"x-extra": "1"}),
        "text": "plain words",
        "nothing": None,
        "response": ConnexionResponse(status_code=202, body=b"raw", content_type="text/plain"),
    }
    return answers[item_id]


class _EveryParameterChecked(OpenAPI31ParameterValidator):
    """The parameter validator without its shortcut for requests that cannot fail it."""

    def validate(self, scope: Any) -> None:
        ParameterValidator.validate(self, scope)


def _app(*, connexion_only: bool = False) -> RecoupApp:
    chosen = middlewares(validate_responses=False)
    parameters: type[ParameterValidator] = OpenAPI31ParameterValidator
    if connexion_only:
        chosen[chosen.index(CachedRequestValidationMiddleware)] = RequestValidationMiddleware
        parameters = _EveryParameterChecked
    app = RecoupApp(__name__, middlewares=chosen)
    app.add_api(
        copy.deepcopy(SPEC),  # Connexion changes the document it is given
        pythonic_params=True,
        strict_validation=True,
        security_map=SECURITY_MAP,
        validator_map={
            "body": MediaTypeDict({"*/*json": OpenAPI31BodyValidator}),
            "parameter": parameters,
        },
    )
    return app


JSON = {"content-type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}
# (method, path, headers, body, bound): bound when the binding builds the arguments itself;
# the others reach Connexion's decorators (or are refused before any decorator runs).
REQUESTS: list[tuple[str, str, dict[str, str], bytes | None, bool]] = [
    ("GET", "/items/a1", {}, None, True),
    ("GET", "/items/%C3%A9t%C3%A9%20x", {}, None, True),
    ("GET", "/items/a1", {"content-type": "text/plain"}, b"ignored", True),
    ("GET", "/items/a1", FORM, b"user=evil", False),
    ("POST", "/items/a1", JSON, b'{"title": "t"}', True),
    ("POST", "/items/a1", JSON, b"", True),
    ("POST", "/items/a1", {}, None, False),
    ("POST", "/items/a1", JSON, b"null", False),
    ("POST", "/items/a1", {"content-type": "application/json; charset=utf-8"}, b"{}", True),
    ("POST", "/items/a1", {"content-type": "application/json; charset=latin-1"}, b"{}", True),
    ("POST", "/items/a1", {"content-type": "application/merge-patch+json"}, b"{}", False),
    ("POST", "/items/a1", {"content-type": "application/merge-patch+json"}, b"{}", False),
    ("POST", "/items/a1", {"content-type": "text/plain"}, b'{"title": "t"}', False),
    ("POST", "/items/a1", {"content-type": "multipart/form-data; boundary=x"}, b"--x--", False),
    ("POST", "/items/a1", JSON, b"{not json", False),
    ("POST", "/nullable/a1", JSON, b"null", True),
    ("POST", "/nullable/a1", JSON, b"", True),
    ("PUT", "/items/a1", JSON, b'{"title": "t"}', True),
    ("PUT", "/items/a1", JSON, b"", False),
    ("PATCH", "/items/a1", JSON, b'{"title": "t"}', True),
    ("PATCH", "/items/a1", JSON, b"", True),
    ("DELETE", "/items/a1", JSON, b'{"title": "t"}', True),
    ("DELETE", "/items/a1", {}, None, False),
    ("GET", "/context/a1", {}, None, True),
    ("GET", "/search", {}, None, False),
    ("GET", "/search?q=x", {}, None, False),
    ("GET", "/dashed/d1", {}, None, True),
    ("GET", "/numbers/12", {}, None, False),
    ("GET", "/numbers/1234", {}, None, False),
    *[
        ("GET", f"/shapes/{kind}", {}, None, True)
        for kind in ("list", "created", "headed", "text", "nothing", "response")
    ],
    ("GET", "/items/a1?unknown=1", {}, None, False),
]


def _answers(app: RecoupApp) -> list[tuple[int, list[tuple[str, str]], bytes]]:
    answers = []
    with TestClient(app) as client:
        for method, path, headers, body, _bound in REQUESTS:
            response = client.request(
                method, path, headers={"x-api-key": "k", **headers}, content=body
            )
            answers.append(
                (response.status_code, sorted(response.headers.items()), response.content)
            )
    return answers


@pytest.fixture
def bound(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Count the requests whose arguments the binding built."""
    seen: list[str] = []
    original = connexion_app._Binding.arguments

    async def counted(self: Any, scope: Any, receive: Any) -> dict[str, Any] | None:
        kwargs = await original(self, scope, receive)
        if kwargs is not None:
            seen.append(scope["raw_path"].decode())
        return kwargs

    monkeypatch.setattr(connexion_app._Binding, "arguments", counted)
    yield seen


def test_what_is_built_once_answers_every_request_as_connexion_does(
    bound: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with_binding = _answers(_app())
    assert bound == [path for _method, path, _headers, _body, is_bound in REQUESTS if is_bound]

    monkeypatch.setattr(connexion_app._Binding, "applies", False, raising=False)
    monkeypatch.setattr(
        connexion_app._Binding, "__init__", _switched_off_init(connexion_app._Binding.__init__)
    )
    bound.clear()
    without = _answers(_app(connexion_only=True))
    assert bound == []

    for request, mine, theirs in zip(REQUESTS, with_binding, without, strict=True):
        assert mine == theirs, request
    # The cases answer what their handlers say, not an error, where they should.
    statuses = [status for status, _headers, _body in with_binding]
    assert statuses.count(200) >= 20, statuses


def test_the_binding_takes_the_body_the_validator_parsed(
    bound: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every operation here has a body schema, so no bound request's body is parsed twice."""
    parsed_again: list[str] = []

    class Counted(Request):
        async def json(self) -> Any:
            parsed_again.append(self.url.path)
            return await super().json()

    monkeypatch.setattr(connexion_app, "Request", Counted)
    _answers(_app())
    assert any(body for *_request, body, is_bound in REQUESTS if is_bound)
    assert len(bound) == sum(is_bound for *_request, is_bound in REQUESTS)
    assert parsed_again == []


def _switched_off_init(init: Any) -> Any:
    def switched_off(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.applies = False

    return switched_off
