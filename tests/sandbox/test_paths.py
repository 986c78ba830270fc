"""Every path a tool receives stays inside the workspace, symlinks included."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox.paths import PathEscapeError, display_path, resolve_in_workspace


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "a.py").write_text("x = 1\n")
    return root


def test_relative_and_inner_absolute_paths_resolve(workspace: Path) -> None:
    real = workspace.resolve()
    assert resolve_in_workspace(workspace, "src/a.py") == real / "src" / "a.py"
    assert resolve_in_workspace(workspace, str(real / "src")) == real / "src"
    assert resolve_in_workspace(workspace, "src/../src/a.py") == real / "src" / "a.py"
    assert resolve_in_workspace(workspace, ".") == real
    assert resolve_in_workspace(workspace, "new/dir/file.txt") == real / "new" / "dir" / "file.txt"


@pytest.mark.parametrize(
    "path", ["..", "../x", "src/../../x", "/etc/passwd", "/", "~/.ssh/id_rsa", "a\x00b"]
)
def test_paths_leaving_the_workspace_are_refused(workspace: Path, path: str) -> None:
    with pytest.raises(PathEscapeError):
        resolve_in_workspace(workspace, path)


def test_sibling_with_common_prefix_is_refused(workspace: Path) -> None:
    sibling = workspace.parent / (workspace.name + "-other")
    sibling.mkdir()
    with pytest.raises(PathEscapeError):
        resolve_in_workspace(workspace, str(sibling / "f"))


def test_escaping_symlinks_are_refused(workspace: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "key").write_text("s3cret")
    os.symlink(outside, workspace / "link")
    os.symlink(outside / "missing", workspace / "dangling")
    os.symlink("../../secret/key", workspace / "src" / "rel")
    for path in ["link", "link/key", "link/new.txt", "dangling", "src/rel"]:
        with pytest.raises(PathEscapeError):
            resolve_in_workspace(workspace, path)


def test_inner_symlinks_are_followed(workspace: Path) -> None:
    os.symlink("src/a.py", workspace / "alias.py")
    resolved = resolve_in_workspace(workspace, "alias.py")
    assert resolved == workspace.resolve() / "src" / "a.py"
    assert display_path(workspace, resolved) == "src/a.py"
