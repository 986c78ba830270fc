"""``python -m bench``: the contract-first server against two code-first baselines, on loopback.

Each server runs alone (one uvicorn process, same options) over its own freshly seeded SQLite
database in a temporary ``RECOUP_DATA_DIR``, on a free port; wrk loads one operation at a time.
Rounds interleave the servers (round 1: recoup, starlette, fastapi; round 2: ...) so slow drift
of the machine spreads over all of them, and each figure is the median over the rounds.
Then the chat list is timed as a session grows, and its query plan is shown. Last, streamed runs
(``POST /api/chat``) are read frame by frame: time to the first chunks, and live chunk delay
(bench/streaming.py). ``--only compare|growth|streaming`` runs one part.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import load, seed, streaming
from bench.seed import Fixture

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    path: str  # formatted with the Fixture's fields
    body: str = ""


OPERATIONS = [
    Operation("GET chats (10)", "GET", "/api/sessions/{list_session}/chats"),
    Operation("POST chat", "POST", "/api/sessions/{create_session}/chats", "{}"),
    Operation(
        "PATCH chat",
        "PATCH",
        "/api/sessions/{update_session}/chats/{update_chat}",
        '{"title": "Renamed chat"}',
    ),
    # --- Streaming operations -------------------------------------------------------------------
    # POST /api/chat and GET /api/chat/{chatId}/stream answer with Server-Sent Events. wrk times a
    # response until its last byte, so streams are not in this table: bench/streaming.py reads
    # their frames with an asyncio client (time to first chunk, live chunk delay), see streaming().
]

TARGETS = {
    "recoup": [str(BIN / "recoup-api"), "serve"],
    "starlette": [sys.executable, "-m", "bench.baselines", "starlette"],
    "fastapi": [sys.executable, "-m", "bench.baselines", "fastapi"],
}
# The real server, logging when each run's stream chunk is written (bench/stream_server.py).
COMMANDS = {**TARGETS, "recoup-stamped": [sys.executable, "-m", "bench.stream_server"]}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Server:
    base_url: str
    pid: int

    def cpu_s(self) -> float:
        """CPU seconds the server process has used (all its threads), from /proc."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def served(
    target: str, data_dir: Path, log: Path, extra_env: dict[str, str] | None = None
) -> Iterator[Server]:
    """One server process over ``data_dir``; yields it once ``/readyz`` answers."""
    port = _free_port()
    env = {
        **os.environ,
        "RECOUP_DATA_DIR": str(data_dir),
        "RECOUP_DATABASE_URL": seed.database_url(data_dir),
        "RECOUP_HOST": "127.0.0.1",
        "RECOUP_PORT": str(port),
        "PYTHONPATH": str(ROOT),
        **(extra_env or {}),
    }
    base_url = f"http://127.0.0.1:{port}"
    with log.open("ab") as output:
        process = subprocess.Popen(
            COMMANDS[target], env=env, stdout=output, stderr=output, cwd=ROOT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{target} exited at start:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base_url}/readyz", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{target} did not become ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield Server(base_url, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _load(
    server: Server, fixture: Fixture, operation: Operation, clients: int, duration_s: float
) -> load.Result:
    """One wrk run; the result carries the server's CPU time per request."""
    cpu_before = server.cpu_s()
    result = load.run(
        base_url=server.base_url,
        method=operation.method,
        path=operation.path.format(**asdict(fixture)),
        body=operation.body,
        api_key=fixture.api_key,
        connections=clients,
        duration_s=duration_s,
    )
    cpu_ms = (server.cpu_s() - cpu_before) * 1000 / max(result.requests, 1)
    return dataclasses.replace(result, cpu_ms=cpu_ms)


@dataclass(frozen=True)
class Cell:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float
    errors: int
    requests: int


