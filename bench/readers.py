"""Many resumed readers of one live run: the server's memory per open stream, and what readers see.

A paced run (``test/slow``) is started with ``POST /api/chat`` (its own stream is read to the end
too, as the reference), then ``readers`` clients open ``GET /api/chat/{chatId}/stream`` at once,
as the AI SDK's ``reconnectToStream`` does (no ``startIndex``: the whole stream is replayed, then
followed live). The server is ``bench.stream_server`` (``recoup-api serve`` plus a write stamp per
chunk), a process apart from this client.

The readers are raw asyncio sockets speaking just enough HTTP/1.1 (one GET, a chunked body of SSE
frames) in this process: a thousand httpx streams would cost this client far more CPU, on the same
two cores as the server. Each frame is stamped with ``time.time()`` on arrival.

- **Memory**: the server's VmRSS (``/proc/<pid>/status``), and its PSS and USS (private clean +
  private dirty, ``/proc/<pid>/smaps_rollup``), sampled while only the run and its ``POST`` stream
  are open, then while all readers follow the run live (every reader has received a chunk written
  after the last reader's answer began). Per stream = (with readers − before) / readers.
- **Correctness**: a reader is complete when its frames are byte for byte those of the ``POST``
  stream (every chunk through ``finish``), followed by ``[DONE]``.
- **Live delay**: arrival − the server's write stamp, over chunks written after the reader's answer
  began (replayed chunks are not live), and the same over the window in which all readers follow.
- **CPU**: the server process's CPU time over that window, as a share of one core.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import resource
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench.streaming import LIVE_MODEL, Client, Percentiles, percentiles, write_times

# repr() of the prompt keeps its spaces, and the offline model echoes up to 200 characters of it:
# about 100 one-letter words, so the run streams ~130 text-deltas, one every ``pace`` seconds.
LONG_PROMPT = " ".join(["a"] * 100)
WARM_UP_READERS = 10


@dataclass
class Reader:
    """One resumed reader, as it saw its stream."""

    status: int = 0
    answered_at: float = 0.0  # time.time() when the response head arrived
    arrivals: list[float] = field(default_factory=list)  # time.time() of data frame k
    digest: str = ""  # sha256 over the data frames, in order
    done: bool = False  # `data: [DONE]` received
    last_type: str = ""
    error: str = ""
    answered: asyncio.Event = field(default_factory=asyncio.Event)  # head received, or failed


@dataclass(frozen=True)
class Memory:
    rss_kb: int
    pss_kb: int
    uss_kb: int
    threads: int


def memory(pid: int) -> Memory:
    """The process's resident, proportional and unique set sizes, from /proc."""
    status = _fields(Path(f"/proc/{pid}/status").read_text())
    rollup = _fields(Path(f"/proc/{pid}/smaps_rollup").read_text())
    return Memory(
        rss_kb=status["VmRSS"],
        pss_kb=rollup["Pss"],
        uss_kb=rollup["Private_Clean"] + rollup["Private_Dirty"],
        threads=status["Threads"],
    )


def _fields(text: str) -> dict[str, int]:
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        parts = value.split()
        if parts and parts[0].isdigit():
            found[name.strip()] = int(parts[0])
    return found


def _median_memory(samples: list[Memory]) -> Memory:
    return Memory(
        rss_kb=int(statistics.median(s.rss_kb for s in samples)),
        pss_kb=int(statistics.median(s.pss_kb for s in samples)),
        uss_kb=int(statistics.median(s.uss_kb for s in samples)),
        threads=int(statistics.median(s.threads for s in samples)),
    )


