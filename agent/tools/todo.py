"""The `todo` tool: read or replace the session's todo list."""

from __future__ import annotations

from pydantic_ai import RunContext
from typing_extensions import TypedDict

from agent.context import ToolContext
from agent.todos import TodoItem


class TodoResult(TypedDict):
    todos: list[TodoItem]


async def todo(ctx: RunContext[ToolContext], todos: list[TodoItem] | None = None) -> TodoResult:
    """Read the session's todo list, or replace it with `todos` (the complete new list).

    Args:
        todos: The whole list to keep; leave it out to only read the current list.
    """
    store, session_id = ctx.deps.todo_store, ctx.deps.session_id
    if todos is not None:
        await store.save(session_id, todos)
    return TodoResult(todos=await store.load(session_id))
