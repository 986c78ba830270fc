"""Streaming figures: time to the first chunks of ``POST /api/chat``, and live chunk delay.

wrk times a response to its last byte, so streams are read here by an asyncio httpx client that
stamps every frame as it arrives (loopback, one run at a time, bounded run counts). Each run gets
its own session and sandbox (``POST /api/sandbox``, untimed), then the timed ``POST /api/chat``.

- **First chunk / first text-delta**: from sending the request to receiving the ``start`` chunk
  and the first ``text-delta``, with the default offline model.
- **Live chunk delay**: the server is ``bench.stream_server``, which logs when each chunk's write
  to the run's stream returned; delay = client receive time − that write time (same clock), over
  every chunk of runs of the paced ``test/slow`` model, so chunks are written one at a time while
  the client follows the stream live. As a cross-check that needs no server stamp, the excess of
  each text-delta's arrival over the model's pacing (delta k − delta 0 − k × pace) is reported too.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

OFFLINE_PROMPT = "hello"
LIVE_MODEL = "test/slow"


@dataclass
class Received:
    """One streamed run as the client saw it."""

    run_id: str
    status: int
    first_chunk_ms: float | None = None  # request sent → `start` chunk received
    first_delta_ms: float | None = None  # request sent → first `text-delta` received
    chunk_times: list[float] = field(default_factory=list)  # time.time() of chunk k's arrival
    delta_times: list[float] = field(default_factory=list)  # time.time() of each text-delta
    kinds: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Percentiles:
    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True)
class StreamFigures:
    first_chunk: Percentiles
    first_delta: Percentiles
    live_delay: Percentiles  # receive − write, stamped by the server
    live_delay_after_start: Percentiles  # the same without each run's `start` chunk
    pacing_excess: Percentiles  # text-delta k − delta 0 − k × pace
    runs: int
    live_runs: int
    pace_s: float
    chunks_per_live_run: float


def percentiles(values: list[float]) -> Percentiles:
    """p50 and p99 by nearest rank (with few samples, p99 is the maximum)."""
    ordered = sorted(values)
    if not ordered:
        return Percentiles(0, float("nan"), float("nan"), float("nan"))

    def rank(p: float) -> float:
        return ordered[max(0, min(len(ordered) - 1, math.ceil(len(ordered) * p / 100) - 1))]

    return Percentiles(len(ordered), rank(50), rank(99), ordered[-1])


class Client:
    """An API caller over loopback."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url, headers={"x-api-key": api_key}, timeout=httpx.Timeout(60.0)
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def sandboxed_chat(self, model_id: str | None) -> tuple[str, str]:
        """A new session with a provisioned sandbox, and its first chat (untimed setup)."""
        created = await self.http.post("/api/sandbox", json={})
        created.raise_for_status()
        session_id = created.json()["sessionId"]
        listed = await self.http.get(f"/api/sessions/{session_id}/chats")
        listed.raise_for_status()
        chat_id = listed.json()["chats"][0]["id"]
        if model_id is not None:
            patched = await self.http.patch(
                f"/api/sessions/{session_id}/chats/{chat_id}", json={"modelId": model_id}
            )
            patched.raise_for_status()
        return session_id, chat_id

    async def run(self, *, model_id: str | None, text: str) -> Received:
        session_id, chat_id = await self.sandboxed_chat(model_id)
        body = {
            "chatId": chat_id,
            "sessionId": session_id,
            "messages": [
                {"id": "user-1", "role": "user", "parts": [{"type": "text", "text": text}]}
            ],
        }
        sent = time.perf_counter()
        async with self.http.stream("POST", "/api/chat", json=body) as response:
            received = Received(response.headers.get("x-workflow-run-id", ""), response.status_code)
            buffer = b""
            async for data in response.aiter_raw():
                now, wall = time.perf_counter(), time.time()
                buffer += data
                *frames, buffer = buffer.split(b"\n\n")
                for frame in frames:
                    if not frame.startswith(b"data: {"):
                        continue  # keep-alive comments and [DONE]
                    chunk: dict[str, Any] = json.loads(frame[len(b"data: ") :])
                    kind = chunk["type"]
                    received.kinds.append(kind)
                    received.chunk_times.append(wall)
                    if kind == "start" and received.first_chunk_ms is None:
                        received.first_chunk_ms = (now - sent) * 1000
                    if kind == "text-delta":
                        received.delta_times.append(wall)
                        if received.first_delta_ms is None:
                            received.first_delta_ms = (now - sent) * 1000
        return received


