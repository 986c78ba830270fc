"""POST /api/sandbox and GET /api/sandbox/status: every documented status."""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from storage.models import Session
from tests.conftest import Accounts, Caller


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A local git repository with one commit on branch `trunk`."""
    path = tmp_path / "repo"
    path.mkdir()
    script = (
        "git init -q -b trunk && echo hello > README && git add README && "
        "git -c user.name=t -c user.email=t@example.com commit -qm init"
    )
    subprocess.run(script, shell=True, cwd=path, check=True)
    return path


def _session(client, caller: Caller) -> str:  # type: ignore[no-untyped-def]
    return client.post("/api/sessions", headers=caller.headers).json()["session"]["id"]


def test_provisioning_a_session_clones_the_repository(client, alice, repo, settings):
    session_id = _session(client, alice)
    response = client.post(
        "/api/sandbox", headers=alice.headers, json={"sessionId": session_id, "repoUrl": str(repo)}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["sessionId"] == session_id
    assert body["currentBranch"] == "trunk"
    assert body["mode"] in ("bwrap", "subprocess")
    assert body["timeout"] == 30 * 60 * 1000
    assert isinstance(body["timing"]["readyMs"], int)
    workspace = settings.data_dir / "workspaces" / session_id
    assert (workspace / "README").read_text() == "hello\n"
    status = client.get(f"/api/sandbox/status?sessionId={session_id}", headers=alice.headers)
    assert status.status_code == 200
    assert status.json()["status"] == "ready"
    assert status.json()["currentBranch"] == "trunk"


def test_without_a_session_id_a_new_session_gets_an_empty_repository(client, alice, settings):
    response = client.post("/api/sandbox", headers=alice.headers)
    assert response.status_code == 200
    session_id = response.json()["sessionId"]
    assert response.json()["currentBranch"] == "main"
    assert (settings.data_dir / "workspaces" / session_id / ".git").is_dir()
    listed = client.get(f"/api/sessions/{session_id}/chats", headers=alice.headers)
    assert [chat["title"] for chat in listed.json()["chats"]] == ["New chat"]


def test_provisioning_again_revives_and_keeps_the_files(client, alice, settings):
    session_id = client.post("/api/sandbox", headers=alice.headers).json()["sessionId"]
    kept = settings.data_dir / "workspaces" / session_id / "notes.txt"
    kept.write_text("still here")
    again = client.post("/api/sandbox", headers=alice.headers, json={"sessionId": session_id})
    assert again.status_code == 200
    assert kept.read_text() == "still here"


def test_status_of_an_unprovisioned_and_an_expired_sandbox(client, alice, people: Accounts):
    session_id = _session(client, alice)
    url = f"/api/sandbox/status?sessionId={session_id}"
    none = client.get(url, headers=alice.headers)
    assert none.status_code == 200
    assert none.json()["status"] == "none"
    assert none.json()["isolation"].startswith("sandbox:")
    client.post("/api/sandbox", headers=alice.headers, json={"sessionId": session_id})

    async def age(tx):  # type: ignore[no-untyped-def]
        record = await tx.scalar(select(Session).where(Session.id == session_id))
        past = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
        record.sandbox_state = {**record.sandbox_state, "last_active_at": past}

    people.run(age)
    assert client.get(url, headers=alice.headers).json()["status"] == "expired"


@pytest.mark.parametrize(
    "body",
    [{"sessionId": "not-a-uuid"}, {"repoUrl": ""}, {"repoUrl": 5}, {"unknown": 1}, []],
    ids=["non-uuid-session", "empty-url", "number-url", "unknown-key", "array"],
)
def test_invalid_bodies_are_400(client, alice, body):
    response = client.post("/api/sandbox", headers=alice.headers, json=body)
    assert response.status_code == 400
    assert response.json()["status"] == "error"
    assert set(response.json()) == {"status", "error"}


def test_credentials_are_required(client):
    assert client.post("/api/sandbox").status_code == 401
    status = client.get(f"/api/sandbox/status?sessionId={uuid.uuid4()}")
    assert status.status_code == 401
    assert status.json() == {"status": "error", "error": "No authorization token provided"}


def test_another_accounts_session_is_403(client, alice, bob):
    session_id = _session(client, alice)
    created = client.post("/api/sandbox", headers=bob.headers, json={"sessionId": session_id})
    assert created.status_code == 403
    assert created.json() == {"status": "error", "error": "You do not have access to this session"}
    status = client.get(f"/api/sandbox/status?sessionId={session_id}", headers=bob.headers)
    assert status.status_code == 403


def test_cloning_from_the_data_directory_is_403(client, alice, settings):
    victim = client.post("/api/sandbox", headers=alice.headers).json()["sessionId"]
    target = settings.data_dir / "workspaces" / victim
    response = client.post("/api/sandbox", headers=alice.headers, json={"repoUrl": str(target)})
    assert response.status_code == 403
    assert "data directory" in response.json()["error"]


def test_a_missing_session_is_404(client, alice):
    missing = str(uuid.uuid4())
    created = client.post("/api/sandbox", headers=alice.headers, json={"sessionId": missing})
    assert created.status_code == 404
    assert created.json() == {"status": "error", "error": "Session not found"}
    status = client.get(f"/api/sandbox/status?sessionId={missing}", headers=alice.headers)
    assert status.status_code == 404


def test_a_failed_clone_is_502_and_creates_no_session(client, alice, tmp_path):
    response = client.post(
        "/api/sandbox", headers=alice.headers, json={"repoUrl": str(tmp_path / "no-such-repo")}
    )
    assert response.status_code == 502
    assert response.json()["error"].startswith("git clone failed")
    assert client.get("/api/sessions", headers=alice.headers).json()["sessions"] == []


def test_status_needs_a_uuid_session_id(client, alice):
    assert client.get("/api/sandbox/status", headers=alice.headers).status_code == 400
    bad = client.get("/api/sandbox/status?sessionId=x", headers=alice.headers)
    assert bad.status_code == 400
    assert bad.json()["status"] == "error"
