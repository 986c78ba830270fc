"""Confining file paths to a session's workspace."""

from __future__ import annotations

import os
from pathlib import Path


class PathEscapeError(ValueError):
    """A path given by the model points outside the workspace."""


def resolve_in_workspace(workspace: Path, path: str) -> Path:
    """Return the real, absolute location of `path` inside `workspace`.

    `path` is relative to the workspace, or absolute when it names a place inside it. Symlinks are
    followed (also dangling ones, and also in directories that do not exist yet), so a link that
    leads out of the workspace is refused just like `..` or an outside absolute path.

    Raises:
        PathEscapeError: when the resolved location is not the workspace or below it.
    """
    if "\x00" in path:
        raise PathEscapeError("path contains a NUL byte")
    if path == "~" or path.startswith("~/"):
        raise PathEscapeError(f"path {path!r} is outside the workspace (use a relative path)")
    root = Path(os.path.realpath(workspace))
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = root / candidate
    # realpath resolves every symlink it can reach, including a dangling link's target,
    # which is what decides where a later write would land.
    resolved = Path(os.path.realpath(candidate))
    if resolved != root and root not in resolved.parents:
        raise PathEscapeError(f"path {path!r} is outside the workspace")
    return resolved


def display_path(workspace: Path, resolved: Path) -> str:
    """Return `resolved` relative to the workspace, as shown to the model (`.` for the root)."""
    root = Path(os.path.realpath(workspace))
    relative = resolved.relative_to(root).as_posix()
    return relative or "."
