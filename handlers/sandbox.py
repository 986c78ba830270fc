"""Sandboxes: ``POST /api/sandbox`` and ``GET /api/sandbox/status``."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from handlers._access import default_model, owned_session
from handlers._shapes import timestamp
from handlers.sessions import DEFAULT_SESSION_TITLE
from sandbox.runner import isolation_mode
from sandbox.workspace import ProvisionError, SandboxState, is_expired, provision
from server.context import database, settings
from server.errors import BadGateway, Forbidden
from storage import sessions


def _refuse_server_paths(repo_url: str | None, data_dir: Path) -> None:
    # A local clone of the data directory would expose other sessions' workspaces.
    if repo_url is None:
        return
    # os.path.expanduser leaves an unknown "~user" as it is; Path.expanduser would raise.
    local = Path(os.path.expanduser(repo_url.removeprefix("file://")))
    if local.is_absolute() or local.exists():
        if local.resolve().is_relative_to(data_dir.resolve()):
            raise Forbidden("repoUrl may not point into the server's data directory")


def _sandbox_json(session_id: str, state: SandboxState) -> dict[str, Any]:
    return {
        "sessionId": session_id,
        "createdAt": timestamp(state.created_at),
        "timeout": state.timeout_seconds * 1000,
        "currentBranch": state.current_branch,
        "mode": state.mode,
        "timing": {"readyMs": state.ready_ms},
    }


async def _provision(session_id: str, repo_url: str | None) -> SandboxState:
    try:
        return await provision(
            data_dir=settings().data_dir, session_id=session_id, repo_url=repo_url
        )
    except ProvisionError as exc:
        raise BadGateway(str(exc)) from None


async def create_sandbox(user: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Provision (or revive) a session's workspace; a new session when none is named."""
    body = body or {}
    repo_url, session_id = body.get("repoUrl"), body.get("sessionId")
    _refuse_server_paths(repo_url, settings().data_dir)
    if session_id is None:
        session_id = str(uuid.uuid4())
        state = await _provision(session_id, repo_url)
        async with database().transaction() as tx:
            await sessions.create_session_with_chat(
                tx,
                account_id=user,
                title=DEFAULT_SESSION_TITLE,
                artist_id=None,
                model_id=await default_model(tx, account_id=user),
                session_id=session_id,
                sandbox_state=state.to_json(),
            )
        return _sandbox_json(session_id, state)
    async with database().transaction() as tx:
        await owned_session(tx, session_id=session_id, account_id=user)
    state = await _provision(session_id, repo_url)
    async with database().transaction() as tx:
        record = await owned_session(tx, session_id=session_id, account_id=user)
        await sessions.set_sandbox_state(tx, record=record, sandbox_state=state.to_json())
    return _sandbox_json(session_id, state)


async def get_sandbox_status(session_id: str, user: str) -> dict[str, Any]:
    """Whether the session's sandbox is provisioned and alive, and the server's isolation."""
    async with database().read() as tx:
        record = await owned_session(tx, session_id=session_id, account_id=user)
    mode, sentence = await asyncio.to_thread(isolation_mode)
    status: dict[str, Any] = {"sessionId": session_id, "status": "none", "mode": mode}
    status["isolation"] = sentence
    if record.sandbox_state is None:
        return status
    state = SandboxState.from_json(record.sandbox_state)
    expires = state.last_active_at + timedelta(seconds=state.timeout_seconds)
    return {
        **status,
        "status": "expired" if is_expired(state, datetime.now(UTC)) else "ready",
        "createdAt": timestamp(state.created_at),
        "lastActiveAt": timestamp(state.last_active_at),
        "expiresAt": timestamp(expires),
        "currentBranch": state.current_branch,
        "timeout": state.timeout_seconds * 1000,
    }
