"""The `bash` tool: one shell command in the session's sandbox."""

from __future__ import annotations

from pydantic_ai import RunContext
from typing_extensions import TypedDict

from agent.context import ToolContext
from sandbox.runner import run_command


class BashResult(TypedDict):
    exit_code: int
    output: str
    timed_out: bool
    truncated: bool


async def bash(
    ctx: RunContext[ToolContext], command: str, timeout_s: float | None = None
) -> BashResult:
    """Run a shell command (`/bin/sh -c`) in the workspace and return its combined output.

    A non-zero exit code is reported, not raised: read `output` to see what went wrong.

    Args:
        command: The command line to run; the working directory is the workspace root.
        timeout_s: Wall-clock limit in seconds (at most the session's limit).
    """
    limit = ctx.deps.command_timeout_s
    result = await run_command(
        command,
        workspace=ctx.deps.workspace,
        timeout_s=min(timeout_s, limit) if timeout_s and timeout_s > 0 else limit,
        max_output_bytes=ctx.deps.max_output_bytes,
        network=ctx.deps.network,
    )
    return BashResult(
        exit_code=result.exit_code,
        output=result.output,
        timed_out=result.timed_out,
        truncated=result.truncated,
    )
