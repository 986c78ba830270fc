"""Deliberate defects, off by default, to prove that the conformance kit catches real ones.

``RECOUP_FAULTS=name[,name]`` breaks one behaviour per name at the HTTP boundary by rewriting
requests or responses, so that handlers stay clean and a fault can never leak into them. Each
fault names the contract rule it breaks (``FAULTS``); ``conformance/`` must fail against every
one of them (``tests/conformance/``). Never enable this in production.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

FAULTS_ENV = "RECOUP_FAULTS"
logger = logging.getLogger("recoup_api.faults")

_SESSION_CHATS = re.compile(r"^/api/sessions/([^/]+)/chats$")
_CHAT_STREAM = re.compile(r"^/api/chat/[^/]+/stream$")
_CREDENTIAL_HEADERS = (b"x-api-key", b"authorization")

Headers = list[tuple[bytes, bytes]]
Chunk = dict[str, Any]


@dataclass
class Exchange:
    """One request as a fault sees it; ``body`` is read only when an active fault needs it."""

    method: str
    path: str
    headers: Headers
    body: bytes = b""

    def json_body(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


@dataclass
class Fault:
    """One broken behaviour; subclasses override the hooks they need (defaults change nothing)."""

    name: str
    breaks: str
    reads_request_body: bool = False

    def applies(self, method: str, path: str) -> bool:
        return True

    def on_request(self, exchange: Exchange) -> tuple[int, Any] | None:
        """Adjust the request in place, or answer ``(status, json body)`` instead of the app."""
        return None

    def on_headers(self, exchange: Exchange, status: int, headers: Headers) -> tuple[int, Headers]:
        return status, headers

    def on_json(self, exchange: Exchange, status: int, body: Any) -> Any:
        """Rewrite a JSON response body (buffered); return it unchanged to leave it alone."""
        return body

    def on_chunk(self, exchange: Exchange, chunk: Chunk) -> Chunk | None:
        """Rewrite one UI message stream chunk; ``None`` drops the frame."""
        return chunk

    def drops_done(self) -> bool:
        return False

    @property
    def rewrites_json(self) -> bool:
        return type(self).on_json is not Fault.on_json


@dataclass
class _SessionChatsFault(Fault):
    method: str = "GET"

    def applies(self, method: str, path: str) -> bool:
        return method == self.method and _SESSION_CHATS.match(path) is not None


@dataclass
class _Wrong409Body(_SessionChatsFault):
    method: str = "POST"

    def on_json(self, exchange: Exchange, status: int, body: Any) -> Any:
        return {"error": "conflict"} if status == 409 else body


@dataclass
class _IdempotencyBroken(_SessionChatsFault):
    """Remembers the chats it saw created and refuses a second create of the same id."""

    method: str = "POST"
    reads_request_body: bool = True
    seen: set[tuple[str, str]] = field(default_factory=set)

    def on_request(self, exchange: Exchange) -> tuple[int, Any] | None:
        body = exchange.json_body()
        chat_id = body.get("id") if isinstance(body, dict) else None
        if isinstance(chat_id, str) and (exchange.path, chat_id) in self.seen:
            return 409, {"error": "Chat ID conflict"}
        return None

    def on_json(self, exchange: Exchange, status: int, body: Any) -> Any:
        if status == 200 and isinstance(body, dict) and isinstance(body.get("chat"), dict):
            self.seen.add((exchange.path, str(body["chat"].get("id"))))
        return body


@dataclass
class _UnreadNeverCleared(_SessionChatsFault):
    def on_json(self, exchange: Exchange, status: int, body: Any) -> Any:
        if status == 200 and isinstance(body, dict):
            for chat in body.get("chats") or []:
                chat["hasUnread"] = True
        return body


@dataclass
class _ListOrderReversed(_SessionChatsFault):
    def on_json(self, exchange: Exchange, status: int, body: Any) -> Any:
        if status == 200 and isinstance(body, dict) and isinstance(body.get("chats"), list):
            body["chats"].reverse()
        return body


@dataclass
class _ForbiddenAsNotFound(Fault):
    """Another account's resource answers 404 instead of 403."""

    def on_headers(self, exchange: Exchange, status: int, headers: Headers) -> tuple[int, Headers]:
        return (404 if status == 403 else status), headers


