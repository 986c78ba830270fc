"""The kit against this server as a real process: it passes clean, and fails on every fault."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conformance.cli import main
from server.faults import FAULTS
from tests.conformance.conftest import CLEAN, Targets

# Each fault, the scenario that must catch it, and what its report must say.
CAUGHT_BY = {
    "wrong-409-body": ("chat_id_conflicts_across_sessions", '{"error": "conflict"}'),
    "idempotency-broken": ("create_chat_is_idempotent_in_its_session", "second create: 409"),
    "unread-never-cleared": ("unread_is_false_without_a_reply", "a new chat has hasUnread true"),
    "list-order-reversed": ("chats_are_listed_oldest_first", "expected creation order"),
    "forbidden-as-not-found": ("sessions_are_owner_only", "as another account: 404"),
    "ignores-auth": ("credentials_are_required", "no credentials: expected 401, got 200"),
    "missing-stream-header": ("stream_has_the_protocol_headers", "x-vercel-ai-ui-message-stream"),
    "null-chunk-field": (
        "stream_follows_the_chunk_grammar",
        "text-delta: providerMetadata is null",
    ),
    "resume-new-message-id": ("resume_replays_the_same_message", "not the original's start"),
    "stream-without-done": (
        "stream_follows_the_chunk_grammar",
        "the last frame is not data: [DONE]",
    ),
}


def _results(junit: Path) -> dict[str, tuple[str, str]]:
    """``name -> (passed|failed|skipped, detail)`` for every test case of a JUnit report."""
    results = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome = next(iter(case), None)
        status = "passed" if outcome is None else outcome.tag.replace("failure", "failed")
        detail = "" if outcome is None else outcome.get("message", "")
        results[f"{case.get('classname')}:{case.get('name')}"] = (status, detail)
    return results


def test_every_fault_has_a_scenario_that_catches_it():
    assert set(CAUGHT_BY) == set(FAULTS)


def test_the_server_conforms(targets: Targets, tmp_path: Path):
    target = targets.ready(CLEAN)
    junit = tmp_path / "report.xml"
    command = [sys.executable, "-m", "conformance", *target.kit_args("--max-examples", "5")]
    done = subprocess.run(
        [*command, "--junit", str(junit)], capture_output=True, text=True, timeout=600
    )
    targets.release(CLEAN)
    results = _results(junit)
    failures = {name: detail for name, (status, detail) in results.items() if status == "failed"}
    assert not failures, done.stdout
    assert all(detail for status, detail in results.values() if status == "skipped"), done.stdout
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("fault", sorted(CAUGHT_BY))
def test_the_kit_fails_on_a_fault(fault: str, targets: Targets, tmp_path: Path):
    target = targets.ready(fault)
    junit = tmp_path / "report.xml"
    scenario, symptom = CAUGHT_BY[fault]
    code = main(target.kit_args("--no-fuzz", "--scenarios", scenario, "--junit", str(junit)))
    targets.release(fault)
    status, detail = _results(junit)[f"scenarios:{scenario}"]
    assert (code, status) == (1, "failed"), detail
    assert symptom in detail