def write_times(log: Path) -> dict[str, dict[int, float]]:
    """The server's write stamps: run id → chunk index → time.time()."""
    stamps: dict[str, dict[int, float]] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            run_id, index, written = line.split()
            stamps.setdefault(run_id, {})[int(index)] = float(written)
    return stamps


async def measure(
    *, base_url: str, api_key: str, write_log: Path, runs: int, live_runs: int, pace_s: float
) -> StreamFigures:
    client = Client(base_url, api_key)
    try:
        await client.run(model_id=None, text=OFFLINE_PROMPT)  # warm-up: imports, DBOS, caches
        first = [await client.run(model_id=None, text=OFFLINE_PROMPT) for _ in range(runs)]
        live = [
            await client.run(model_id=LIVE_MODEL, text=OFFLINE_PROMPT) for _ in range(live_runs)
        ]
    finally:
        await client.close()
    for received in first + live:
        if received.status != 200 or not received.kinds or received.kinds[-1] != "finish":
            raise SystemExit(f"a streamed run failed: {received}")
    stamps = write_times(write_log)
    delays: list[float] = []
    after_start: list[float] = []
    excess: list[float] = []
    for received in live:
        written = stamps.get(received.run_id, {})
        if len(written) < len(received.chunk_times) - 1:  # a synthetic final `finish` has none
            raise SystemExit(f"run {received.run_id}: {len(written)} write stamps")
        for index, arrived in enumerate(received.chunk_times):
            if index in written:
                delays.append((arrived - written[index]) * 1000)
                if index > 0:  # `start` is written before the response is set up
                    after_start.append(delays[-1])
        start = received.delta_times[0]
        for k, arrived in enumerate(received.delta_times[1:], start=1):
            excess.append((arrived - start - k * pace_s) * 1000)
    return StreamFigures(
        first_chunk=percentiles([r.first_chunk_ms for r in first if r.first_chunk_ms is not None]),
        first_delta=percentiles([r.first_delta_ms for r in first if r.first_delta_ms is not None]),
        live_delay=percentiles(delays),
        live_delay_after_start=percentiles(after_start),
        pacing_excess=percentiles(excess),
        runs=runs,
        live_runs=live_runs,
        pace_s=pace_s,
        chunks_per_live_run=statistics.mean(len(r.chunk_times) for r in live),
    )


TARGET_MS = 50.0


def print_figures(figures: StreamFigures) -> None:
    print("\n| streaming (POST /api/chat, 1 client) | runs | samples | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|")
    rows = [
        ("request → first chunk (`start`)", figures.runs, figures.first_chunk),
        ("request → first `text-delta`", figures.runs, figures.first_delta),
        ("live chunk delay (write → receive)", figures.live_runs, figures.live_delay),
        ("  the same, `start` chunks left out", figures.live_runs, figures.live_delay_after_start),
        ("text-delta excess over pacing", figures.live_runs, figures.pacing_excess),
    ]
    for name, runs, cell in rows:
        print(
            f"| {name} | {runs} | {cell.count} | {cell.p50_ms:.1f} | {cell.p99_ms:.1f} | "
            f"{cell.max_ms:.1f} |"
        )
    met = {
        "first chunk": figures.first_chunk.p50_ms < TARGET_MS,
        "live delay": figures.live_delay.p50_ms < TARGET_MS,
    }
    print(
        f"\nFirst chunks: offline model, one run at a time. Live delay: `{LIVE_MODEL}` paced at "
        f"{figures.pace_s * 1000:g} ms per word, {figures.chunks_per_live_run:.0f} chunks per run; "
        "write time stamped by the server when the chunk's stream write returned. Target "
        f"p50 < {TARGET_MS:g} ms: "
        + ", ".join(f"{name} {'met' if ok else 'NOT met'}" for name, ok in met.items())
        + "."
    )
