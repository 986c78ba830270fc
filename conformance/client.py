"""HTTP to the target: every response is recorded and checked against the contract."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from conformance.contract import Contract
from conformance.stream import FrameReader

_UNSET: Any = object()


@dataclass(frozen=True)
class Exchange:
    """One request and its response, with the contract violation it showed, if any."""

    method: str
    path: str
    status: int
    problem: str | None


@dataclass
class Journal:
    """The exchanges of the scenario in progress (thread-safe: a scenario may race requests)."""

    exchanges: list[Exchange] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, exchange: Exchange) -> None:
        with self._lock:
            self.exchanges.append(exchange)

    def take(self) -> list[Exchange]:
        with self._lock:
            taken, self.exchanges = self.exchanges, []
        return taken


class StreamedResponse:
    """An open Server-Sent Events response, read frame by frame as it arrives."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.status_code = response.status_code
        self.headers = response.headers
        self.payloads: list[str] = []
        self.text = ""
        self._reader = FrameReader()
        self._chunks = response.iter_text() if response.status_code == 200 else iter(())
        self._ended = response.status_code != 200
        self._cursor = 0

    def next_payload(self) -> str | None:
        """The next ``data:`` payload, in order, or ``None`` once the stream has ended."""
        while self._cursor == len(self.payloads) and not self._ended:
            try:
                text = next(self._chunks)
            except StopIteration:
                self._ended = True
                self.payloads.extend(self._reader.close())
                break
            self.text += text
            self.payloads.extend(self._reader.feed(text))
        if self._cursor == len(self.payloads):
            return None
        self._cursor += 1
        return self.payloads[self._cursor - 1]

    def read_all(self) -> list[str]:
        """Every payload of the stream, reading it to its end."""
        while self.next_payload() is not None:
            pass
        return self.payloads

    def body(self) -> bytes:
        return self.text.encode() if self.status_code == 200 else self.response.read()


class ApiClient:
    """Requests as one account (``api_key``), each response checked against the contract."""

    def __init__(
        self, http: httpx.Client, contract: Contract, journal: Journal, api_key: str | None
    ) -> None:
        self.http = http
        self.contract = contract
        self.journal = journal
        self.api_key = api_key

    def _headers(self, api_key: str | None) -> dict[str, str]:
        return {"x-api-key": api_key} if api_key else {}

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        api_key: str | None = _UNSET,
        check: bool = True,
    ) -> httpx.Response:
        """Send one request (``json`` is the body, none when ``None``) and read the response."""
        key = self.api_key if api_key is _UNSET else api_key
        response = self.http.request(
            method,
            path,
            headers=self._headers(key),
            params=params,
            **({} if json is None else {"json": json}),
        )
        self._record(
            method, path, params, response.status_code, response.headers, response.content, check
        )
        return response

    @contextmanager
    def stream(
        self, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None
    ) -> Iterator[StreamedResponse]:
        """Open a streaming request; the block reads it, and the rest is read at its end."""
        request = self.http.build_request(
            method,
            path,
            headers=self._headers(self.api_key),
            params=params,
            **({} if json is None else {"json": json}),
        )
        response = self.http.send(request, stream=True)
        streamed = StreamedResponse(response)
        try:
            yield streamed
            if streamed.status_code == 200:
                streamed.read_all()
        finally:
            # Checked even when the scenario stopped early (a 200 then holds what was read).
            try:
                body = streamed.body()
            finally:
                response.close()
            self._record(method, path, params, streamed.status_code, response.headers, body, True)

    def record(
        self, method: str, path: str, params: dict[str, str] | None, response: httpx.Response
    ) -> None:
        """Check and journal a response obtained with ``check=False``."""
        self._record(
            method, path, params, response.status_code, response.headers, response.content, True
        )

    def _record(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        status: int,
        headers: httpx.Headers,
        body: bytes,
        check: bool,
    ) -> None:
        problem = None
        if check:
            problem = self.contract.check(
                method=method, path=path, query=params, status=status, headers=headers, body=body
            )
        self.journal.add(Exchange(method, path, status, problem))