def raise_open_files_limit(needed: int) -> None:
    """Let this process (and the servers it starts) hold ``needed`` sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise SystemExit(f"RLIMIT_NOFILE hard limit {hard} < {needed}: raise it (ulimit -Hn)")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


async def follow(host: str, port: int, path: str, api_key: str, reader: Reader) -> None:
    """GET ``path`` and read its SSE body to the end, stamping each data frame."""
    digest = hashlib.sha256()
    writer: asyncio.StreamWriter | None = None
    try:
        stream, writer = await asyncio.open_connection(host, port)
        writer.write(
            f"GET {path} HTTP/1.1\r\nhost: {host}:{port}\r\nx-api-key: {api_key}\r\n"
            "accept: text/event-stream\r\n\r\n".encode()
        )
        head = (await stream.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        reader.answered_at = time.time()
        reader.status = int(head[0].split()[1])
        reader.answered.set()
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
        if reader.status != 200 or headers.get("transfer-encoding") != "chunked":
            reader.error = f"status {reader.status}"
            return
        buffer = b""
        while True:
            size = int((await stream.readline()).split(b";")[0], 16)
            if size == 0:
                break
            data = await stream.readexactly(size + 2)
            arrived = time.time()
            buffer += data[:-2]
            *frames, buffer = buffer.split(b"\n\n")
            for frame in frames:
                if frame == b"data: [DONE]":
                    reader.done = True
                elif frame.startswith(b"data: {"):
                    digest.update(frame)
                    reader.arrivals.append(arrived)
                    reader.last_type = json.loads(frame[6:])["type"]
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        reader.error = repr(exc)
    finally:
        reader.answered.set()
        reader.digest = digest.hexdigest()
        if writer is not None:
            writer.close()


@dataclass(frozen=True)
class Round:
    """One server, one run, ``readers`` resumed readers."""

    readers: int
    chunks: int  # data frames of the POST stream
    complete: int  # readers whose frames equal the POST stream's, then [DONE]
    errors: int  # connection errors, non-200 answers, readers that did not end
    error_kinds: dict[str, int]  # what went wrong, how often
    open_streams: int  # readers answered 200 (the streams memory is divided by)
    connect_s: float  # first GET sent → last reader's answer began
    all_live_s: float  # first GET sent → every reader had received a live chunk
    steady_s: float  # all readers following → the run's last write
    memory_before: Memory
    memory_with: Memory
    memory_peak_rss_kb: int
    cpu_share: float  # server CPU seconds per second over the steady window
    database_cpu_share: float | None  # a PostgreSQL cluster's, the same way
    client_cpu_share: float  # this client's, the same way
    live_delay: Percentiles  # every live chunk of every reader
    steady_delay: Percentiles  # chunks written while all readers followed

    @property
    def per_stream_kb(self) -> dict[str, float]:
        before, after = self.memory_before, self.memory_with
        return {
            "rss": (after.rss_kb - before.rss_kb) / max(self.open_streams, 1),
            "pss": (after.pss_kb - before.pss_kb) / max(self.open_streams, 1),
            "uss": (after.uss_kb - before.uss_kb) / max(self.open_streams, 1),
        }


async def _sample_until(
    pid: int, stop: asyncio.Event, every_s: float
) -> list[tuple[float, Memory]]:
    samples = []
    while not stop.is_set():
        samples.append((time.time(), memory(pid)))
        try:
            await asyncio.wait_for(stop.wait(), every_s)
        except TimeoutError:
            pass
    return samples


async def measure_round(
    *,
    base_url: str,
    api_key: str,
    pid: int,
    cpu_s: Callable[[], float],
    write_log: Path,
    readers: int,
    batch: int,
    timeout_s: float,
    database_cpu_s: Callable[[], float] | None = None,
) -> Round:
    """Start a paced run, open ``readers`` resumed readers on it, and follow them to the end.

    ``batch`` > 0 opens them that many at a time, each batch once the previous one is answered;
    0 opens all at once.
    """
    address = urlsplit(base_url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    client = Client(base_url, api_key)
    try:
        # Warm-up: the first run and the first resumed reads load what they import.
        await _one_run(client, host, port, api_key, WARM_UP_READERS, "hello", timeout_s)
        session_id, chat_id = await client.sandboxed_chat(LIVE_MODEL)
        reference, going = Reader(), asyncio.Event()
        posted = asyncio.create_task(_post(client, session_id, chat_id, reference, going))
        await going.wait()  # the run is going and its POST stream open
        await asyncio.sleep(1.0)
        if posted.done():
            raise SystemExit(f"the paced run ended early: {posted.result()} {reference}")
        before = _median_memory([memory(pid) for _ in range(5)])
        stop_sampling = asyncio.Event()
        sampling = asyncio.create_task(_sample_until(pid, stop_sampling, 0.25))
        started = time.time()
        db_cpu = database_cpu_s or (lambda: 0.0)
        cpu_start, client_start, db_start = cpu_s(), time.process_time(), db_cpu()
        group = [Reader() for _ in range(readers)]
        path = f"/api/chat/{chat_id}/stream"
        tasks = []
        for first in range(0, readers, batch or readers):
            batch_group = group[first : first + (batch or readers)]
            tasks += [
                asyncio.create_task(follow(host, port, path, api_key, r)) for r in batch_group
            ]
            if batch:
                await asyncio.gather(*(r.answered.wait() for r in batch_group))
        # "All following": every reader has received a chunk that arrived after the last answer.
        all_live = 0.0
        cpu_live = client_live = db_live = 0.0
        while not all(t.done() for t in tasks) and time.time() - started < timeout_s:
            if not all_live and all(r.answered_at or r.error for r in group):
                last_answer = max(r.answered_at for r in group)
                if all(r.error or (r.arrivals and r.arrivals[-1] > last_answer) for r in group):
                    all_live = time.time()
                    cpu_live, client_live, db_live = cpu_s(), time.process_time(), db_cpu()
            await asyncio.sleep(0.02)
        finished_at = time.time()
        cpu_end, client_end, db_end = cpu_s(), time.process_time(), db_cpu()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.wait_for(posted, timeout_s)
        stop_sampling.set()
        samples = await sampling
    finally:
        await client.close()
    written = write_times(write_log).get(posted.result(), {})
    last_write = max(written.values(), default=finished_at)
    window_end = min(last_write, finished_at)
    steady = [m for at, m in samples if all_live and all_live <= at <= window_end]
    if not steady:  # the run ended before all readers followed: take the fullest moment
        steady = [max(samples, key=lambda s: s[1].rss_kb)[1]]
    live: list[float] = []
    steady_delays: list[float] = []
    for reader in group:
        for index, arrived in enumerate(reader.arrivals):
            stamp = written.get(index)
            if stamp is None or stamp < reader.answered_at:
                continue  # replayed, not live (or the synthetic final `finish`)
            live.append((arrived - stamp) * 1000)
            if all_live and stamp >= all_live:
                steady_delays.append(live[-1])
    complete = sum(
        1
        for r in group
        if not r.error and r.done and r.digest == reference.digest and r.last_type == "finish"
    )
    window = max(finished_at - all_live, 1e-9) if all_live else max(finished_at - started, 1e-9)
    return Round(
        readers=readers,
        chunks=len(reference.arrivals),
        complete=complete,
        errors=sum(1 for r in group if r.error or not r.done),
        error_kinds=dict(
            Counter(r.error or "ended without [DONE]" for r in group if r.error or not r.done)
        ),
        open_streams=sum(1 for r in group if r.status == 200),
        connect_s=max((r.answered_at for r in group), default=started) - started,
        all_live_s=(all_live - started) if all_live else float("nan"),
        steady_s=max(0.0, last_write - all_live) if all_live else 0.0,
        memory_before=before,
        memory_with=_median_memory(steady),
        memory_peak_rss_kb=max(m.rss_kb for _at, m in samples),
        cpu_share=(cpu_end - (cpu_live if all_live else cpu_start)) / window,
        client_cpu_share=(client_end - (client_live if all_live else client_start)) / window,
        database_cpu_share=(
            (db_end - (db_live if all_live else db_start)) / window if database_cpu_s else None
        ),
        live_delay=percentiles(live),
        steady_delay=percentiles(steady_delays),
    )


async def _post(
    client: Client,
    session_id: str,
    chat_id: str,
    reference: Reader,
    live: asyncio.Event,
    text: str = LONG_PROMPT,
) -> str:
    """POST ``text`` and read the run's own stream to the end; returns the run id.

    ``live`` is set once three chunks have arrived (the run is going), or when the stream ends.
    """
    body = {
        "chatId": chat_id,
        "sessionId": session_id,
        "messages": [{"id": "user-1", "role": "user", "parts": [{"type": "text", "text": text}]}],
    }
    digest = hashlib.sha256()
    async with client.http.stream("POST", "/api/chat", json=body) as response:
        run_id = response.headers.get("x-workflow-run-id", "")
        reference.status = response.status_code
        buffer = b""
        async for data in response.aiter_raw():
            buffer += data
            *frames, buffer = buffer.split(b"\n\n")
            for frame in frames:
                if frame == b"data: [DONE]":
                    reference.done = True
                elif frame.startswith(b"data: {"):
                    digest.update(frame)
                    reference.arrivals.append(time.time())
                    reference.last_type = json.loads(frame[6:])["type"]
                    if len(reference.arrivals) >= 3:
                        live.set()
    live.set()
    reference.digest = digest.hexdigest()
    if reference.status != 200 or not reference.done or reference.last_type != "finish":
        raise SystemExit(f"the paced run failed: {reference}")
    return run_id


async def _one_run(
    client: Client, host: str, port: int, api_key: str, readers: int, text: str, timeout_s: float
) -> None:
    """A short run with a few resumed readers, untimed."""
    session_id, chat_id = await client.sandboxed_chat(LIVE_MODEL)
    reference, live = Reader(), asyncio.Event()
    posted = asyncio.create_task(_post(client, session_id, chat_id, reference, live, text))
    await live.wait()
    group = [Reader() for _ in range(readers)]
    path = f"/api/chat/{chat_id}/stream"
    await asyncio.wait_for(
        asyncio.gather(*(follow(host, port, path, api_key, r) for r in group)), timeout_s
    )
    await asyncio.wait_for(posted, timeout_s)


@dataclass(frozen=True)
class Summary:
    rounds: list[Round]
    pace_s: float
    database: str
    batch: int


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_summary(summary: Summary) -> None:
    rounds = summary.rounds
    readers = rounds[0].readers
    per = [r.per_stream_kb for r in rounds]
    print(
        f"\n| resumed readers ({readers:,} on one run, {summary.database}, 1 process, "
        f"{f'opened {summary.batch} at a time' if summary.batch else 'opened all at once'}) "
        f"| median of {len(rounds)} | each round |"
    )
    print("|---|---|---|")

    def row(name: str, values: list[float], spec: str) -> None:
        each = ", ".join(format(v, spec) for v in values)
        print(f"| {name} | {format(_med(values), spec)} | {each} |")

    row("memory per open stream, RSS KiB", [p["rss"] for p in per], ".1f")
    row("memory per open stream, PSS KiB", [p["pss"] for p in per], ".1f")
    row("memory per open stream, USS KiB", [p["uss"] for p in per], ".1f")
    row("server RSS before readers, MiB", [r.memory_before.rss_kb / 1024 for r in rounds], ".1f")
    row("server RSS with readers, MiB", [r.memory_with.rss_kb / 1024 for r in rounds], ".1f")
    row("server RSS peak, MiB", [r.memory_peak_rss_kb / 1024 for r in rounds], ".1f")
    row("server threads before readers", [r.memory_before.threads for r in rounds], ".0f")
    row("server threads with readers", [r.memory_with.threads for r in rounds], ".0f")
    row("readers complete (every chunk, finish, [DONE])", [r.complete for r in rounds], ".0f")
    row("streams open (answered 200)", [r.open_streams for r in rounds], ".0f")
    row("errors", [r.errors for r in rounds], ".0f")
    row("chunks per stream", [r.chunks for r in rounds], ".0f")
    row("first GET → last answer began, s", [r.connect_s for r in rounds], ".1f")
    row("first GET → all readers following, s", [r.all_live_s for r in rounds], ".1f")
    row("all following → run's last write, s", [r.steady_s for r in rounds], ".1f")
    row("live chunk delay p50 ms (all live chunks)", [r.live_delay.p50_ms for r in rounds], ".1f")
    row("live chunk delay p99 ms (all live chunks)", [r.live_delay.p99_ms for r in rounds], ".1f")
    row("live chunk delay p50 ms (all following)", [r.steady_delay.p50_ms for r in rounds], ".1f")
    row("live chunk delay p99 ms (all following)", [r.steady_delay.p99_ms for r in rounds], ".1f")
    row("live samples (all following)", [r.steady_delay.count for r in rounds], ".0f")
    row("server CPU, share of one core", [r.cpu_share for r in rounds], ".2f")
    if all(r.database_cpu_share is not None for r in rounds):
        row(
            "PostgreSQL's CPU, share of one core",
            [r.database_cpu_share or 0.0 for r in rounds],
            ".2f",
        )
    row("this client's CPU, share of one core", [r.client_cpu_share for r in rounds], ".2f")
    for number, one in enumerate(rounds, start=1):
        for kind, count in one.error_kinds.items():
            print(f"round {number}: {count} × {kind}")
    if any(r.errors for r in rounds):
        print(
            "With errors, memory per open stream also carries what the failed requests left "
            "in the server's heap and thread pool: an upper bound."
        )
    print(
        f"\n`{LIVE_MODEL}` paced at {summary.pace_s * 1000:g} ms per word. Memory per open stream: "
        "(server memory while all readers follow − before they connect) / streams open; a fresh "
        "server per round. Delay: arrival − the server's write stamp, live chunks only. "
        '"All following": every reader has received a chunk after the last answer began; '
        "CPU shares are over the window from then to the end."
    )


def as_json(summary: Summary) -> str:
    return json.dumps(asdict(summary), indent=1)


def open_files_needed(readers: int) -> int:
    return max(4096, readers * 2 + 512)
