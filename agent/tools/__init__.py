"""The agent's tools, assembled into the toolset and output spec a run uses.

`ask_user_question` is an output tool: calling it ends the run with the questions as its output.
"""

from __future__ import annotations

from pydantic_ai import ToolOutput
from pydantic_ai.toolsets import AbstractToolset, FunctionToolset

from agent.context import ToolContext
from agent.tools.delegate import SUBAGENT_TOOL_NAMES, task
from agent.tools.errors import guarded
from agent.tools.files import edit, glob, grep, read, write
from agent.tools.questions import UserQuestions, ask_user_question
from agent.tools.shell import bash
from agent.tools.skills import skill
from agent.tools.todo import todo
from agent.tools.web import fetch

__all__ = [
    "OUTPUT_TYPE",
    "SUBAGENT_TOOL_NAMES",
    "TOOL_NAMES",
    "UserQuestions",
    "build_toolset",
]

TOOL_NAMES = (
    "bash",
    "read",
    "write",
    "edit",
    "grep",
    "glob",
    "todo",
    "task",
    "skill",
    "fetch",
    "ask_user_question",
)
# A run ends with text, or with questions for the user.
OUTPUT_TYPE = [str, ToolOutput(ask_user_question, name="ask_user_question")]


def build_toolset(*, max_retries: int = 3) -> AbstractToolset[ToolContext]:
    """The function tools of a run, with unexpected exceptions reported as tool errors."""
    tools = FunctionToolset[ToolContext](
        [bash, read, write, edit, grep, glob, todo, task, skill, fetch], max_retries=max_retries
    )
    return guarded(tools)
