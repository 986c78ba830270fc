"""Isolation claims of the command runner, checked for real under bubblewrap.

These fail (never skip) when bubblewrap cannot run: scripts/install-system-deps.sh installs it.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import pytest

from sandbox.runner import isolation_mode, run_command


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root.resolve()


def _exists(path: str | Path) -> bool:
    return Path(path).exists()


def _read(path: Path) -> str:
    return path.read_text()


def test_bubblewrap_is_in_force() -> None:
    mode, sentence = isolation_mode()
    assert mode == "bwrap", sentence


async def test_command_runs_in_the_workspace(workspace: Path) -> None:
    result = await run_command(
        "pwd; echo hello > out.txt; echo err >&2; exit 3",
        workspace=workspace,
        timeout_s=10,
        max_output_bytes=10_000,
        network=False,
    )
    assert result.exit_code == 3
    assert result.output.splitlines() == [str(workspace), "err"]
    assert _read(workspace / "out.txt") == "hello\n"
    assert not result.timed_out and not result.truncated


async def test_writes_outside_the_workspace_fail(workspace: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    result = await run_command(
        f"echo pwned > {outside}; echo x > /etc/pwned; touch /pwned; "
        "echo private > /tmp/t && cat /tmp/t",
        workspace=workspace,
        timeout_s=10,
        max_output_bytes=10_000,
        network=False,
    )
    assert not any(_exists(p) for p in [outside, "/etc/pwned", "/pwned"])
    assert "Read-only file system" in result.output or "No such file" in result.output
    assert result.output.rstrip().endswith("private")


async def test_environment_is_minimal(workspace: Path) -> None:
    os.environ["RECOUP_TEST_SECRET"] = "leak"
    try:
        result = await run_command(
            "env", workspace=workspace, timeout_s=10, max_output_bytes=10_000, network=False
        )
    finally:
        del os.environ["RECOUP_TEST_SECRET"]
    assert "leak" not in result.output
    assert f"HOME={workspace}" in result.output


async def _connect_from_sandbox(workspace: Path, *, network: bool) -> str:
    """Try to reach a TCP listener on the host's loopback from inside the sandbox."""
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    probe = (
        f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 2)\" "
        "&& echo CONNECTED || echo BLOCKED"
    )
    async with server:
        result = await run_command(
            probe, workspace=workspace, timeout_s=10, max_output_bytes=10_000, network=network
        )
    return result.output


async def test_network_is_unreachable(workspace: Path) -> None:
    output = await _connect_from_sandbox(workspace, network=False)
    assert output.splitlines()[-1] == "BLOCKED", output


async def test_network_can_be_enabled(workspace: Path) -> None:
    output = await _connect_from_sandbox(workspace, network=True)
    assert output.splitlines()[-1] == "CONNECTED", output


def _processes_with(token: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if token.encode() in cmdline:
            found.append(pid)
    return found


async def test_runaway_command_is_killed_with_its_whole_group(workspace: Path) -> None:
    # A unique sleep duration lets us find the processes by their command line afterwards.
    token = f"100.{uuid.uuid4().int % 10**6:06d}"
    started = time.monotonic()
    result = await run_command(
        f"sleep {token} & sleep {token}; echo unreachable",
        workspace=workspace,
        timeout_s=1.0,
        max_output_bytes=10_000,
        network=False,
    )
    assert time.monotonic() - started < 5
    assert result.timed_out
    assert result.exit_code != 0
    assert "unreachable" not in result.output
    assert _processes_with(f"sleep {token}") == []


async def test_background_children_do_not_outlive_the_command(workspace: Path) -> None:
    token = f"200.{uuid.uuid4().int % 10**6:06d}"
    result = await run_command(
        f"(sleep {token} &) ; echo done",
        workspace=workspace,
        timeout_s=5.0,
        max_output_bytes=10_000,
        network=False,
    )
    assert result.output == "done\n" and not result.timed_out
    assert _processes_with(f"sleep {token}") == []


async def test_output_is_capped(workspace: Path) -> None:
    result = await run_command(
        "head -c 1000000 /dev/zero | tr '\\0' y; echo; echo tail",
        workspace=workspace,
        timeout_s=10,
        max_output_bytes=1000,
        network=False,
    )
    assert result.truncated
    assert result.output == "y" * 1000
    assert result.exit_code == 0
