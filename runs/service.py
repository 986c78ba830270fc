"""Runs in domain terms: start one on a chat, find the live one, stop it, report its status.

A chat's run slot (``chats.active_stream_id``) is taken with one compare-and-set under a run id
generated beforehand, and the durable workflow is started under that same id. A slot whose run
cannot be found, has finished, or never started within :data:`START_GRACE` is proven dead:
the next request clears it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from dbos import DBOS, SetWorkflowID
from sqlalchemy.ext.asyncio import AsyncSession

from agent.history import normalize_ui_message, response_message_id, to_model_messages
from runs import runtime, wakeups
from runs.workflow import chat_run
from storage import runs as run_store
from storage.models import Chat, Run, Session, utc_now

logger = logging.getLogger("recoup_api.runs")

# A run recorded but not started this long ago was lost between the claim and the start.
START_GRACE = timedelta(seconds=30)
_ACTIVE = ("PENDING", "ENQUEUED")
_DBOS_TO_RUN = {"SUCCESS": "completed", "CANCELLED": "cancelled"}


class SlotTaken(Exception):
    """A live run already holds the chat's slot."""


class InvalidMessages(Exception):
    """The messages cannot be read as a conversation to answer."""


@dataclass(frozen=True)
class StartedRun:
    run_id: str
    message_id: str


def new_run_id() -> str:
    return f"wrun_{uuid.uuid4().hex}"


def _conversation(
    messages: Sequence[Mapping[str, Any]], context_limit: int | None
) -> list[dict[str, Any]]:
    normalized = [normalize_ui_message(message) for message in messages]
    if context_limit is not None and context_limit > 0:
        normalized = normalized[-context_limit:]
    if not any(message.get("role") == "user" for message in normalized):
        raise InvalidMessages("messages must include a user message")
    try:
        to_model_messages(normalized)
    except Exception as exc:  # pydantic's validation errors, and the adapter's own
        raise InvalidMessages(f"messages are not valid UIMessages: {exc}") from None
    return normalized


def _text_of(message: Mapping[str, Any]) -> str:
    parts = message.get("parts") or []
    texts = [p.get("text") for p in parts if isinstance(p, dict) and p.get("type") == "text"]
    return " ".join(text for text in texts if isinstance(text, str))


async def _is_live(run: Run) -> bool:
    if run.status in run_store.FINISHED:
        return False
    status = await DBOS.get_workflow_status_async(run.id)
    if status is None:
        return utc_now() - run.created_at < START_GRACE
    return status.status in _ACTIVE


async def _clear_if_dead(tx: AsyncSession, *, chat_id: str, run_id: str) -> bool:
    """Free the slot ``run_id`` holds when its run is dead; true when the slot was freed."""
    run = await run_store.get_run(tx, run_id=run_id)
    if run is not None and await _is_live(run):
        return False
    return await _clear_dead(tx, chat_id=chat_id, run_id=run_id, recorded=run is not None)


async def _clear_dead(tx: AsyncSession, *, chat_id: str, run_id: str, recorded: bool) -> bool:
    """Free the slot of ``run_id``, proven dead, if it still holds it; true when it was freed.

    Only the caller that frees the slot marks the run failed: a run that finished (and freed its
    slot) between the proof and this transaction keeps the status it finished with.
    """
    if not await run_store.release_run_slot(tx, chat_id=chat_id, run_id=run_id):
        return False
    logger.warning("chat %s: cleared the slot of dead run %s", chat_id, run_id)
    if recorded:
        await run_store.set_run_status(tx, run_id=run_id, status="failed", error="interrupted")
    return True


async def _claim(tx: AsyncSession, *, chat: Chat, run_id: str) -> None:
    if await run_store.claim_run_slot(tx, chat_id=chat.id, run_id=run_id):
        return
    holder = await run_store.run_slot_holder(tx, chat_id=chat.id)
    if holder is None or not await _clear_if_dead(tx, chat_id=chat.id, run_id=holder):
        # A holder gone by now was a run finishing: the slot was not free when asked.
        raise SlotTaken(chat.id)
    if not await run_store.claim_run_slot(tx, chat_id=chat.id, run_id=run_id):
        raise SlotTaken(chat.id)


