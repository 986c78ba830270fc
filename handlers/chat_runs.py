"""Headless runs: ``POST /api/chat/runs`` and ``GET /api/chat/runs/{runId}``."""

from __future__ import annotations

import uuid
from typing import Any

from handlers._access import acting_account, default_model, usable_artist
from handlers.sessions import DEFAULT_SESSION_TITLE
from runs import service
from sandbox.workspace import provision
from server.context import database, settings
from server.errors import NotFound
from storage import runs, sessions


async def create_run(user: str, body: dict[str, Any]) -> Any:
    """A new session, chat and sandbox, and a run answering the prompt in it."""
    async with database().transaction() as tx:
        account = await acting_account(tx, caller=user, account_id=body.get("accountId"))
        artist = await usable_artist(tx, account_id=account, artist_id=body.get("artistId"))
        model = body.get("model") or await default_model(tx, account_id=account)
    session_id = str(uuid.uuid4())
    sandbox = await provision(data_dir=settings().data_dir, session_id=session_id, repo_url=None)
    async with database().transaction() as tx:
        record, chat = await sessions.create_session_with_chat(
            tx,
            account_id=account,
            title=DEFAULT_SESSION_TITLE,
            artist_id=artist,
            model_id=model,
            session_id=session_id,
            sandbox_state=sandbox.to_json(),
        )
    messages = body.get("messages") or [service.prompt_message(body["prompt"])]
    try:
        run = await service.start_run(
            account_id=account, session=record, chat=chat, messages=messages
        )
    except service.InvalidMessages as exc:
        # The body is valid by the schema: the run is accepted, and fails at once.
        run = await service.record_unanswerable_run(
            account_id=account, session=record, chat=chat, reason=str(exc)
        )
    created = {"runId": run.run_id, "chatId": chat.id, "sessionId": record.id}
    return created, 202, {"Location": f"/api/chat/runs/{run.run_id}"}


async def get_run(run_id: str, user: str) -> dict[str, Any]:
    """The run's status, for its owner only."""
    async with database().read() as tx:
        run = await runs.get_run(tx, run_id=run_id)
    if run is None or run.account_id != user:
        raise NotFound("Run not found")
    return {"runId": run.id, "status": await service.run_status(run)}
