"""Domain errors and the one place that renders every error in its operation's documented shape.

The shape of an error body is read from the merged specification, not hard-coded: for each
operation and status the documented schema says whether the body is
``{"status": "error", "error": ...}``, ``{"status": "error", "message": ...}`` or a fixed
``{"error": "<the one enum value>"}`` (the seed's ``Invalid chat id`` / ``Chat ID conflict``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from connexion.middleware.abstract import ROUTING_CONTEXT
from starlette.exceptions import HTTPException

from server.spec import Document, allowed_methods, operations, path_matcher, resolved

logger = logging.getLogger("recoup_api.errors")


class ApiError(Exception):
    """An error with an HTTP status; raised anywhere, rendered by :class:`ErrorRenderer`."""

    status = 500

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})


class InvalidBody(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class BadGateway(ApiError):
    status = 502


@dataclass(frozen=True)
class _Shape:
    key: str  # "error" or "message"
    with_status: bool
    fixed: str | None  # a schema that allows one message only


_DEFAULT_SHAPE = _Shape(key="error", with_status=True, fixed=None)


def _resolve(document: Document, node: Any) -> Any:
    """``node`` with its references followed through."""
    while (target := resolved(document, node)) is not node:
        node = target
    return node


def _shape_of(document: Document, response: Any) -> _Shape | None:
    response = _resolve(document, response)
    schema = _resolve(
        document, response.get("content", {}).get("application/json", {}).get("schema")
    )
    if not isinstance(schema, dict):
        return None
    required = schema.get("required", [])
    key = "message" if "message" in required else "error"
    enum = _resolve(document, schema.get("properties", {}).get(key, {})).get("enum")
    fixed = enum[0] if isinstance(enum, list) and len(enum) == 1 else None
    return _Shape(key=key, with_status="status" in required, fixed=fixed)


class ErrorRenderer:
    """Maps (operationId, status) to the documented error body."""

    def __init__(self, document: Document, *, handler_package: str) -> None:
        self._shapes: dict[tuple[str | None, int], _Shape] = {}
        self._fallback: dict[str | None, _Shape] = {}
        self._allowed = allowed_methods(document)
        # For requests no route took (a path parameter the router refuses, a wrong method):
        # the operations documented at the path, so their error shape still applies.
        self._by_path: dict[str, tuple[re.Pattern[str], dict[str, str]]] = {}
        for method, path, operation in operations(document):
            # Connexion reports the resolved handler path, e.g. "handlers.chats.create_chat".
            op_id = f"{handler_package}.{operation.get('operationId')}"
            _matcher, by_method = self._by_path.setdefault(path, (path_matcher(path), {}))
            by_method[method.upper()] = op_id
            for status, response in operation.get("responses", {}).items():
                shape = _shape_of(document, response)
                if shape is None or not str(status).isdigit():
                    continue
                self._shapes[(op_id, int(status))] = shape
                if int(status) == 401:
                    self._fallback[op_id] = shape

    def body(self, operation_id: str | None, status: int, message: str) -> dict[str, str]:
        """The error body an operation documents for a status."""
        shape = self._shapes.get((operation_id, status)) or self._fallback.get(
            operation_id, _DEFAULT_SHAPE
        )
        if shape.fixed is not None:
            return {shape.key: shape.fixed}
        body = {"status": "error"} if shape.with_status else {}
        body[shape.key] = message
        return body

    def response(
        self, request: ConnexionRequest, status: int, message: str, headers: Mapping[str, str]
    ) -> ConnexionResponse:
        routing = request.scope.get("extensions", {}).get(ROUTING_CONTEXT, {})
        operation_id = routing.get("operation_id") or self._operation_at(request.scope)
        body = self.body(operation_id, status, message)
        return ConnexionResponse(
            status_code=status,
            mimetype="application/json",
            content_type="application/json",
            body=json.dumps(body),
            headers=dict(headers),
        )

    def _operation_at(self, scope: Mapping[str, Any]) -> str | None:
        method = scope.get("method", "")
        # Routers match the decoded path, in which an encoded slash (``%2F``) in a path
        # parameter splits it in two: no route takes such a request, but its raw path, where
        # the slash is still encoded, still names the operation whose error shape applies.
        raw_path = scope.get("raw_path") or b""
        for path in (scope.get("path", ""), raw_path.decode("latin-1")):
            for matcher, by_method in self._by_path.values():
                if matcher.match(path):
                    return by_method.get(method) or next(iter(by_method.values()))
        return None

    # The handlers below are registered with Connexion's add_error_handler.

    def api_error(self, request: ConnexionRequest, exc: ApiError) -> ConnexionResponse:
        return self.response(request, exc.status, exc.message, exc.headers)

    def problem(self, request: ConnexionRequest, exc: ProblemException) -> ConnexionResponse:
        status, message = exc.status, str(exc.detail or exc.title or "Request failed")
        if status == 415:
            # Every body-taking operation documents 400 for a body it cannot read; use it.
            status, message = 400, "Content-Type must be application/json"
        if status >= 500:
            logger.error("request failed: %r", exc)
        return self.response(request, status, message, exc.headers or {})

    def http_exception(self, request: ConnexionRequest, exc: HTTPException) -> ConnexionResponse:
        messages = {404: "Not found", 405: "Method not allowed"}
        message = messages.get(exc.status_code) or str(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Connexion routes each operation separately, so the router's own Allow header
            # names one method; the specification knows them all.
            path = request.scope.get("path", "")
            for matcher, methods in self._allowed:
                if matcher.match(path):
                    headers["Allow"] = ", ".join(methods)
                    break
        return self.response(request, exc.status_code, message, headers)

    def unexpected(self, request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        logger.exception("unhandled error", exc_info=exc)
        return self.response(request, 500, "Internal server error", {})