def _median(results: list[load.Result]) -> Cell:
    return Cell(
        rps=statistics.median(r.rps for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        cpu_ms=statistics.median(r.cpu_ms for r in results),
        errors=sum(r.errors for r in results),
        requests=sum(r.requests for r in results),
    )


def compare(args: argparse.Namespace, work: Path) -> dict[tuple[str, str, int], Cell]:
    fixtures = {target: asyncio.run(seed.seed(work / target)) for target in args.targets}
    raw: dict[tuple[str, str, int], list[load.Result]] = {}
    for round_no in range(1, args.rounds + 1):
        for target in args.targets:
            print(f"round {round_no}/{args.rounds}: {target}", file=sys.stderr, flush=True)
            with served(target, work / target, work / f"{target}.log") as server:
                for operation in OPERATIONS:  # warm up: imports, caches, connection pool
                    _load(server, fixtures[target], operation, 16, args.warmup)
                for operation in OPERATIONS:
                    for clients in args.clients:
                        result = _load(server, fixtures[target], operation, clients, args.duration)
                        raw.setdefault((target, operation.name, clients), []).append(result)
    return {key: _median(results) for key, results in raw.items()}


def print_comparison(cells: dict[tuple[str, str, int], Cell], args: argparse.Namespace) -> None:
    targets = args.targets
    header = ["operation", "clients"]
    for target in targets:
        header += [f"{target} req/s", f"{target} p50 ms", f"{target} p99 ms", f"{target} CPU ms"]
    header += [f"÷ {t}" for t in targets[1:]] + ["errors"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for operation in OPERATIONS:
        for clients in args.clients:
            row = [operation.name, str(clients)]
            for target in targets:
                cell = cells[(target, operation.name, clients)]
                row += [
                    f"{cell.rps:,.0f}",
                    f"{cell.p50_ms:.1f}",
                    f"{cell.p99_ms:.1f}",
                    f"{cell.cpu_ms:.2f}",
                ]
            first = cells[(targets[0], operation.name, clients)]
            for target in targets[1:]:
                row.append(f"{first.rps / cells[(target, operation.name, clients)].rps:.2f}×")
            row.append(str(sum(cells[(t, operation.name, clients)].errors for t in targets)))
            print("| " + " | ".join(row) + " |")
    total = sum(cell.requests for cell in cells.values())
    print(
        f"\nMedians of {args.rounds} runs of {args.duration:g} s ({total:,} requests in all). "
        "CPU ms: the server process's CPU time per request (all threads), which other load on "
        "the machine disturbs far less than req/s. ÷ X: req/s of the first target over X's."
    )


async def _storage_list_ms(data_dir: Path, *, session_id: str, account_id: str) -> float:
    """The median time of the list query alone, through ``storage``, no HTTP."""
    from storage import chats
    from storage.db import Database

    database = Database(seed.database_url(data_dir))
    timings = []
    try:
        for _ in range(7):
            started = time.perf_counter()
            async with database.transaction() as tx:
                await chats.list_chat_summaries(tx, session_id=session_id, account_id=account_id)
            timings.append((time.perf_counter() - started) * 1000)
    finally:
        await database.dispose()
    return statistics.median(timings[2:])


def growth(args: argparse.Namespace, work: Path) -> None:
    data_dir = work / "growth"
    fixture = asyncio.run(seed.seed(data_dir))
    sessions = {seed.LIST_CHATS: fixture.list_session}
    for size in args.growth_sizes:
        sessions[size] = asyncio.run(
            seed.grown_session(data_dir, account_id=fixture.account_id, chat_count=size)
        )
    biggest = sessions[max(sessions)]
    plan = asyncio.run(
        seed.list_query_plan(data_dir, account_id=fixture.account_id, session_id=biggest)
    )
    print(f"\nEXPLAIN QUERY PLAN of the chat list ({max(sessions):,} chats):")
    for line in plan:
        print(f"    {line}")

    raw: dict[int, list[load.Result]] = {}
    with served("recoup", data_dir, work / "growth.log") as server:
        for _round in range(args.rounds):
            for size, session_id in sessions.items():
                operation = Operation("list", "GET", f"/api/sessions/{session_id}/chats")
                _load(server, fixture, operation, 1, args.warmup)
                raw.setdefault(size, []).append(_load(server, fixture, operation, 1, args.duration))
    print("\n| chats | req/s | p50 ms | p99 ms | CPU ms | storage only ms | p50 µs/chat | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for size, session_id in sessions.items():
        cell = _median(raw[size])
        query_ms = asyncio.run(
            _storage_list_ms(data_dir, session_id=session_id, account_id=fixture.account_id)
        )
        print(
            f"| {size:,} | {cell.rps:,.1f} | {cell.p50_ms:.2f} | {cell.p99_ms:.2f} | "
            f"{cell.cpu_ms:.2f} | {query_ms:.2f} | {cell.p50_ms * 1000 / size:.1f} | "
            f"{cell.errors} |"
        )
    sizes = sorted(sessions)
    for small, large in zip(sizes, sizes[1:], strict=False):
        low, high = _median(raw[small]).p50_ms, _median(raw[large]).p50_ms
        print(
            f"{small:,} → {large:,} chats: rows ×{large / small:g}, p50 ×{high / low:.1f}, "
            f"marginal {(high - low) * 1000 / (large - small):.1f} µs per added chat"
        )


def stream_figures(args: argparse.Namespace, work: Path) -> None:
    data_dir = work / "streaming"
    fixture = asyncio.run(seed.seed(data_dir))
    write_log = work / "stream-writes.log"
    extra_env = {
        "RECOUP_TEST_MODELS": "1",  # enables test/slow, the paced model of the live runs
        "RECOUP_TEST_MODEL_DELAY": f"{args.stream_pace:g}",
        "RECOUP_BENCH_WRITE_LOG": str(write_log),
    }
    print("streaming", file=sys.stderr, flush=True)
    with served("recoup-stamped", data_dir, work / "streaming.log", extra_env) as server:
        figures = asyncio.run(
            streaming.measure(
                base_url=server.base_url,
                api_key=fixture.api_key,
                write_log=write_log,
                runs=args.stream_runs,
                live_runs=args.stream_live_runs,
                pace_s=args.stream_pace,
            )
        )
    streaming.print_figures(figures)
    if args.stream_json:
        args.stream_json.write_text(json.dumps(asdict(figures), indent=1))


def _list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--duration", type=int, default=3, help="seconds per run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up load")
    parser.add_argument("--rounds", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--clients", type=_list, default=[1, 16, 64])
    parser.add_argument(
        "--targets", type=lambda t: t.split(","), default=list(TARGETS), help="recoup first"
    )
    parser.add_argument("--growth-sizes", type=_list, default=[1000, 10000])
    parser.add_argument("--no-compare", action="store_true", help="skip the comparison")
    parser.add_argument("--no-growth", action="store_true", help="skip the growth part")
    parser.add_argument("--no-streaming", action="store_true", help="skip the streaming part")
    parser.add_argument(
        "--only", choices=["compare", "growth", "streaming"], help="run this part alone"
    )
    parser.add_argument("--stream-runs", type=int, default=25, help="runs timed to first chunk")
    parser.add_argument("--stream-live-runs", type=int, default=8, help="paced runs (live delay)")
    parser.add_argument(
        "--stream-pace", type=float, default=0.02, help="seconds per word of test/slow"
    )
    parser.add_argument("--stream-json", type=Path, help="also write the streaming figures here")
    parser.add_argument("--json", type=Path, help="also write the comparison's medians here")
    parser.add_argument("--keep", action="store_true", help="keep the data dirs and logs")
    args = parser.parse_args()
    parts = {
        "compare": not args.no_compare,
        "growth": not args.no_growth,
        "streaming": not args.no_streaming,
    }
    if args.only:
        parts = {part: part == args.only for part in parts}
    if parts["compare"] or parts["growth"]:
        load.wrk_path()
    print(
        f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)", file=sys.stderr
    )
    work = Path(tempfile.mkdtemp(prefix="recoup-bench-"))
    try:
        if parts["compare"]:
            cells = compare(args, work)
            print_comparison(cells, args)
            if args.json:
                args.json.write_text(
                    json.dumps(
                        [
                            {"target": t, "operation": o, "clients": c, **asdict(cell)}
                            for (t, o, c), cell in cells.items()
                        ],
                        indent=1,
                    )
                )
        if parts["growth"]:
            growth(args, work)
        if parts["streaming"]:
            stream_figures(args, work)
    finally:
        print(f"load average at end: {os.getloadavg()[0]:.2f}", file=sys.stderr)
        if args.keep:
            print(f"\ndata and logs kept in {work}", file=sys.stderr)
        else:
            subprocess.run(["rm", "-rf", str(work)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
