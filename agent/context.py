"""What every tool call of a run can reach: the session's workspace, its todo list, and limits."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from agent.todos import TodoStore


def _allow_private_fetch() -> bool:
    return os.environ.get("RECOUP_FETCH_ALLOW_PRIVATE") == "1"


def _sandbox_network() -> bool:
    return os.environ.get("RECOUP_SANDBOX_NETWORK") == "1"


@dataclass
class ToolContext:
    """The dependencies of a run's tools (pydantic-ai `deps`)."""

    workspace: Path
    session_id: str
    todo_store: TodoStore
    network: bool = field(default_factory=_sandbox_network)
    command_timeout_s: float = 120.0
    max_output_bytes: int = 30_000
    fetch_max_bytes: int = 1_000_000
    fetch_timeout_s: float = 20.0
    fetch_allow_private: bool = field(default_factory=_allow_private_fetch)
    subagent_max_steps: int = 10
