"""File tools: `read`, `write`, `edit`, `grep`, `glob`; every path is confined to the workspace.

They are plain (sync) functions: pydantic-ai runs them in a worker thread, off the event loop.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterator
from pathlib import Path

from pydantic_ai import RunContext, ToolFailed
from typing_extensions import TypedDict

from agent.context import ToolContext
from sandbox.paths import PathEscapeError, display_path, resolve_in_workspace

_MAX_LINE_CHARS = 2000
_MAX_READ_BYTES = 5_000_000
# Directories nobody wants searched: version control and dependency caches.
SKIPPED_DIRS = {".git", "node_modules", "__pycache__", ".venv"}


class ReadResult(TypedDict):
    path: str
    content: str
    start_line: int
    end_line: int
    total_lines: int
    truncated: bool


class WriteResult(TypedDict):
    path: str
    bytes_written: int
    created: bool


class EditResult(TypedDict):
    path: str
    replacements: int


class GrepMatch(TypedDict):
    path: str
    line: int
    text: str


class GrepResult(TypedDict):
    matches: list[GrepMatch]
    truncated: bool


class GlobResult(TypedDict):
    paths: list[str]
    truncated: bool


def confined(ctx: RunContext[ToolContext], path: str) -> Path:
    """Resolve a tool's path argument in the workspace, as a tool failure when it escapes."""
    try:
        return resolve_in_workspace(ctx.deps.workspace, path)
    except PathEscapeError as exc:
        raise ToolFailed(str(exc)) from exc


def _read_text(path: Path, shown: str) -> str:
    if not path.exists():
        raise ToolFailed(f"file not found: {shown}")
    if path.is_dir():
        raise ToolFailed(f"{shown} is a directory; use glob to list it")
    if path.stat().st_size > _MAX_READ_BYTES:
        raise ToolFailed(f"{shown} is larger than {_MAX_READ_BYTES} bytes; use grep or bash")
    return path.read_text(encoding="utf-8", errors="replace")


def read(ctx: RunContext[ToolContext], path: str, offset: int = 1, limit: int = 2000) -> ReadResult:
    """Read a text file from the workspace, with line numbers.

    Args:
        path: File path, relative to the workspace root (or absolute inside it).
        offset: First line to return, counting from 1.
        limit: Maximum number of lines to return.
    """
    target = confined(ctx, path)
    shown = display_path(ctx.deps.workspace, target)
    if offset < 1 or limit < 1:
        raise ToolFailed("offset and limit must be at least 1")
    lines = _read_text(target, shown).splitlines()
    selected = lines[offset - 1 : offset - 1 + limit]
    numbered = [
        f"{number:6d}\t{line[:_MAX_LINE_CHARS]}"
        for number, line in enumerate(selected, start=offset)
    ]
    return ReadResult(
        path=shown,
        content="\n".join(numbered),
        start_line=offset,
        end_line=offset + len(selected) - 1,
        total_lines=len(lines),
        truncated=offset - 1 + len(selected) < len(lines),
    )


def write(ctx: RunContext[ToolContext], path: str, content: str) -> WriteResult:
    """Create or overwrite a file in the workspace (parent directories are created).

    Args:
        path: File path, relative to the workspace root (or absolute inside it).
        content: The complete new content of the file.
    """
    target = confined(ctx, path)
    if target.is_dir():
        raise ToolFailed(f"{display_path(ctx.deps.workspace, target)} is a directory")
    created = not target.exists()
    target.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode("utf-8")
    target.write_bytes(data)
    return WriteResult(
        path=display_path(ctx.deps.workspace, target), bytes_written=len(data), created=created
    )


def edit(
    ctx: RunContext[ToolContext],
    path: str,
    old_string: str,
    new_string: str,
    replace_all: bool = False,
) -> EditResult:
    """Replace an exact piece of text in a file; it must occur exactly once unless `replace_all`.

    Args:
        path: File path, relative to the workspace root (or absolute inside it).
        old_string: The exact text to replace, including whitespace and indentation.
        new_string: The replacement text.
        replace_all: Replace every occurrence instead of requiring a unique one.
    """
    target = confined(ctx, path)
    shown = display_path(ctx.deps.workspace, target)
    if not old_string:
        raise ToolFailed("old_string must not be empty")
    text = _read_text(target, shown)
    count = text.count(old_string)
    if count == 0:
        raise ToolFailed(f"old_string not found in {shown}")
    if count > 1 and not replace_all:
        raise ToolFailed(
            f"old_string occurs {count} times in {shown}; add context to make it unique "
            "or set replace_all"
        )
    target.write_text(text.replace(old_string, new_string), encoding="utf-8")
    return EditResult(path=shown, replacements=count)


def walk_files(root: Path, workspace: Path) -> Iterator[Path]:
    """Yield the files under `root`, skipping noise directories and links leaving the workspace."""
    if root.is_file():
        yield root
        return
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in SKIPPED_DIRS)
        for name in sorted(files):
            candidate = Path(directory) / name
            try:
                resolve_in_workspace(workspace, str(candidate))
            except PathEscapeError:
                continue
            yield candidate


def grep(
    ctx: RunContext[ToolContext],
    pattern: str,
    path: str = ".",
    glob: str | None = None,
    ignore_case: bool = False,
    max_results: int = 200,
) -> GrepResult:
    """Search file contents with a regular expression (Python syntax).

    Args:
        pattern: The regular expression to look for, line by line.
        path: File or directory to search, relative to the workspace root.
        glob: Only search files whose name matches this pattern (e.g. `*.py`).
        ignore_case: Match without regard to case.
        max_results: Stop after this many matching lines.
    """
    root = confined(ctx, path)
    try:
        regex = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        raise ToolFailed(f"invalid regular expression: {exc}") from exc
    matches: list[GrepMatch] = []
    for file in walk_files(root, ctx.deps.workspace):
        if glob and not fnmatch.fnmatch(file.name, glob):
            continue
        try:
            data = file.read_bytes()
        except OSError:
            continue
        if b"\x00" in data[:8192]:  # binary file
            continue
        for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
            if regex.search(line):
                if len(matches) == max_results:
                    return GrepResult(matches=matches, truncated=True)
                shown = display_path(ctx.deps.workspace, file)
                matches.append(GrepMatch(path=shown, line=number, text=line[:_MAX_LINE_CHARS]))
    return GrepResult(matches=matches, truncated=False)


def glob(
    ctx: RunContext[ToolContext], pattern: str, path: str = ".", max_results: int = 500
) -> GlobResult:
    """List files matching a glob pattern such as `**/*.py` (sorted, relative to the workspace).

    Args:
        pattern: The pattern, relative to `path`; `**` matches any number of directories.
        path: Directory to search from, relative to the workspace root.
        max_results: Return at most this many paths.
    """
    root = confined(ctx, path)
    if pattern.startswith("/") or ".." in Path(pattern).parts:
        raise ToolFailed("the pattern must be relative and must not contain '..'")
    found: list[str] = []
    for candidate in sorted(root.glob(pattern)):
        if SKIPPED_DIRS.intersection(candidate.relative_to(root).parts):
            continue
        try:
            resolve_in_workspace(ctx.deps.workspace, str(candidate))
        except PathEscapeError:
            continue
        found.append(display_path(ctx.deps.workspace, candidate))
    return GlobResult(paths=found[:max_results], truncated=len(found) > max_results)
