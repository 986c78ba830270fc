"""Provisioning workspaces: clone, empty repository, revival, expiry, clone failures."""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sandbox.workspace import ProvisionError, SandboxState, is_expired, provision


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _listing(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir())


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A local repository with one commit on branch `trunk`."""
    repo = tmp_path / "origin"
    repo.mkdir()
    _git(repo, "init", "-q", "--initial-branch=trunk")
    (repo / "README.md").write_text("hello\n")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "init")
    return repo


async def test_clone_of_a_local_repository(tmp_path: Path, origin: Path) -> None:
    state = await provision(data_dir=tmp_path / "data", session_id="s1", repo_url=str(origin))
    workspace = Path(state.workspace)
    assert workspace == (tmp_path / "data" / "workspaces" / "s1").resolve()
    assert (workspace / "README.md").read_text() == "hello\n"
    assert state.current_branch == "trunk"
    assert state.mode == "bwrap"
    assert state.ready_ms >= 0 and state.repo_url == str(origin)


async def test_empty_repository_without_url(tmp_path: Path) -> None:
    state = await provision(data_dir=tmp_path, session_id="s2", repo_url=None)
    workspace = Path(state.workspace)
    assert (workspace / ".git").is_dir()
    assert _listing(workspace) == [".git"]
    assert state.current_branch == "main"


async def test_provisioning_again_keeps_the_files(tmp_path: Path, origin: Path) -> None:
    first = await provision(data_dir=tmp_path, session_id="s3", repo_url=str(origin))
    (Path(first.workspace) / "work.txt").write_text("unsaved work")
    second = await provision(data_dir=tmp_path, session_id="s3", repo_url=str(origin))
    assert (Path(second.workspace) / "work.txt").read_text() == "unsaved work"
    assert second.created_at >= first.created_at


async def test_clone_failure_raises_provision_error(tmp_path: Path) -> None:
    with pytest.raises(ProvisionError, match="git clone failed"):
        await provision(data_dir=tmp_path, session_id="s4", repo_url=str(tmp_path / "nope"))
    # A failed clone leaves no workspace and no staging directory behind.
    assert _listing(tmp_path / "workspaces") == []


async def test_option_like_urls_and_ext_transport_are_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    for url in [f"--upload-pack=touch {marker}", f"ext::sh -c 'touch {marker}'"]:
        with pytest.raises(ProvisionError):
            await provision(data_dir=tmp_path, session_id="s5", repo_url=url)
    assert not marker.exists()


async def test_invalid_session_ids_are_refused(tmp_path: Path) -> None:
    for session_id in ["", "..", "a/b"]:
        with pytest.raises(ProvisionError):
            await provision(data_dir=tmp_path, session_id=session_id, repo_url=None)


async def test_state_round_trips_through_json_and_expires(tmp_path: Path) -> None:
    state = await provision(data_dir=tmp_path, session_id="s6", repo_url=None, timeout_seconds=60)
    restored = SandboxState.from_json(json.loads(json.dumps(state.to_json())))
    assert restored == state
    assert not is_expired(state, state.last_active_at + timedelta(seconds=59))
    assert is_expired(state, state.last_active_at + timedelta(seconds=61))
    later = datetime.now(UTC) + timedelta(seconds=61)
    assert not is_expired(state.touched(later), later)


async def test_concurrent_provisioning_of_one_session(tmp_path: Path, origin: Path) -> None:
    states = await asyncio.gather(
        *[provision(data_dir=tmp_path, session_id="s7", repo_url=str(origin)) for _ in range(3)]
    )
    assert {state.workspace for state in states} == {states[0].workspace}
    assert _listing(Path(states[0].workspace)) == [".git", "README.md"]
    assert _listing(tmp_path / "workspaces") == ["s7"]
