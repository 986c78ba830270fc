"""The official AI SDK clients (ai 5.0.0, latest 5.x, 6.0.0, latest 6.x) against the real server.

Each client sends a message per kind of stream the server produces (text, tools, a tool error,
reasoning, a model error) through `DefaultChatTransport`, reads it with `readUIMessageStream`,
which throws on any chunk it refuses, and resumes one run with `reconnectToStream`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runs.models import FAILURE_TEXT
from tests.e2e.served import Served
from tests.node.install import HERE, VERSIONS, ensure_installed

SCENARIOS = {
    # name: (model, message, resumed mid-run)
    "text": ("test/slow", "hello there", True),
    "tools": ("recoup/offline", "/bash echo from-node", False),
    "tool-error": ("recoup/offline", "/read missing.txt", False),
    "reasoning": ("test/think", "think", False),
    "model-error": ("test/fail", "hello", False),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data_dir = tmp_path_factory.mktemp("node") / "data"
    served = Served(data_dir, f"sqlite+aiosqlite:///{data_dir.resolve()}/recoup.db")
    served.env |= {"RECOUP_TEST_MODELS": "1", "RECOUP_TEST_MODEL_DELAY": "0.03"}
    served.start()
    yield served
    served.stop()


def _scenario_chats(server: Served, key: str) -> list[dict[str, Any]]:
    scenarios = []
    with httpx.Client(base_url=server.base_url, headers={"x-api-key": key}) as http:
        for name, (model, text, reconnect) in SCENARIOS.items():
            session_id = http.post("/api/sandbox", json={}).json()["sessionId"]
            chat_id = http.get(f"/api/sessions/{session_id}/chats").json()["chats"][0]["id"]
            patched = http.patch(
                f"/api/sessions/{session_id}/chats/{chat_id}", json={"modelId": model}
            )
            assert patched.status_code == 200, patched.text
            scenarios.append(
                {"name": name, "chatId": chat_id, "sessionId": session_id, "text": text}
                | {"reconnect": reconnect}
            )
    return scenarios


def _parts(message: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [part for part in message["parts"] if part["type"] == kind]


@pytest.mark.parametrize("version", VERSIONS)
def test_the_official_client_accepts_every_stream(server: Served, version: str) -> None:
    folder = ensure_installed(version)
    key = server.first_start_key()
    config = {
        "baseUrl": server.base_url,
        "headers": {"x-api-key": key},
        "scenarios": _scenario_chats(server, key),
    }

    node = shutil.which("node")
    assert node is not None, "Node 20 is needed for tests/node"
    done = subprocess.run(
        [node, str(HERE / "client.mjs"), str(folder)],
        input=json.dumps(config),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    results = {result["name"]: result for result in json.loads(done.stdout)}
    for name in ("text", "tools", "tool-error", "reasoning"):
        assert results[name]["error"] is None, (name, results[name]["error"])
    text = results["text"]
    assert text["first"]["role"] == "assistant"
    assert text["resumed"]["id"] == text["first"]["id"]
    [answer] = _parts(text["resumed"], "text")
    assert answer["text"].endswith("to call a tool.") and answer["state"] == "done"
    [tool] = _parts(results["tools"]["first"], "tool-bash")
    assert tool["state"] == "output-available" and tool["output"]["output"] == "from-node\n"
    [failed] = _parts(results["tool-error"]["first"], "tool-read")
    assert failed["state"] == "output-error" and "missing.txt" in failed["errorText"]
    reasoning = results["reasoning"]["first"]
    assert _parts(reasoning, "reasoning")[0]["text"] == "Thinking it over."
    assert _parts(reasoning, "text")[0]["text"] == "Here is my answer."
    assert results["model-error"]["error"]["message"] == FAILURE_TEXT


def test_node_modules_stay_out_of_git() -> None:
    ignored = (Path(HERE).parents[1] / ".gitignore").read_text().splitlines()
    assert "node_modules/" in ignored
