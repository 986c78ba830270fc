"""A session's todo list and where it is kept (`TodoStore`): in memory or in a JSON file."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, TypeAdapter


class TodoItem(BaseModel):
    """One entry of the todo list."""

    id: str
    content: str
    status: Literal["pending", "in_progress", "completed"] = "pending"


_TODO_LIST = TypeAdapter(list[TodoItem])


class TodoStore(Protocol):
    """Keeps each session's todo list; the server may back it with its database."""

    async def load(self, session_id: str) -> list[TodoItem]:
        """Return the session's list (empty when it has none)."""
        ...

    async def save(self, session_id: str, todos: list[TodoItem]) -> None:
        """Replace the session's list."""
        ...


class InMemoryTodoStore:
    """A `TodoStore` that forgets everything when the process ends (tests, one-off runs)."""

    def __init__(self) -> None:
        self._lists: dict[str, list[TodoItem]] = {}

    async def load(self, session_id: str) -> list[TodoItem]:
        """Return a copy of the session's list."""
        return [item.model_copy() for item in self._lists.get(session_id, [])]

    async def save(self, session_id: str, todos: list[TodoItem]) -> None:
        """Replace the session's list."""
        self._lists[session_id] = [item.model_copy() for item in todos]


class JsonFileTodoStore:
    """A `TodoStore` writing `<directory>/<session_id>.todos.json`, atomically.

    Put `directory` outside the workspace (e.g. its parent) so commands cannot rewrite the list.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, session_id: str) -> Path:
        if not session_id or "/" in session_id or session_id.startswith("."):
            raise ValueError(f"invalid session id: {session_id!r}")
        return self.directory / f"{session_id}.todos.json"

    def _read(self, session_id: str) -> list[TodoItem]:
        path = self._path(session_id)
        if not path.exists():
            return []
        return _TODO_LIST.validate_json(path.read_bytes())

    def _write(self, session_id: str, todos: list[TodoItem]) -> None:
        path = self._path(session_id)
        self.directory.mkdir(parents=True, exist_ok=True)
        payload = json.dumps([item.model_dump() for item in todos], indent=2)
        # Write then rename, so a crash never leaves a half-written list.
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".{path.name}.")
        with os.fdopen(handle, "w") as file:
            file.write(payload)
        os.replace(temporary, path)

    async def load(self, session_id: str) -> list[TodoItem]:
        """Return the session's list read from its file."""
        return await asyncio.to_thread(self._read, session_id)

    async def save(self, session_id: str, todos: list[TodoItem]) -> None:
        """Write the session's list to its file."""
        await asyncio.to_thread(self._write, session_id, todos)
