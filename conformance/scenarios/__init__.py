"""The behavioural scenarios, in the order they run. Each is a small function of a ``Context``.

A scenario passes, fails (``Failed``, or any response that breaks the contract), or is skipped
(``Skip``) when the target does not implement what it needs, with the reason.
"""

from __future__ import annotations

import time

import httpx

from conformance.report import Result, Status
from conformance.scenarios import chats, runs
from conformance.scenarios.base import Context, Failed, Scenario, Skip

SCENARIOS: list[Scenario] = [
    chats.credentials_are_required,
    chats.create_chat_is_idempotent_in_its_session,
    chats.chat_id_conflicts_across_sessions,
    chats.empty_chat_id_is_rejected,
    chats.sessions_are_owner_only,
    chats.missing_resources_are_404,
    chats.chats_are_listed_oldest_first,
    chats.unread_is_false_without_a_reply,
    chats.patch_chat_trims_and_rejects,
    chats.resume_without_a_run_is_204,
    runs.stream_has_the_protocol_headers,
    runs.stream_follows_the_chunk_grammar,
    runs.unread_follows_the_assistant_reply,
    runs.second_run_on_a_chat_is_409,
    runs.resume_replays_the_same_message,
]

__all__ = ["SCENARIOS", "Context", "Failed", "Scenario", "Skip", "run_scenario"]


def run_scenario(ctx: Context, scenario: Scenario) -> Result:
    """Run one scenario; any contract violation among its responses fails it."""
    ctx.journal.take()
    started = time.monotonic()
    status: Status = "passed"
    detail = ""
    try:
        scenario(ctx)
    except Skip as skip:
        status, detail = "skipped", str(skip)
    except Failed as failure:
        status, detail = "failed", str(failure)
    except httpx.HTTPError as exc:
        status, detail = "failed", f"HTTP error: {exc.__class__.__name__}: {exc}"
    except Exception as exc:  # a response the kit could not even read is a failure too
        status, detail = "failed", f"{exc.__class__.__name__}: {exc}"
    violations = [
        f"{x.method} {x.path} -> {x.status}: {x.problem}" for x in ctx.journal.take() if x.problem
    ]
    if violations:
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        contract = f"response breaks the contract: {violations[0]}{more}"
        detail = f"{detail}; {contract}" if status == "failed" else contract
        status = "failed"
    return Result("scenarios", scenario.__name__, status, detail, time.monotonic() - started)