async def start_run(
    *,
    account_id: str,
    session: Session,
    chat: Chat,
    messages: Sequence[Mapping[str, Any]],
    context_limit: int | None = None,
) -> StartedRun:
    """Claim the chat's slot, store the user's message and start the durable run.

    Raises:
        InvalidMessages: nothing to answer.
        SlotTaken: another live run holds the slot.
    """
    conversation = _conversation(messages, context_limit)
    message_id = response_message_id(conversation)
    run_id = new_run_id()
    database = runtime.database()
    async with database.transaction() as tx:
        await _claim(tx, chat=chat, run_id=run_id)
        await run_store.record_run(
            tx,
            run_id=run_id,
            chat_id=chat.id,
            session_id=session.id,
            account_id=account_id,
            message_id=message_id,
        )
        users = [message for message in conversation if message.get("role") == "user"]
        await run_store.save_user_message(tx, chat_id=chat.id, message=users[-1])
        await run_store.name_untitled_chat(tx, chat_id=chat.id, text=_text_of(users[0]))
    request = {
        "runId": run_id,
        "chatId": chat.id,
        "sessionId": session.id,
        "messageId": message_id,
        "modelId": chat.model_id,
        "workspace": str(Path((session.sandbox_state or {})["workspace"])),
        "messages": conversation,
    }
    try:
        with SetWorkflowID(run_id):
            await DBOS.start_workflow_async(chat_run, request)
    except BaseException:
        async with database.transaction() as tx:
            await run_store.set_run_status(tx, run_id=run_id, status="failed", error="not started")
            await run_store.release_run_slot(tx, chat_id=chat.id, run_id=run_id)
        raise
    return StartedRun(run_id=run_id, message_id=message_id)


async def record_unanswerable_run(
    *, account_id: str, session: Session, chat: Chat, reason: str
) -> StartedRun:
    """A run that failed before it started: its messages cannot be answered (``reason``)."""
    run_id = new_run_id()
    async with runtime.database().transaction() as tx:
        await run_store.record_run(
            tx,
            run_id=run_id,
            chat_id=chat.id,
            session_id=session.id,
            account_id=account_id,
            message_id=f"msg_{uuid.uuid4().hex}",
        )
        await run_store.set_run_status(tx, run_id=run_id, status="failed", error=reason)
    return StartedRun(run_id=run_id, message_id="")


async def live_run(*, chat_id: str) -> Run | None:
    """The run in progress on the chat, if any; a dead slot is cleared on the way.

    No transaction is open while DBOS is asked about the run: a read finds the slot's holder,
    and only a holder proven dead takes a (short) write transaction, to free its slot.
    """
    database = runtime.database()
    async with database.read() as tx:
        holder = await run_store.run_slot_holder(tx, chat_id=chat_id)
        run = None if holder is None else await run_store.get_run(tx, run_id=holder)
    if holder is None:
        return None
    if run is not None and await _is_live(run):
        return run
    async with database.transaction() as tx:
        await _clear_dead(tx, chat_id=chat_id, run_id=holder, recorded=run is not None)
    return None


async def stop_run(*, chat_id: str) -> bool:
    """Cancel the chat's run in progress; true when there was one."""
    run = await live_run(chat_id=chat_id)
    if run is None:
        return False
    await DBOS.cancel_workflow_async(run.id)
    # Cancelling writes nothing to the stream: the run's readers here end now, not at their poll.
    wakeups.announce(run.id)
    # A cancelled workflow runs no further step, so its slot is released here.
    async with runtime.database().transaction() as tx:
        await run_store.set_run_status(tx, run_id=run.id, status="cancelled")
        await run_store.release_run_slot(tx, chat_id=chat_id, run_id=run.id)
    return True


async def run_status(run: Run) -> str:
    """The run's status, reconciled with its workflow when the record lags behind it."""
    if run.status in run_store.FINISHED or run.status == "queued":
        return run.status
    workflow = await DBOS.get_workflow_status_async(run.id)
    if workflow is None or workflow.status in _ACTIVE:
        return run.status
    return _DBOS_TO_RUN.get(workflow.status, "failed")


def prompt_message(prompt: str) -> dict[str, Any]:
    """A user UIMessage holding ``prompt``."""
    return {
        "id": f"msg_{uuid.uuid4().hex}",
        "role": "user",
        "parts": [{"type": "text", "text": prompt}],
    }
