"""Provisioning a session's workspace: a git checkout in the data directory that outlives runs."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sandbox.runner import IsolationMode, isolation_mode

DEFAULT_TIMEOUT_SECONDS = 30 * 60
_CLONE_TIMEOUT_S = 300.0
# Git never prompts (no terminal) and never runs the `ext::` transport, which executes commands.
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/true"}
_GIT_SAFETY = ["-c", "protocol.ext.allow=never"]


class ProvisionError(Exception):
    """The workspace could not be created (a failed clone, a missing git); the message says why."""


@dataclass(frozen=True)
class SandboxState:
    """A session's sandbox as kept in its `sandbox_state`; `to_json`/`from_json` round-trip it."""

    workspace: str
    created_at: datetime
    last_active_at: datetime
    timeout_seconds: int
    current_branch: str
    mode: IsolationMode
    ready_ms: int
    repo_url: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict (datetimes as ISO 8601 strings)."""
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["last_active_at"] = self.last_active_at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SandboxState:
        """Rebuild a state from `to_json`'s output."""
        return cls(
            **{
                **data,
                "created_at": datetime.fromisoformat(data["created_at"]),
                "last_active_at": datetime.fromisoformat(data["last_active_at"]),
            }
        )

    def touched(self, now: datetime) -> SandboxState:
        """Return the state with its inactivity clock restarted at `now`."""
        return replace(self, last_active_at=now)


def is_expired(state: SandboxState, now: datetime) -> bool:
    """Whether the sandbox has been inactive for longer than its timeout (its files still exist)."""
    return now - state.last_active_at > timedelta(seconds=state.timeout_seconds)


def workspace_path(data_dir: Path, session_id: str) -> Path:
    """Where a session's workspace lives: `<data_dir>/workspaces/<session_id>`."""
    if not session_id or "/" in session_id or session_id in {".", ".."}:
        raise ProvisionError(f"invalid session id for a workspace: {session_id!r}")
    return data_dir / "workspaces" / session_id


async def _git(*args: str, cwd: Path | None = None, timeout_s: float = 60.0) -> str:
    """Run git on the host (not sandboxed: cloning needs the network); return stdout."""
    if shutil.which("git") is None:
        raise ProvisionError("git is not installed (run scripts/install-system-deps.sh)")
    process = await asyncio.create_subprocess_exec(
        "git",
        *_GIT_SAFETY,
        *args,
        cwd=cwd,
        env={**os.environ, **_GIT_ENV},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise ProvisionError(f"git {args[0]} timed out after {timeout_s:.0f} s") from None
    if process.returncode != 0:
        detail = stderr.decode(errors="replace").strip().splitlines()
        raise ProvisionError(f"git {args[0]} failed: {' '.join(detail[-3:]) or process.returncode}")
    return stdout.decode(errors="replace").strip()


def _move_into_place(clone: Path, target: Path) -> None:
    try:
        clone.rename(target)
    except OSError as exc:
        # A concurrent provisioning of the same session got there first: keep its workspace.
        if not target.is_dir():
            raise ProvisionError(f"cannot create the workspace: {exc}") from exc


async def _clone(repo_url: str, target: Path) -> None:
    """Clone into a sibling temporary directory, then move it in place: no half-cloned workspace."""
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        await _git(
            "clone", "--quiet", "--", repo_url, str(staging / "repo"), timeout_s=_CLONE_TIMEOUT_S
        )
        _move_into_place(staging / "repo", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


async def _current_branch(workspace: Path) -> str:
    """The checked-out branch, also on a repository without commits; `HEAD` when detached."""
    try:
        return await _git("symbolic-ref", "--short", "-q", "HEAD", cwd=workspace)
    except ProvisionError:
        return "HEAD"


async def provision(
    *,
    data_dir: Path,
    session_id: str,
    repo_url: str | None,
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS,
) -> SandboxState:
    """Create (or revive) the session's workspace and return its state.

    A new workspace is a `git clone` of `repo_url` (any git URL or local path) or, without one, an
    empty repository on branch `main`. An existing workspace keeps its files: provisioning again
    only revives it, whatever `repo_url` says.

    Raises:
        ProvisionError: when the clone (or git itself) fails.
    """
    started = time.monotonic()
    workspace = workspace_path(data_dir, session_id)
    workspace.parent.mkdir(parents=True, exist_ok=True)
    if not workspace.exists():
        if repo_url:
            await _clone(repo_url, workspace)
        else:
            workspace.mkdir(exist_ok=True)
    if not (workspace / ".git").exists():
        await _git("init", "--quiet", "--initial-branch=main", cwd=workspace)
    now = datetime.now(UTC)
    return SandboxState(
        workspace=str(workspace.resolve()),
        created_at=now,
        last_active_at=now,
        timeout_seconds=timeout_seconds,
        current_branch=await _current_branch(workspace),
        mode=(await asyncio.to_thread(isolation_mode))[0],
        ready_ms=round((time.monotonic() - started) * 1000),
        repo_url=repo_url,
    )