@dataclass
class _IgnoresAuth(Fault):
    """A request without credentials is served as the last authenticated caller (stale context)."""

    last: Headers = field(default_factory=list)

    def on_request(self, exchange: Exchange) -> tuple[int, Any] | None:
        given = [(k, v) for k, v in exchange.headers if k.lower() in _CREDENTIAL_HEADERS]
        if given:
            self.last = given
        elif self.last:
            exchange.headers.extend(self.last)
        return None


@dataclass
class _MissingStreamHeader(Fault):
    def on_headers(self, exchange: Exchange, status: int, headers: Headers) -> tuple[int, Headers]:
        kept = [(k, v) for k, v in headers if k.lower() != b"x-vercel-ai-ui-message-stream"]
        return status, kept


@dataclass
class _NullChunkField(Fault):
    def on_chunk(self, exchange: Exchange, chunk: Chunk) -> Chunk | None:
        if chunk.get("type") == "text-delta":
            chunk["providerMetadata"] = None
        return chunk


@dataclass
class _ResumeNewMessageId(Fault):
    """A resumed stream starts a new assistant message instead of replaying the same one."""

    def applies(self, method: str, path: str) -> bool:
        return method == "GET" and _CHAT_STREAM.match(path) is not None

    def on_chunk(self, exchange: Exchange, chunk: Chunk) -> Chunk | None:
        if chunk.get("type") == "start":
            chunk["messageId"] = f"msg_{uuid.uuid4().hex}"
        return chunk


@dataclass
class _StreamWithoutDone(Fault):
    def drops_done(self) -> bool:
        return True


_FACTORIES: dict[str, Callable[[], Fault]] = {
    "wrong-409-body": lambda: _Wrong409Body(
        "wrong-409-body", "409 of POST /api/sessions/{id}/chats is {'error':'conflict'}"
    ),
    "idempotency-broken": lambda: _IdempotencyBroken(
        "idempotency-broken", "a second create of a chat id in its session is a 409"
    ),
    "unread-never-cleared": lambda: _UnreadNeverCleared(
        "unread-never-cleared", "hasUnread is always true in GET /api/sessions/{id}/chats"
    ),
    "list-order-reversed": lambda: _ListOrderReversed(
        "list-order-reversed", "GET /api/sessions/{id}/chats lists newest first"
    ),
    "forbidden-as-not-found": lambda: _ForbiddenAsNotFound(
        "forbidden-as-not-found", "another account's session is a 404 instead of a 403"
    ),
    "ignores-auth": lambda: _IgnoresAuth(
        "ignores-auth", "requests without credentials act as the last authenticated caller"
    ),
    "missing-stream-header": lambda: _MissingStreamHeader(
        "missing-stream-header", "streams lack x-vercel-ai-ui-message-stream"
    ),
    "null-chunk-field": lambda: _NullChunkField(
        "null-chunk-field", 'text-delta chunks carry "providerMetadata": null'
    ),
    "resume-new-message-id": lambda: _ResumeNewMessageId(
        "resume-new-message-id", "a resumed stream's start chunk has a new messageId"
    ),
    "stream-without-done": lambda: _StreamWithoutDone(
        "stream-without-done", "streams end without data: [DONE]"
    ),
}
FAULTS: tuple[str, ...] = tuple(_FACTORIES)


def parse_faults(raw: str | None) -> list[str]:
    """Split ``name[,name]``, refusing names that are not in ``FAULTS``."""
    names = [name.strip() for name in (raw or "").split(",") if name.strip()]
    unknown = [name for name in names if name not in _FACTORIES]
    if unknown:
        raise ValueError(f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(FAULTS)}")
    return names


def faults_from_env(
    environ: Mapping[str, str] = os.environ, variable: str = FAULTS_ENV
) -> list[str]:
    """The faults named by ``RECOUP_FAULTS`` (none by default); an unknown name raises."""
    return parse_faults(environ.get(variable))


