"""Cross-cutting ASGI middleware: request ids and access log, and the body size limit."""

from __future__ import annotations

import logging
import time
import uuid

from connexion.middleware.abstract import ROUTING_CONTEXT
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import PayloadTooLarge

access_log = logging.getLogger("recoup_api.access")
_MAX_REQUEST_ID = 200


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
        request_id = (
            given if 0 < len(given) <= _MAX_REQUEST_ID and given.isprintable() else uuid.uuid4().hex
        )
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
    """Refuses bodies over the limit with 413, by declared length or by bytes read."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"Request body exceeds {limit} bytes")
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(f"Request body exceeds {limit} bytes")
            return message

        await self.app(scope, counting_receive, send)
