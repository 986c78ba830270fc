"""Turning any exception a tool raises into a tool error the model sees, never a crashed run."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pydantic_ai import RunContext, ToolFailed
from pydantic_ai.exceptions import (
    ApprovalRequired,
    CallDeferred,
    ModelRetry,
    SkipToolExecution,
    SkipToolValidation,
)
from pydantic_ai.toolsets import AbstractToolset, WrapperToolset
from pydantic_ai.toolsets.abstract import ToolsetTool

from agent.context import ToolContext

logger = logging.getLogger(__name__)

# pydantic-ai's own signals from inside a tool; they must reach the agent unchanged.
_CONTROL_FLOW = (
    ToolFailed,
    ModelRetry,
    CallDeferred,
    ApprovalRequired,
    SkipToolExecution,
    SkipToolValidation,
)


@dataclass
class FailuresAsToolErrors(WrapperToolset[ToolContext]):
    """Wraps a toolset so that an unexpected exception becomes a failed tool result."""

    async def call_tool(
        self,
        name: str,
        tool_args: dict[str, Any],
        ctx: RunContext[ToolContext],
        tool: ToolsetTool[ToolContext],
    ) -> Any:
        """Call the tool; report an unexpected exception to the model as `ToolFailed`."""
        try:
            return await super().call_tool(name, tool_args, ctx, tool)
        except _CONTROL_FLOW:
            raise
        except Exception as exc:
            logger.info("tool %s failed: %r", name, exc)
            raise ToolFailed(f"{type(exc).__name__}: {exc}") from exc


def guarded(toolset: AbstractToolset[ToolContext]) -> FailuresAsToolErrors:
    """Return `toolset` wrapped by `FailuresAsToolErrors`."""
    return FailuresAsToolErrors(toolset)
