"""``python -m bench``: the contract-first server against two code-first baselines, on loopback.

The parts, in the order they run (``--only PART`` runs one, ``--no-PART`` skips one):

- ``compare``: each server runs alone (one uvicorn process, same options) over its own freshly
  seeded SQLite database in a temporary ``RECOUP_DATA_DIR``, on a free port; wrk loads one
  operation at a time. Rounds interleave the servers (round 1: recoup, starlette, fastapi; round
  2: ...) so slow drift of the machine spreads over all of them; each figure is the median.
- ``growth``: the chat list timed as a session grows, and its query plan.
- ``backends``: the real server alone on SQLite and on a throwaway PostgreSQL cluster, with one
  and with two server processes, the same operations and clients (bench/backends.py).
- ``streaming``: streamed runs (``POST /api/chat``) read frame by frame: time to the first
  chunks, and live chunk delay (bench/streaming.py).
- ``readers``: 1,000 resumed readers (``GET /api/chat/{chatId}/stream``) of one live run: the
  server's memory per open stream, how many got every chunk, live delay, CPU (bench/readers.py).

``compare``, ``growth`` and ``backends`` need wrk; ``streaming`` and ``readers`` do not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path

from bench import backends, load, readers, seed, streaming
from bench.harness import (
    OPERATIONS,
    TARGETS,
    Cell,
    Operation,
    load_operation,
    median_cell,
    served,
    steal_line,
)


def compare(args: argparse.Namespace, work: Path) -> dict[tuple[str, str, int], Cell]:
    fixtures = {target: asyncio.run(seed.seed(work / target)) for target in args.targets}
    raw: dict[tuple[str, str, int], list[load.Result]] = {}
    for round_no in range(1, args.compare_rounds + 1):
        for target in args.targets:
            print(f"round {round_no}/{args.compare_rounds}: {target}", file=sys.stderr, flush=True)
            with served(target, work / target, work / f"{target}.log") as server:
                for operation in OPERATIONS:  # warm up: imports, caches, connection pool
                    load_operation([server], fixtures[target], operation, 16, args.warmup)
                for operation in OPERATIONS:
                    for clients in args.clients:
                        result = load_operation(
                            [server], fixtures[target], operation, clients, args.duration
                        )
                        raw.setdefault((target, operation.name, clients), []).append(result)
    return {key: median_cell(results) for key, results in raw.items()}


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
        f"\nMedians of {args.compare_rounds} runs of {args.duration:g} s "
        f"({total:,} requests in all). "
        "CPU ms: the server process's CPU time per request (all threads), which other load on "
        "the machine disturbs far less than req/s. ÷ X: req/s of the first target over X's."
    )
    print(steal_line(cells, targets))


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
                load_operation([server], fixture, operation, 1, args.warmup)
                raw.setdefault(size, []).append(
                    load_operation([server], fixture, operation, 1, args.duration)
                )
    print("\n| chats | req/s | p50 ms | p99 ms | CPU ms | storage only ms | p50 µs/chat | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for size, session_id in sessions.items():
        cell = median_cell(raw[size])
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
        low, high = median_cell(raw[small]).p50_ms, median_cell(raw[large]).p50_ms
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


def readers_figures(args: argparse.Namespace, work: Path) -> None:
    """Rounds of ``--readers`` resumed readers on one paced run, a fresh server each round."""
    readers.raise_open_files_limit(readers.open_files_needed(args.readers))
    extra_env = {
        "RECOUP_TEST_MODELS": "1",  # enables test/slow, the paced model
        "RECOUP_TEST_MODEL_DELAY": f"{args.readers_pace:g}",
    }
    rounds = []
    with ExitStack() as stack:
        url, database_cpu_s = None, None
        if args.database == "postgresql":
            print("starting a throwaway PostgreSQL cluster", file=sys.stderr, flush=True)
            postgres = stack.enter_context(backends.postgres_database())
            url, database_cpu_s = postgres.url, postgres.cpu_s
        for round_no in range(1, args.readers_rounds + 1):
            print(
                f"readers round {round_no}/{args.readers_rounds}: {args.readers} readers",
                file=sys.stderr,
                flush=True,
            )
            data_dir = work / f"readers-{round_no}"
            # On PostgreSQL the rounds share the database, each seeding its own account.
            fixture = asyncio.run(seed.seed(data_dir, url))
            write_log = work / f"readers-{round_no}-writes.log"
            env = {**extra_env, "RECOUP_BENCH_WRITE_LOG": str(write_log)}
            log = work / f"readers-{round_no}.log"
            with served("recoup-stamped", data_dir, log, env, database_url=url) as server:
                rounds.append(
                    asyncio.run(
                        readers.measure_round(
                            base_url=server.base_url,
                            api_key=fixture.api_key,
                            pid=server.pid,
                            cpu_s=server.cpu_s,
                            write_log=write_log,
                            readers=args.readers,
                            batch=args.readers_batch,
                            timeout_s=args.readers_timeout,
                            database_cpu_s=database_cpu_s,
                        )
                    )
                )
    summary = readers.Summary(rounds, args.readers_pace, args.database, args.readers_batch)
    readers.print_summary(summary)
    if args.readers_json:
        args.readers_json.write_text(readers.as_json(summary))


def backend_figures(args: argparse.Namespace, work: Path) -> None:
    setups = [
        backends.Setup(backend, processes)
        for backend in args.backends
        for processes in args.processes
    ]
    cells = backends.measure(args, work, args.backends, args.processes)
    backends.print_table(cells, setups, args)


PARTS = ("compare", "growth", "backends", "streaming", "readers")


def _list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=int, default=3, help="seconds per run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up load")
    parser.add_argument(
        "--compare-rounds",
        type=int,
        default=5,
        help="runs per figure (median) of compare, interleaving the servers",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="runs per figure (median) of growth and backends"
    )
    parser.add_argument(
        "--clients", type=_list, default=[1, 16, 64], help="wrk connections (default 1,16,64)"
    )
    parser.add_argument(
        "--targets", type=lambda t: t.split(","), default=list(TARGETS), help="recoup first"
    )
    parser.add_argument("--growth-sizes", type=_list, default=[1000, 10000])
    parser.add_argument("--no-compare", action="store_true", help="skip the comparison")
    parser.add_argument("--no-growth", action="store_true", help="skip the growth part")
    parser.add_argument("--no-streaming", action="store_true", help="skip the streaming part")
    parser.add_argument("--no-backends", action="store_true", help="skip the backends part")
    parser.add_argument("--no-readers", action="store_true", help="skip the readers part")
    parser.add_argument("--only", choices=PARTS, help="run this part alone")
    parser.add_argument("--stream-runs", type=int, default=25, help="runs timed to first chunk")
    parser.add_argument("--stream-live-runs", type=int, default=8, help="paced runs (live delay)")
    parser.add_argument(
        "--stream-pace", type=float, default=0.02, help="seconds per word of test/slow"
    )
    parser.add_argument("--stream-json", type=Path, help="also write the streaming figures here")
    parser.add_argument("--json", type=Path, help="also write the comparison's medians here")
    backend_options = parser.add_argument_group(
        "backends", "the real server on SQLite and PostgreSQL, 1 and 2 processes (wrk)"
    )
    backend_options.add_argument(
        "--backends",
        type=lambda t: t.split(","),
        default=list(backends.BACKENDS),
        help="comma-separated, of sqlite,postgresql (default both)",
    )
    backend_options.add_argument(
        "--processes", type=_list, default=[1, 2], help="server processes (default 1,2)"
    )
    backend_options.add_argument(
        "--backend-duration", type=int, default=2, help="seconds per run (default 2)"
    )
    reader_options = parser.add_argument_group(
        "readers", "resumed readers of one live run: memory per open stream, delay, correctness"
    )
    reader_options.add_argument(
        "--readers", type=int, default=1000, help="concurrent resumed readers (default 1000)"
    )
    reader_options.add_argument(
        "--readers-batch",
        type=int,
        default=0,
        help="open the readers this many at a time, each batch once answered (0: all at once)",
    )
    reader_options.add_argument(
        "--readers-rounds", type=int, default=3, help="rounds, a fresh server each (median)"
    )
    reader_options.add_argument(
        "--readers-pace",
        type=float,
        default=0.12,
        help="seconds per word of the paced run (~130 words; default 0.12)",
    )
    reader_options.add_argument(
        "--readers-timeout", type=float, default=180, help="seconds a round may last at most"
    )
    reader_options.add_argument(
        "--database",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="the readers' server database (postgresql: a throwaway cluster)",
    )
    reader_options.add_argument("--readers-json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the data dirs and logs")
    args = parser.parse_args()
    parts = {part: not getattr(args, f"no_{part}") for part in PARTS}
    if args.only:
        parts = {part: part == args.only for part in parts}
    if parts["compare"] or parts["growth"] or parts["backends"]:
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
        if parts["backends"]:
            backend_figures(args, work)
        if parts["streaming"]:
            stream_figures(args, work)
        if parts["readers"]:
            readers_figures(args, work)
    finally:
        print(f"load average at end: {os.getloadavg()[0]:.2f}", file=sys.stderr)
        if args.keep:
            print(f"\ndata and logs kept in {work}", file=sys.stderr)
        else:
            subprocess.run(["rm", "-rf", str(work)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
