"""The load generator: wrk (a C program from Debian) driven through a generated Lua script.

wrk rather than a Python client: on a two-core machine the generator shares the CPU with the
server, and wrk spends a small fraction of what an asyncio client would per request, so the
figures measure the server, not the client. It keeps ``connections`` requests in flight (closed
loop: each connection sends its next request when the previous answer arrives), for a bounded
``duration``, and reports latency percentiles from its HdrHistogram.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

_SCRIPT = """
wrk.method = {method}
wrk.body = {body}
wrk.headers["x-api-key"] = {key}
wrk.headers["content-type"] = "application/json"
wrk.path = {path}

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\n@@{{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass(frozen=True)
class Result:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors, timeouts and non-2xx answers
    cpu_ms: float = 0.0  # the server's CPU time per request, when measured


def _lua(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal here (ASCII)


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed: run bench/install-wrk.sh (or `make bench`)")
    return found


def run(
    *,
    base_url: str,
    method: str,
    path: str,
    body: str,
    api_key: str,
    connections: int,
    duration_s: float,
) -> Result:
    """Load one operation for ``duration_s`` with ``connections`` concurrent clients."""
    script = _SCRIPT.format(
        method=_lua(method), body=_lua(body), key=_lua(api_key), path=_lua(path)
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as handle:
        handle.write(script)
        handle.flush()
        done = subprocess.run(
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
                handle.name,
                base_url,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=duration_s + 30,
        )
    line = next(row for row in done.stdout.splitlines() if row.startswith("@@"))
    raw = json.loads(line[2:])
    errors = sum(raw[kind] for kind in ("connect", "read", "write", "status", "timeout"))
    return Result(
        requests=raw["requests"],
        rps=raw["requests"] / (raw["duration_us"] / 1e6),
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        errors=errors,
    )
