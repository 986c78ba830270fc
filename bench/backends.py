"""The real server on SQLite and PostgreSQL, with one and with two server processes.

The same three operations and client counts as the comparison, on ``recoup-api serve`` alone:

- **SQLite**: the default setup, a fresh SQLite file in a temporary data directory;
- **PostgreSQL**: a throwaway PostgreSQL cluster started for the benchmark by the tests' helper
  (``tests/postgres.py``: ``initdb`` in a temporary directory, a free port, fsync off), one
  migrated database, the server's DBOS tables in its ``dbos`` schema as in production.

Both are seeded straight through ``storage`` (``bench/seed.py``). Per backend, two
``recoup-api serve`` start once, sharing one database (and one data directory), each on its own
port. "1 process" loads the first alone (the second idles: about 2 % of a core, its durable-run
runtime polling); "2 processes" loads both, each by its own wrk with half the clients, started
together (``bench/load.py``: requests/s add up, latencies are merged); one client loads the
first process only. No load balancer: one in Python would spend CPU of the same two cores, and
its own latency would count as the server's. CPU ms is the CPU time of the loaded processes per
request; on PostgreSQL the cluster's CPU time per request is shown apart (its processes and the
ones that ended, from ``/proc``). Rounds interleave the 1- and 2-process setups of a backend;
each figure is the median over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import load, seed
from bench.harness import (
    OPERATIONS,
    Cell,
    Server,
    children_cpu_s,
    load_operation,
    median_cell,
    served,
    steal_line,
)

BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Setup:
    backend: str
    processes: int

    @property
    def name(self) -> str:
        return f"{self.backend} × {self.processes}"


@dataclass(frozen=True)
class PostgresDatabase:
    url: str
    postmaster_pid: int

    def cpu_s(self) -> float:
        """CPU seconds the cluster's processes have used, those that ended included."""
        return children_cpu_s(self.postmaster_pid)


@contextmanager
def postgres_database() -> Iterator[PostgresDatabase]:
    """A migrated database on a throwaway PostgreSQL cluster (``tests/postgres.py``)."""
    from tests.postgres import running_cluster

    with running_cluster() as cluster, cluster.database() as url:
        pid = int((cluster.data / "postmaster.pid").read_text().split()[0])
        yield PostgresDatabase(url, pid)


@contextmanager
def _servers(
    processes: int, data_dir: Path, log: Path, database_url: str | None
) -> Iterator[list[Server]]:
    with ExitStack() as stack:
        # One after the other: each migrates and launches its durable-run runtime at start.
        yield [
            stack.enter_context(served("recoup", data_dir, log, database_url=database_url))
            for _ in range(processes)
        ]


def measure(
    args: argparse.Namespace, work: Path, backends: list[str], processes: list[int]
) -> dict[tuple[str, str, int], Cell]:
    """Load every setup; (setup name, operation, clients) → median cell.

    Per backend, ``max(processes)`` servers start once; a setup of n processes loads the first
    n (the others idle meanwhile), and rounds interleave the setups of that backend.
    """
    raw: dict[tuple[str, str, int], list[load.Result]] = {}
    for backend in backends:
        with ExitStack() as stack:
            url: str | None = None
            database_cpu: Callable[[], float] | None = None
            if backend == "postgresql":
                print("starting a throwaway PostgreSQL cluster", file=sys.stderr, flush=True)
                postgres = stack.enter_context(postgres_database())
                url, database_cpu = postgres.url, postgres.cpu_s
            data_dir = work / f"backend-{backend}"
            fixture = asyncio.run(seed.seed(data_dir, url))
            log = work / f"backend-{backend}.log"
            servers = stack.enter_context(_servers(max(processes), data_dir, log, url))
            for operation in OPERATIONS:  # warm up every process
                load_operation(servers, fixture, operation, 16, args.warmup, database_cpu)
            for round_no in range(1, args.rounds + 1):
                for count in processes:
                    setup = Setup(backend, count)
                    print(f"round {round_no}/{args.rounds}: {setup.name}", file=sys.stderr)
                    for operation in OPERATIONS:
                        for clients in args.clients:
                            result = load_operation(
                                servers[:count],
                                fixture,
                                operation,
                                clients,
                                args.backend_duration,
                                database_cpu,
                            )
                            raw.setdefault((setup.name, operation.name, clients), []).append(result)
    return {key: median_cell(results) for key, results in raw.items()}


def print_table(
    cells: dict[tuple[str, str, int], Cell], setups: list[Setup], args: argparse.Namespace
) -> None:
    header = "backend | processes | operation | clients | req/s | p50 ms | p99 ms | CPU ms"
    print(f"\n| {header} | PostgreSQL CPU ms | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for setup in setups:
        for operation in OPERATIONS:
            for clients in args.clients:
                cell = cells[(setup.name, operation.name, clients)]
                db_cpu = f"{cell.db_cpu_ms:.2f}" if setup.backend == "postgresql" else "–"
                print(
                    f"| {setup.backend} | {setup.processes} | {operation.name} | {clients} | "
                    f"{cell.rps:,.0f} | {cell.p50_ms:.1f} | {cell.p99_ms:.1f} | "
                    f"{cell.cpu_ms:.2f} | {db_cpu} | {cell.errors} |"
                )
    total = sum(cell.requests for cell in cells.values())
    print(
        f"\nThe real server alone. Medians of {args.rounds} runs of {args.backend_duration:g} s "
        f"({total:,} requests in all). With 2 processes: one wrk per process with half the "
        "clients (1 client: the first process only), req/s summed, latencies merged; CPU ms: "
        "the loaded server processes' CPU time per request. PostgreSQL: a throwaway local cluster "
        "(fsync off) on the same two cores; its CPU ms: the cluster's processes' CPU time per "
        "request (on SQLite the database works inside the server process, in CPU ms)."
    )
    print(steal_line(cells, [setup.name for setup in setups]))