class _SseRewriter:
    """Applies chunk faults frame by frame without holding back complete frames."""

    def __init__(self, faults: Sequence[Fault], exchange: Exchange) -> None:
        self.faults = faults
        self.exchange = exchange
        self.pending = b""

    def feed(self, data: bytes, *, final: bool) -> bytes:
        self.pending += data
        *frames, self.pending = self.pending.split(b"\n\n")
        if final and self.pending:
            frames, self.pending = [*frames, self.pending], b""
        return b"".join(self._frame(frame) for frame in frames)

    def _frame(self, frame: bytes) -> bytes:
        if not frame.startswith(b"data: "):
            return frame + b"\n\n"
        payload = frame[len(b"data: ") :]
        if payload.strip() == b"[DONE]":
            return b"" if any(f.drops_done() for f in self.faults) else frame + b"\n\n"
        try:
            chunk: Chunk | None = json.loads(payload)
        except ValueError:
            return frame + b"\n\n"
        for fault in self.faults:
            if chunk is not None:
                chunk = fault.on_chunk(self.exchange, chunk)
        if chunk is None:
            return b""
        return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


def _is_event_stream(headers: Headers) -> bool:
    return any(
        k.lower() == b"content-type" and v.startswith(b"text/event-stream") for k, v in headers
    )


class FaultsMiddleware:
    """Pure ASGI middleware applying the named faults; with none it passes everything through."""

    def __init__(self, app: ASGIApp, *, faults: Sequence[str] = ()) -> None:
        self.app = app
        self.faults = [_FACTORIES[name]() for name in parse_faults(",".join(faults))]
        if self.faults:
            logger.warning("FAULTS ENABLED (never in production): %s", ", ".join(faults))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.faults:
            await self.app(scope, receive, send)
            return
        active = [f for f in self.faults if f.applies(scope["method"], scope["path"])]
        if not active:
            await self.app(scope, receive, send)
            return
        exchange = Exchange(scope["method"], scope["path"], list(scope["headers"]))
        if any(f.reads_request_body for f in active):
            receive = await self._buffer_request(exchange, receive)
        for fault in active:
            answer = fault.on_request(exchange)
            if answer is not None:
                await _send_json(send, *answer)
                return
        scope = {**scope, "headers": exchange.headers}
        await self.app(scope, receive, _ResponseRewriter(active, exchange, send).send)

    @staticmethod
    async def _buffer_request(exchange: Exchange, receive: Receive) -> Receive:
        messages: list[Message] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        exchange.body = b"".join(m.get("body", b"") for m in messages)

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        return replay


class _ResponseRewriter:
    """Rewrites the status and headers, then streams SSE frame by frame or buffers JSON."""

    def __init__(self, faults: Sequence[Fault], exchange: Exchange, send: Send) -> None:
        self.faults = faults
        self.exchange = exchange
        self.downstream = send
        self.start: Message | None = None
        self.sse: _SseRewriter | None = None
        self.buffered = b""

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            await self._start(message)
        elif message["type"] == "http.response.body" and self.sse is not None:
            final = not message.get("more_body", False)
            data = self.sse.feed(message.get("body", b""), final=final)
            await self.downstream({**message, "body": data})
        elif message["type"] == "http.response.body" and self.start is not None:
            self.buffered += message.get("body", b"")
            if not message.get("more_body", False):
                await self._flush_json()
        else:
            await self.downstream(message)

    async def _start(self, message: Message) -> None:
        status, headers = message["status"], list(message.get("headers", []))
        for fault in self.faults:
            status, headers = fault.on_headers(self.exchange, status, headers)
        message = {**message, "status": status, "headers": headers}
        if _is_event_stream(headers):
            self.sse = _SseRewriter(self.faults, self.exchange)
        elif any(f.rewrites_json for f in self.faults) and _is_json(headers):
            self.start = message
            return
        await self.downstream(message)

    async def _flush_json(self) -> None:
        assert self.start is not None
        body = self.buffered
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if document is not None:
            for fault in self.faults:
                document = fault.on_json(self.exchange, self.start["status"], document)
            body = json.dumps(document).encode()
        headers = [(k, v) for k, v in self.start["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await self.downstream({**self.start, "headers": headers})
        await self.downstream({"type": "http.response.body", "body": body})


def _is_json(headers: Headers) -> bool:
    return any(k.lower() == b"content-type" and b"json" in v for k, v in headers)


async def _send_json(send: Send, status: int, body: Any) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def wrap_with_faults(app: ASGIApp, names: list[str]) -> ASGIApp:
    """``app`` with the named faults applied (``app`` itself when there are none)."""
    return FaultsMiddleware(app, faults=names) if names else app
