"""Servers under load: the operations, starting a server, loading it with wrk, and medians.

A server runs as its own process (one uvicorn process with the options of ``recoup-api serve``)
on a free loopback port, over the database it is given (by default an SQLite file in its data
directory). Its CPU time comes from ``/proc``, so each load run carries CPU ms per request.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import load, seed
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
    # response until its last byte, so streams are not in this table: bench/streaming.py and
    # bench/readers.py read their frames with asyncio clients.
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
        return process_cpu_s(self.pid)


def process_cpu_s(pid: int) -> float:
    """CPU seconds a process has used (all its threads), from /proc; 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stolen_cpu_s() -> float:
    """CPU seconds the hypervisor has taken from this machine's CPUs (all of them), from /proc.

    On a virtual machine whose host is busy, a vCPU stops for milliseconds at a time while the
    guest believes it runs: a server's thread stalls, and every request in flight waits. Shown
    beside the figures it disturbs (the "steal" column of ``/proc/stat``; 0 on bare metal).
    """
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


def children_cpu_s(parent: int) -> float:
    """CPU seconds of a process and all its children, ended or alive (a PostgreSQL postmaster's).

    The children that ended and were waited for count in the parent's cutime and cstime.
    """
    try:
        fields = Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    total = sum(int(fields[n]) for n in (11, 12, 13, 14)) / ticks
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


@contextmanager
def served(
    target: str,
    data_dir: Path,
    log: Path,
    extra_env: dict[str, str] | None = None,
    database_url: str | None = None,
) -> Iterator[Server]:
    """One server process over ``data_dir`` (and ``database_url``); yields it once ready."""
    port = _free_port()
    env = {
        **os.environ,
        "RECOUP_DATA_DIR": str(data_dir),
        "RECOUP_DATABASE_URL": database_url or seed.database_url(data_dir),
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


def load_operation(
    servers: Sequence[Server],
    fixture: Fixture,
    operation: Operation,
    clients: int,
    duration_s: float,
    database_cpu_s: Callable[[], float] | None = None,
) -> load.Result:
    """One wrk run (one wrk per server, the clients split between them), with CPU ms/request.

    CPU ms is the CPU time of all the servers together per request answered; ``database_cpu_s``
    (a database server's CPU seconds so far) gives the database's the same way.
    """
    db_before = database_cpu_s() if database_cpu_s else 0.0
    cpu_before = sum(server.cpu_s() for server in servers)
    stolen_before, started = stolen_cpu_s(), time.monotonic()
    result = load.run(
        base_urls=[server.base_url for server in servers],
        method=operation.method,
        path=operation.path.format(**asdict(fixture)),
        body=operation.body,
        api_key=fixture.api_key,
        connections=clients,
        duration_s=duration_s,
    )
    cpu_after = sum(server.cpu_s() for server in servers)
    db_after = database_cpu_s() if database_cpu_s else 0.0
    stolen, elapsed = stolen_cpu_s() - stolen_before, time.monotonic() - started
    answered = max(result.requests, 1)
    return dataclasses.replace(
        result,
        cpu_ms=(cpu_after - cpu_before) * 1000 / answered,
        db_cpu_ms=(db_after - db_before) * 1000 / answered,
        steal_pct=stolen * 100 / (elapsed * (os.cpu_count() or 1)),
    )


@dataclass(frozen=True)
class Cell:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float
    errors: int
    requests: int
    db_cpu_ms: float = 0.0
    steal_pct: float = 0.0  # the median run's share of all CPUs' time the hypervisor took
    steal_max_pct: float = 0.0  # the most it took in one run


def median_cell(results: list[load.Result]) -> Cell:
    """Each figure the median over the runs; errors and requests summed."""
    return Cell(
        rps=statistics.median(r.rps for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        cpu_ms=statistics.median(r.cpu_ms for r in results),
        errors=sum(r.errors for r in results),
        requests=sum(r.requests for r in results),
        db_cpu_ms=statistics.median(r.db_cpu_ms for r in results),
        steal_pct=statistics.median(r.steal_pct for r in results),
        steal_max_pct=max(r.steal_pct for r in results),
    )


def steal_line(cells: Mapping[tuple[str, str, int], Cell], names: Sequence[str]) -> str:
    """The host's share of the CPUs during the runs of each named server or setup (the first
    element of the cells' keys): median and most, in one sentence for below a table."""
    figures = []
    for name in names:
        runs = [cell for key, cell in cells.items() if key[0] == name]
        median = statistics.median(cell.steal_pct for cell in runs) if runs else 0.0
        most = max((cell.steal_max_pct for cell in runs), default=0.0)
        figures.append(f"{name} median {median:.1f} %, at most {most:.1f} % in one run")
    return (
        "Steal: the share of the CPUs' time the hypervisor took from this machine during the "
        f"runs (/proc/stat), while the servers' threads stood still. {'; '.join(figures)}."
    )
