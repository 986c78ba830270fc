"""The `task` tool: a sub-agent with a read-mostly subset of the tools, returning its answer."""

from __future__ import annotations

from pydantic_ai import Agent, RunContext, ToolFailed
from pydantic_ai.exceptions import AgentRunError
from pydantic_ai.models import Model
from pydantic_ai.toolsets import FunctionToolset
from pydantic_ai.usage import UsageLimits
from typing_extensions import TypedDict

from agent.context import ToolContext
from agent.tools.errors import guarded
from agent.tools.files import glob, grep, read
from agent.tools.shell import bash
from agent.tools.skills import skill
from agent.tools.web import fetch

SUBAGENT_TOOL_NAMES = ("bash", "read", "grep", "glob", "skill", "fetch")
_INSTRUCTIONS = (
    "You are a sub-agent doing one focused task in a sandboxed workspace. Use the tools to "
    "investigate, then answer with a concise, self-contained report: the caller sees only your "
    "final answer."
)


class TaskResult(TypedDict):
    answer: str


def _subagent(ctx: RunContext[ToolContext]) -> Agent[ToolContext, str]:
    """A fresh agent on the caller's model, with the sub-agent tools."""
    if not isinstance(ctx.model, Model):
        raise ToolFailed("the current model cannot run sub-agents")
    tools = FunctionToolset[ToolContext]([bash, read, grep, glob, skill, fetch], max_retries=3)
    return Agent(
        ctx.model, deps_type=ToolContext, toolsets=[guarded(tools)], instructions=_INSTRUCTIONS
    )


async def task(ctx: RunContext[ToolContext], description: str, prompt: str) -> TaskResult:
    """Hand a self-contained task to a sub-agent (tools: bash, read, grep, glob, skill, fetch).

    Args:
        description: A short (3-5 word) label of the task.
        prompt: Everything the sub-agent needs to know; it does not see this conversation.
    """
    limits = UsageLimits(request_limit=ctx.deps.subagent_max_steps)
    try:
        result = await _subagent(ctx).run(prompt, deps=ctx.deps, usage_limits=limits)
    except AgentRunError as exc:
        raise ToolFailed(f"sub-agent {description!r} stopped: {exc}") from exc
    return TaskResult(answer=result.output)
