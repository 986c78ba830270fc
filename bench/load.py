"""The load generator: wrk (a C program from Debian) driven through a generated Lua script.

wrk rather than a Python client: on a two-core machine the generator shares the CPU with the
server, and wrk spends a small fraction of what an asyncio client would per request, so the
figures measure the server, not the client. It keeps ``connections`` requests in flight (closed
loop: each connection sends its next request when the previous answer arrives), for a bounded
``duration``, and reports latency percentiles from its HdrHistogram.

Several servers (processes of one app) are loaded by one wrk each, started together, the
connections split between them as evenly as they go (1 connection loads the first server only).
Their requests and requests/s add up; their latencies are merged from ~280 percentiles each wrk
prints (every 0.5 % to p90, every 0.1 % above), weighted by each wrk's request count, so a merged
p50 or p99 is exact to within that spacing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_SCRIPT = """
wrk.method = {method}
wrk.body = {body}
wrk.headers["x-api-key"] = {key}
wrk.headers["content-type"] = "application/json"
wrk.path = {path}
quantiles = {{{quantiles}}}

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\n@@{{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
  local points = {{}}
  for _, p in ipairs(quantiles) do
    points[#points + 1] = string.format('[%g,%d]', p, latency:percentile(p))
  end
  io.write('@Q[' .. table.concat(points, ',') .. ']\\n')
end
"""
# The percentiles each wrk prints, for merging the latencies of several wrk runs.
QUANTILES = [0.5 * n for n in range(1, 181)] + [round(90 + 0.1 * n, 1) for n in range(1, 101)]


@dataclass(frozen=True)
class Result:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors, timeouts and non-2xx answers
    cpu_ms: float = 0.0  # the server's CPU time per request, when measured
    db_cpu_ms: float = 0.0  # a separate database server's (PostgreSQL), when measured
    steal_pct: float = 0.0  # share of all CPUs' time the hypervisor took during the run


def _lua(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal here (ASCII)


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed: run bench/install-wrk.sh (or `make bench`)")
    return found


def _start(
    base_url: str, script: str, connections: int, duration_s: float
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            wrk_path(),
            "--threads",
            "1",
            "--connections",
            str(connections),
            "--duration",
            f"{max(1, round(duration_s))}s",
            "--timeout",
            "10s",
            "--script",
            script,
            base_url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _report(process: subprocess.Popen[str], timeout_s: float) -> dict[str, Any]:
    stdout, stderr = process.communicate(timeout=timeout_s)
    if process.returncode != 0:
        raise SystemExit(f"wrk failed ({process.returncode}): {stderr}")
    lines = stdout.splitlines()
    raw: dict[str, Any] = json.loads(next(row for row in lines if row.startswith("@@"))[2:])
    raw["quantiles"] = json.loads(next(row for row in lines if row.startswith("@Q"))[2:])
    return raw


def merged_percentile(reports: list[dict[str, Any]], p: float) -> float:
    """The ``p``-th percentile (µs) of several runs' latencies, from their printed percentiles."""
    weighted: list[tuple[float, float]] = []
    for raw in reports:
        previous = 0.0
        for point, value in raw["quantiles"]:
            weighted.append((value, raw["requests"] * (point - previous) / 100))
            previous = point
    weighted.sort()
    total = sum(weight for _value, weight in weighted)
    running = 0.0
    for value, weight in weighted:
        running += weight
        if running >= total * p / 100 - 1e-9:
            return value
    return weighted[-1][0] if weighted else float("nan")


def run(
    *,
    base_urls: Sequence[str],
    method: str,
    path: str,
    body: str,
    api_key: str,
    connections: int,
    duration_s: float,
) -> Result:
    """Load one operation for ``duration_s`` with ``connections`` concurrent clients in all."""
    script = _SCRIPT.format(
        method=_lua(method),
        body=_lua(body),
        key=_lua(api_key),
        path=_lua(path),
        quantiles=",".join(f"{q:g}" for q in QUANTILES),
    )
    shares = [
        connections // len(base_urls) + (1 if n < connections % len(base_urls) else 0)
        for n in range(len(base_urls))
    ]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as handle:
        handle.write(script)
        handle.flush()
        started = [
            _start(url, handle.name, share, duration_s)
            for url, share in zip(base_urls, shares, strict=True)
            if share
        ]
        reports = [_report(process, duration_s + 30) for process in started]
    errors = sum(
        raw[kind] for raw in reports for kind in ("connect", "read", "write", "status", "timeout")
    )
    if len(reports) == 1:  # wrk's own percentiles, exact
        p50_us, p99_us = reports[0]["p50_us"], reports[0]["p99_us"]
    else:
        p50_us, p99_us = merged_percentile(reports, 50), merged_percentile(reports, 99)
    return Result(
        requests=sum(raw["requests"] for raw in reports),
        rps=sum(raw["requests"] / (raw["duration_us"] / 1e6) for raw in reports),
        p50_ms=p50_us / 1000,
        p99_ms=p99_us / 1000,
        errors=errors,
    )
