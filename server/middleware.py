"""Cross-cutting ASGI middleware: request ids and access log, the body size limit, CORS options."""

from __future__ import annotations

import logging
import random
import time
from typing import Any

from connexion.middleware.abstract import ROUTING_CONTEXT
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.config import Settings
from server.errors import PayloadTooLarge

access_log = logging.getLogger("recoup_api.access")
_MAX_REQUEST_ID = 200


def cors_options(settings: Settings) -> dict[str, Any]:
    """Starlette's ``CORSMiddleware`` options: browser clients on the configured origins may call
    every operation with either credential and read the run headers."""
    return {
        "allow_origins": list(settings.cors_origins),
        "allow_methods": ["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
        "allow_headers": ["content-type", "authorization", "x-api-key", "x-request-id"],
        "expose_headers": ["x-workflow-run-id", "x-workflow-stream-tail-index", "x-request-id"],
    }


def _new_request_id() -> str:
    """32 hex digits, unique in practice; not a secret, so no system call for entropy."""
    return f"{random.getrandbits(128):032x}"


class RequestLogMiddleware:
    """Honours or generates ``x-request-id``, echoes it, and logs each request once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Inner layers copy the scope; a shared extensions dict lets the routing result they
        # record reach this layer and the error renderer.
        scope.setdefault("extensions", {})
        given = Headers(scope=scope).get("x-request-id", "")
        usable = 0 < len(given) <= _MAX_REQUEST_ID and given.isprintable()
        request_id = given if usable else _new_request_id()
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["x-request-id"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            routing = scope.get("extensions", {}).get(ROUTING_CONTEXT, {})
            access_log.info(
                "%s %s %s %d %.1fms %s",
                scope["method"],
                scope["path"],
                routing.get("operation_id") or "-",
                status,
                (time.perf_counter() - started) * 1000,
                request_id,
            )


class BodyLimitMiddleware:
    """Refuses bodies over the limit with 413, by declared length or by bytes read.

    A body sent without ``content-length`` (chunked) is read here, up to the limit, and passed on
    with its length declared: Connexion's validation reads only declared lengths.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > self.max_body_bytes:
                raise PayloadTooLarge(f"Request body exceeds {self.max_body_bytes} bytes")
            await self.app(scope, receive, send)
            return
        if "transfer-encoding" not in headers:
            await self.app(scope, receive, send)
            return
        body = await self._read_capped(receive)
        scope = {**scope, "headers": [*scope["headers"], (b"content-length", b"%d" % len(body))]}
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read_capped(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise PayloadTooLarge(f"Request body exceeds {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)
