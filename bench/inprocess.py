"""``python -m bench.inprocess``: each server's cost per request, in process, without sockets.

The app (``recoup``, or a baseline of ``bench/baselines.py``) is driven through ASGI directly,
one request at a time, over a freshly seeded database (``bench/seed.py``), after its lifespan
has started (for ``recoup``: migrations, DBOS, everything ``recoup-api serve`` starts). For each
of the three benchmarked operations it prints:

- **calls**: Python function calls per request, counted by cProfile. Deterministic: no other
  load on the machine moves it, so it is the figure to compare changes by;
- **CPU ms**: ``time.process_time()`` per request (the whole process, all threads), the minimum
  over ``--runs`` runs of ``--requests`` requests;

each for the whole request and for the framework only (``--framework-only``: the three handlers
replaced by functions returning a constant answer of the same shape, so what remains is routing,
authentication, validation and response building). Every target runs in its own interpreter,
so one cannot warm another's caches. Nothing is asserted anywhere: the output is the record
(docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from bench import seed

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("recoup", "fastapi", "starlette")
OPERATIONS = ("GET chats (10)", "PATCH chat", "POST chat")
_CHAT = {
    "id": "chat",
    "sessionId": "session",
    "title": "New chat",
    "modelId": seed.MODEL,
    "activeStreamId": None,
    "lastAssistantMessageAt": None,
    "createdAt": "2026-01-01T00:00:00.000Z",
    "updatedAt": "2026-01-01T00:00:00.000Z",
}

Asgi = Callable[..., Coroutine[Any, Any, None]]


def _constant_handlers() -> None:
    """Replace the benchmarked handlers by constant answers of the documented shape."""
    from handlers import session_chats

    summary = {**_CHAT, "hasUnread": False, "isStreaming": False}

    async def listed(session_id: str, user: str) -> dict[str, Any]:
        return {"chats": [summary] * seed.LIST_CHATS, "defaultModelId": seed.MODEL}

    async def updated(session_id: str, chat_id: str, user: str, body: Any) -> dict[str, Any]:
        return {"chat": _CHAT}

    async def created(session_id: str, user: str, body: Any = None) -> dict[str, Any]:
        return {"chat": _CHAT}

    session_chats.list_session_chats = listed  # type: ignore[assignment]
    session_chats.update_session_chat = updated  # type: ignore[assignment]
    session_chats.create_session_chat = created  # type: ignore[assignment]


def _app(target: str) -> Asgi:
    if target == "recoup":
        from server.app import create_app

        return create_app()  # type: ignore[return-value]
    from bench import baselines

    return baselines.starlette_app() if target == "starlette" else baselines.fastapi_app()  # type: ignore[return-value]


async def _lifespan(app: Asgi) -> Callable[[], Awaitable[None]]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, inbox.get, outbox.put))
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise SystemExit(f"lifespan failed: {started}")

    async def stop() -> None:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task

    return stop


async def _request(app: Asgi, method: str, path: str, key: str, body: bytes) -> int:
    headers = [(b"host", b"bench"), (b"x-api-key", key.encode())]
    if body:
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    delivered = False
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)
    return statuses[0]


async def _measure(target: str, operation: str, *, requests: int, runs: int) -> dict[str, Any]:
    """In this interpreter: one target, one operation (run by ``main`` in a child process)."""
    data_dir = Path(tempfile.mkdtemp(prefix="recoup-inprocess-"))
    fixture = await seed.seed(data_dir)
    os.environ["RECOUP_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("RECOUP_LOG_LEVEL", "warning")
    app = _app(target)
    stop = await _lifespan(app)
    method, path, body = {
        "GET chats (10)": ("GET", f"/api/sessions/{fixture.list_session}/chats", b""),
        "PATCH chat": (
            "PATCH",
            f"/api/sessions/{fixture.update_session}/chats/{fixture.update_chat}",
            b'{"title": "Renamed chat"}',
        ),
        "POST chat": ("POST", f"/api/sessions/{fixture.create_session}/chats", b"{}"),
    }[operation]
    try:
        for _ in range(200):  # warm-up: first-request caches, the pool, the allocator
            status = await _request(app, method, path, fixture.api_key, body)
            if status != 200:
                raise SystemExit(f"{target} {operation}: HTTP {status}")
        cpu = []
        for _ in range(runs):
            started = time.process_time()
            for _ in range(requests):
                await _request(app, method, path, fixture.api_key, body)
            cpu.append((time.process_time() - started) * 1000 / requests)
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(100):
            await _request(app, method, path, fixture.api_key, body)
        profile.disable()
        calls = pstats.Stats(profile).total_calls / 100  # type: ignore[attr-defined]
    finally:
        await stop()
    return {"cpu_ms": min(cpu), "calls": calls}


def _child(target: str, operation: str, framework_only: bool, requests: int, runs: int) -> None:
    if framework_only:
        _constant_handlers()
    figures = asyncio.run(_measure(target, operation, requests=requests, runs=runs))
    print(json.dumps(figures))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__)
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--requests", type=int, default=400, help="requests per timed run")
    parser.add_argument("--runs", type=int, default=7, help="timed runs (the minimum counts)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        target, operation, framework_only = args.child
        _child(target, operation, framework_only == "1", args.requests, args.runs)
        return 0
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    print("| target | operation | part | calls | CPU ms |")
    print("|---|---|---|---|---|")
    for operation in OPERATIONS:
        for target in args.targets.split(","):
            for framework_only in ("0", "1"):
                answer = subprocess.run(
                    [sys.executable, "-m", "bench.inprocess", "--child", target, operation]
                    + [framework_only, "--requests", str(args.requests), "--runs", str(args.runs)],
                    cwd=ROOT,
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                    capture_output=True,
                    text=True,
                    check=True,
                )
                figures = json.loads(answer.stdout.strip().splitlines()[-1])
                part = "framework only" if framework_only == "1" else "whole request"
                print(
                    f"| {target} | {operation} | {part} | {figures['calls']:,.0f} "
                    f"| {figures['cpu_ms']:.2f} |",
                    flush=True,
                )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
