"""What every scenario gets: the clients, the contract, and helpers that skip honestly."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from conformance.client import ApiClient, Journal, StreamedResponse
from conformance.contract import Contract

Scenario = Callable[["Context"], None]
# Statuses that mean "runs do not work on this target (yet)", not "the run rule is broken".
RUN_UNAVAILABLE = (400, 500, 501, 503)


class Skip(Exception):
    """The target does not implement what the scenario needs; the message says what."""


class Failed(AssertionError):
    """The target broke a rule of the contract."""


def expect(condition: object, message: str) -> None:
    """Fail the scenario with ``message`` unless ``condition`` holds."""
    if not condition:
        raise Failed(message)


def short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def user_message(text: str) -> dict[str, Any]:
    """A UIMessage as `useChat` sends it."""
    return {
        "id": f"msg_{uuid.uuid4().hex}",
        "role": "user",
        "parts": [{"type": "text", "text": text}],
    }


def unique_id(label: str) -> str:
    """A client-supplied chat id no other run of the kit will use."""
    return f"conformance-{label}-{uuid.uuid4().hex[:12]}"


@dataclass
class Context:
    """Shared by the scenarios of one kit run."""

    contract: Contract
    journal: Journal
    client: ApiClient
    anonymous: ApiClient
    other: ApiClient | None
    _support: dict[tuple[str, str], str | None] = field(default_factory=dict)
    _unrouted: tuple[int, bytes] | None = None
    _sandboxed: str | None = None

    # -- what the target implements ------------------------------------------------------

    def require(self, method: str, template: str) -> None:
        """Skip the scenario unless the target documents and serves ``METHOD template``."""
        key = (method.upper(), template)
        if key not in self._support:
            self._support[key] = self._unsupported_reason(*key)
        reason = self._support[key]
        if reason is not None:
            raise Skip(reason)

    def implements(self, method: str, template: str) -> bool:
        try:
            self.require(method, template)
        except Skip:
            return False
        return True

    def _unsupported_reason(self, method: str, template: str) -> str | None:
        if not self.contract.has_operation(method, template):
            return f"{method} {template} is not in the target's contract"
        path = template
        while "{" in path:
            start, end = path.index("{"), path.index("}")
            path = path[:start] + str(uuid.uuid4()) + path[end + 1 :]
        # Without credentials an implemented route answers 401 first; an unimplemented one
        # answers 405, or the same 404 as a path that cannot exist.
        probe = self.anonymous.call(method, path, check=False)
        if probe.status_code == 405 or (
            probe.status_code == 404 and self._unrouted_answer() == (404, probe.content)
        ):
            return f"{method} {template} is not implemented (the route answers {probe.status_code})"
        self.anonymous.record(method, path, None, probe)
        return None

    def _unrouted_answer(self) -> tuple[int, bytes]:
        if self._unrouted is None:
            probe = self.anonymous.call(
                "GET", f"/api/conformance-no-such-route-{uuid.uuid4().hex}", check=False
            )
            self._unrouted = (probe.status_code, probe.content)
        return self._unrouted

    # -- fixtures the scenarios build on -------------------------------------------------

    def new_session(self) -> tuple[str, str]:
        """A new session of the primary account: ``(session id, its first chat id)``."""
        self.require("POST", "/api/sessions")
        response = self.client.call("POST", "/api/sessions", json={"title": "conformance"})
        expect(
            response.status_code == 200,
            f"POST /api/sessions: {response.status_code} {short(response.text)}",
        )
        body = response.json()
        return str(body["session"]["id"]), str(body["chat"]["id"])

    def new_chat(self, session_id: str, chat_id: str | None = None) -> str:
        """A new chat in a session (server-generated id unless ``chat_id``)."""
        self.require("POST", "/api/sessions/{sessionId}/chats")
        response = self.client.call(
            "POST", f"/api/sessions/{session_id}/chats", json={"id": chat_id} if chat_id else {}
        )
        expect(
            response.status_code == 200,
            f"create chat: {response.status_code} {short(response.text)}",
        )
        return str(response.json()["chat"]["id"])

    def list_chats(self, session_id: str) -> list[dict[str, Any]]:
        self.require("GET", "/api/sessions/{sessionId}/chats")
        response = self.client.call("GET", f"/api/sessions/{session_id}/chats")
        expect(
            response.status_code == 200,
            f"list chats: {response.status_code} {short(response.text)}",
        )
        return list(response.json()["chats"])

    def chat_row(self, session_id: str, chat_id: str) -> dict[str, Any]:
        rows = [row for row in self.list_chats(session_id) if row["id"] == chat_id]
        expect(len(rows) == 1, f"chat {chat_id} is listed {len(rows)} times")
        return rows[0]

    def sandboxed_session(self) -> str:
        """A session whose sandbox is provisioned (``POST /api/sandbox``), made once per kit run."""
        self.require("POST", "/api/sandbox")
        self.require("POST", "/api/chat")
        if self._sandboxed is None:
            session_id, _chat = self.new_session()
            response = self.client.call("POST", "/api/sandbox", json={"sessionId": session_id})
            if response.status_code != 200:
                raise Skip(
                    f"POST /api/sandbox answered {response.status_code}: {short(response.text)}"
                )
            self._sandboxed = session_id
        return self._sandboxed

    def chat_request(self, session_id: str, chat_id: str, text: str) -> dict[str, Any]:
        return {"sessionId": session_id, "chatId": chat_id, "messages": [user_message(text)]}

    @contextmanager
    def run(self, session_id: str, chat_id: str, text: str) -> Iterator[StreamedResponse]:
        """``POST /api/chat``: the open stream of a new run (skipped when runs do not work)."""
        body = self.chat_request(session_id, chat_id, text)
        with self.client.stream("POST", "/api/chat", json=body) as streamed:
            skip_unless_runs_work(streamed)
            yield streamed

    def wait_until_idle(
        self, session_id: str, chat_id: str, timeout_s: float = 10.0
    ) -> dict[str, Any]:
        """The chat's row once it no longer streams (a run frees its slot just after finish)."""
        deadline = time.monotonic() + timeout_s
        while True:
            row = self.chat_row(session_id, chat_id)
            if not row.get("isStreaming") or time.monotonic() > deadline:
                return row
            time.sleep(0.05)


def skip_unless_runs_work(streamed: StreamedResponse | httpx.Response) -> None:
    """Skip when ``POST /api/chat`` answers in a way that says runs are not available."""
    if streamed.status_code in RUN_UNAVAILABLE:
        body = streamed.body() if isinstance(streamed, StreamedResponse) else streamed.content
        raise Skip(
            f"POST /api/chat answered {streamed.status_code} "
            f"({short(body.decode(errors='replace'))}): runs are not available on the target"
        )
