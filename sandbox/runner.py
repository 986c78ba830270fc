"""Running a shell command confined to a workspace: under bubblewrap if it works, else a subprocess.

bubblewrap gives the command a read-only view of the system, the workspace as its only writable
place (plus a private /tmp), no network unless asked, and its own PID namespace so that killing it
kills everything it started. The fallback only sets the working directory, a minimal environment,
its own process group, the timeout and the output cap: it does not stop writes elsewhere.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

IsolationMode = Literal["bwrap", "subprocess"]

# Directories bound read-only into the sandbox; symlinked ones (merged /usr) are recreated as links.
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt")
# What of /etc a shell, git, and TLS clients need; the rest (credentials, host config) stays out.
_ETC_ENTRIES = (
    "alternatives",
    "bash.bashrc",
    "ca-certificates",
    "ca-certificates.conf",
    "debian_version",
    "gitconfig",
    "group",
    "host.conf",
    "hostname",
    "hosts",
    "inputrc",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "passwd",
    "profile",
    "protocols",
    "resolv.conf",
    "services",
    "ssl",
    "timezone",
)
_SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
_READ_CHUNK = 65536
# After the command exits, how long to wait for the pipe to drain before giving up on stragglers.
_DRAIN_GRACE_S = 1.0


@dataclass(frozen=True)
class CommandResult:
    """What a command did: exit code (-signal when killed), stdout+stderr merged, and flags."""

    exit_code: int
    output: str
    timed_out: bool
    truncated: bool


def _bwrap_argv(workspace: Path, *, network: bool) -> list[str]:
    """Build the bwrap prefix that confines a command to `workspace`."""
    argv = ["bwrap"]
    for directory in _SYSTEM_DIRS:
        if os.path.islink(directory):
            argv += ["--symlink", os.readlink(directory), directory]
        elif os.path.isdir(directory):
            argv += ["--ro-bind", directory, directory]
    for entry in _ETC_ENTRIES:
        source = f"/etc/{entry}"
        if os.path.lexists(source):
            argv += ["--ro-bind-try", source, source]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    # Bound at its real path so that paths printed by commands match what the file tools accept.
    argv += ["--bind", str(workspace), str(workspace), "--chdir", str(workspace)]
    # The root itself is a bwrap-made tmpfs: make it read-only so new top-level paths fail too.
    argv += ["--remount-ro", "/"]
    argv += ["--unshare-all", "--die-with-parent", "--new-session"]
    if network:
        argv.append("--share-net")
    argv += ["--clearenv", "--setenv", "PATH", _SANDBOX_PATH, "--setenv", "HOME", str(workspace)]
    argv += ["--setenv", "LANG", "C.UTF-8", "--setenv", "TERM", "dumb"]
    return argv + ["--"]


@functools.cache
def _probe_bwrap() -> str | None:
    """Run `bwrap ... true` once; return None when it works, else why not."""
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed"
    probe_dir = Path(os.path.realpath("/tmp"))
    try:
        completed = subprocess.run(
            [*_bwrap_argv(probe_dir, network=False), "true"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap could not be started: {exc}"
    if completed.returncode != 0:
        detail = completed.stderr.decode(errors="replace").strip()
        return f"bwrap failed on this machine: {detail or completed.returncode}"
    return None


def isolation_mode() -> tuple[IsolationMode, str]:
    """Return the isolation in force and a sentence saying so, for the server's startup log."""
    problem = _probe_bwrap()
    if problem is None:
        return "bwrap", (
            "sandbox: commands run under bubblewrap (read-only system, workspace-only writes, "
            "no network unless enabled)"
        )
    return "subprocess", (
        f"sandbox: {problem}; commands run as plain subprocesses confined only by working "
        "directory, process group, timeout and output cap (files outside the workspace are "
        "NOT protected)"
    )


def _subprocess_env(workspace: Path) -> dict[str, str]:
    """The minimal environment of the fallback: no secrets from the server's own environment."""
    return {"PATH": _SANDBOX_PATH, "HOME": str(workspace), "LANG": "C.UTF-8", "TERM": "dumb"}


def _kill_group(pgid: int) -> None:
    """SIGKILL a process group, ignoring one that is already gone."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _command_argv(command: str, workspace: Path, *, network: bool) -> tuple[list[str], Path]:
    """The argv running `command` in the isolation in force, and the workspace's real path."""
    workspace = Path(os.path.realpath(workspace))
    shell = ["/bin/sh", "-c", command]
    if isolation_mode()[0] == "bwrap":
        return [*_bwrap_argv(workspace, network=network), *shell], workspace
    return shell, workspace


async def _exited(process: asyncio.subprocess.Process) -> None:
    """Wait until the process itself exits.

    `Process.wait()` also waits for its pipes to close, which a leftover background child (in
    the subprocess fallback) would hold open until the timeout; a pidfd signals the exit alone.
    """
    try:
        pidfd = os.pidfd_open(process.pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):  # no pidfd on this platform
        await process.wait()
        return
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()

    def on_readable() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(pidfd, on_readable)
    try:
        await exited
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


async def _read_capped(stream: asyncio.StreamReader, buffer: bytearray, max_bytes: int) -> bool:
    """Read `stream` to its end keeping at most `max_bytes`; return whether anything was dropped."""
    dropped = False
    while chunk := await stream.read(_READ_CHUNK):
        room = max_bytes - len(buffer)
        if len(chunk) > room:
            dropped = True
        buffer += chunk[: max(room, 0)]
    return dropped


async def run_command(
    command: str,
    *,
    workspace: Path,
    timeout_s: float,
    max_output_bytes: int,
    network: bool,
) -> CommandResult:
    """Run `command` with `/bin/sh -c` in `workspace` and return its result.

    The command gets its own session and process group; when `timeout_s` passes, the whole group
    (under bwrap: the whole PID namespace) is killed. Output beyond `max_output_bytes` is dropped
    while the command keeps running, and `truncated` says so.
    """
    argv, workspace = _command_argv(command, workspace, network=network)
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=workspace,
        env=_subprocess_env(workspace),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    assert process.stdout is not None
    buffer = bytearray()
    reader = asyncio.create_task(_read_capped(process.stdout, buffer, max_output_bytes))
    timed_out = False
    try:
        await asyncio.wait_for(_exited(process), timeout_s)
    except TimeoutError:
        timed_out = True
    except BaseException:
        reader.cancel()
        raise
    finally:
        # Also on success: background children left behind would hold the pipe open.
        _kill_group(process.pid)
        await process.wait()
    try:
        truncated = await asyncio.wait_for(reader, _DRAIN_GRACE_S)
    except TimeoutError:
        truncated = True
    exit_code = process.returncode if process.returncode is not None else -signal.SIGKILL
    return CommandResult(
        exit_code=exit_code,
        output=buffer.decode("utf-8", errors="replace"),
        timed_out=timed_out,
        truncated=truncated,
    )
