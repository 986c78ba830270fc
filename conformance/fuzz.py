"""Schemathesis over the whole contract against the target, every check and the stateful phase.

It runs Schemathesis's own engine (what ``st run`` runs) in process and turns its events into
one result per operation, plus one for the stateful (link-following) runs.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import schemathesis
from schemathesis.engine import Status, events, from_schema

from conformance.report import Result
from conformance.scenarios.base import short

STATEFUL = "stateful (OpenAPI links)"
# Contract decisions a schema-valid request can meet (docs/decisions.md); everything else
# is Schemathesis's defaults with every check enabled.
DEFAULT_CONFIG: dict[str, Any] = {
    "checks": {"enabled": True},
    # NUL characters are refused with 400: PostgreSQL cannot store them in text.
    "generation": {"allow-x00": False},
    "operations": [
        {
            # Deleting the only chat of a session is a schema-valid request refused with 400.
            "include-operation-id": "session_chats.delete_session_chat",
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "400", "401", "403", "404", "409"]
                }
            },
        },
        {
            # A repository that cannot be cloned is the documented 502, an upstream failure.
            "include-operation-id": "sandbox.create_sandbox",
            "checks": {
                "not_a_server_error": {"expected-statuses": ["1xx", "2xx", "3xx", "4xx", "502"]}
            },
        },
    ],
}


@dataclass
class _Tally:
    statuses: set[Status] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    skip_reasons: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def result(self, name: str) -> Result:
        detail = "; ".join(dict.fromkeys(self.failures))
        if Status.FAILURE in self.statuses or Status.ERROR in self.statuses:
            return Result("schemathesis", name, "failed", detail[:4000], self.seconds)
        if Status.SUCCESS in self.statuses:
            return Result("schemathesis", name, "passed", "", self.seconds)
        reason = "; ".join(dict.fromkeys(self.skip_reasons)) or "not run"
        return Result("schemathesis", name, "skipped", reason, self.seconds)


def _failures(event: events.ScenarioFinished) -> list[str]:
    found = []
    for case_id, checks in event.recorder.checks.items():
        node = event.recorder.cases.get(case_id)
        where = node.value.operation.label if node is not None else "?"
        interaction = event.recorder.interactions.get(case_id)
        response = interaction.response if interaction is not None else None
        answer = (
            f" -> {response.status_code} {short(response.content.decode(errors='replace'), 150)}"
            if response is not None
            else ""
        )
        for check in checks:
            if check.failure_info is not None:
                failure = check.failure_info.failure
                message = " ".join(failure.message.split())[:300]
                found.append(
                    f"{where}: {failure.title}"
                    + (f" ({message})" if message else "")
                    + answer
                    + f" [reproduce: {check.failure_info.code_sample}]"
                )
    return found


def run_schemathesis(
    document: dict[str, Any],
    *,
    base_url: str,
    api_key: str,
    max_examples: int,
    config_path: Path | None = None,
) -> list[Result]:
    """Fuzz ``document`` against ``base_url`` as the account of ``api_key``."""
    config = (
        schemathesis.Config.from_path(str(config_path))
        if config_path is not None
        else schemathesis.Config.from_dict(DEFAULT_CONFIG)
    )
    schema = schemathesis.openapi.from_dict(document, config=config)
    schema.config.update(base_url=base_url, headers={"x-api-key": api_key})
    # Reproducible: the same target gets the same requests on every run.
    schema.config.generation.update(max_examples=max_examples, deterministic=True)
    tallies: dict[str, _Tally] = defaultdict(_Tally)
    errors: list[Result] = []
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            name = STATEFUL if event.phase.value == "stateful" else event.recorder.label
            tally = tallies[name]
            tally.statuses.add(event.status)
            tally.seconds += event.elapsed_time
            tally.failures.extend(_failures(event))
            if event.skip_reason:
                tally.skip_reasons.append(f"{event.phase.value}: {event.skip_reason}")
        elif isinstance(event, events.PhaseFinished) and event.phase.name.value == "stateful":
            if not event.phase.is_enabled and event.phase.skip_reason is not None:
                tallies[STATEFUL].skip_reasons.append(str(event.phase.skip_reason.value))
        elif isinstance(event, events.NonFatalError):
            errors.append(
                Result(
                    "schemathesis", f"error: {event.label}", "failed", event.info.format()[:2000]
                )
            )
        elif isinstance(event, events.FatalError):
            errors.append(Result("schemathesis", "fatal error", "failed", str(event.exception)))
    return [tally.result(name) for name, tally in tallies.items()] + errors
