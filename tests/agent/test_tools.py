"""The agent's tools on a real workspace, including attempts to leave it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic_ai import RunContext, ToolFailed
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.tools import ToolDefinition

from agent.context import ToolContext
from agent.loop import build_agent
from agent.todos import InMemoryTodoStore, JsonFileTodoStore, TodoItem
from agent.tools import TOOL_NAMES
from agent.tools.files import edit, glob, grep, read, write
from agent.tools.shell import bash
from agent.tools.skills import skill
from agent.tools.todo import todo

Ctx = RunContext[ToolContext]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A secret file next to the workspace, and a symlink to it from inside the workspace."""
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret\n")
    return secret


def _link(workspace: Path, name: str, target: Path) -> None:
    os.symlink(target, workspace / name)


ESCAPES = ["../secret.txt", "/etc/passwd", "src/../../secret.txt", "link-out"]


def test_read_numbers_lines_and_pages(ctx: Ctx) -> None:
    result = read(ctx, "src/app.py")
    assert result["content"].splitlines()[0] == "     1\tdef greet():"
    assert result["total_lines"] == 4 and not result["truncated"]
    page = read(ctx, "src/app.py", offset=2, limit=2)
    assert page["content"] == "     2\t    return 'hello'\n     3\t"
    assert (page["start_line"], page["end_line"], page["truncated"]) == (2, 3, True)


def test_read_errors_are_tool_failures(ctx: Ctx) -> None:
    with pytest.raises(ToolFailed, match="file not found"):
        read(ctx, "missing.txt")
    with pytest.raises(ToolFailed, match="is a directory"):
        read(ctx, "src")


def test_write_creates_parents_and_overwrites(ctx: Ctx, workspace: Path) -> None:
    first = write(ctx, "pkg/new/mod.py", "x = 1\n")
    assert first == {"path": "pkg/new/mod.py", "bytes_written": 6, "created": True}
    assert write(ctx, "pkg/new/mod.py", "x = 2\n")["created"] is False
    assert (workspace / "pkg" / "new" / "mod.py").read_text() == "x = 2\n"


def test_edit_replaces_a_unique_match(ctx: Ctx, workspace: Path) -> None:
    assert edit(ctx, "src/app.py", "'hello'", "'bonjour'") == {
        "path": "src/app.py",
        "replacements": 1,
    }
    assert "'bonjour'" in (workspace / "src" / "app.py").read_text()


def test_edit_refuses_zero_or_several_matches(ctx: Ctx, workspace: Path) -> None:
    with pytest.raises(ToolFailed, match="not found"):
        edit(ctx, "src/app.py", "goodbye", "x")
    with pytest.raises(ToolFailed, match="occurs 2 times"):
        edit(ctx, "src/app.py", "greet", "salute")
    assert "salute" not in (workspace / "src" / "app.py").read_text()
    assert edit(ctx, "src/app.py", "greet", "salute", replace_all=True)["replacements"] == 2


def test_grep_finds_lines_with_paths(ctx: Ctx, workspace: Path) -> None:
    (workspace / "data.bin").write_bytes(b"\x00greet\x00")
    result = grep(ctx, r"greet\(")
    assert result["matches"] == [
        {"path": "src/app.py", "line": 1, "text": "def greet():"},
        {"path": "src/app.py", "line": 4, "text": "print(greet())"},
    ]
    assert grep(ctx, "todo", ignore_case=True, glob="*.md")["matches"][0]["path"] == "notes.md"
    assert grep(ctx, "greet", max_results=1)["truncated"] is True
    with pytest.raises(ToolFailed, match="invalid regular expression"):
        grep(ctx, "(")


def test_glob_lists_relative_paths_and_skips_git(ctx: Ctx) -> None:
    assert glob(ctx, "**/*.py")["paths"] == ["src/app.py"]
    assert all(not p.startswith(".git") for p in glob(ctx, "**/*")["paths"])
    with pytest.raises(ToolFailed):
        glob(ctx, "../*")


@pytest.mark.parametrize("path", ESCAPES)
def test_file_tools_refuse_paths_outside_the_workspace(
    ctx: Ctx, workspace: Path, outside: Path, path: str
) -> None:
    _link(workspace, "link-out", outside)
    attempts = [
        lambda: read(ctx, path),
        lambda: write(ctx, path, "pwned"),
        lambda: edit(ctx, path, "top", "pwned"),
        lambda: grep(ctx, "secret", path=path),
        lambda: glob(ctx, "*", path=path),
    ]
    for attempt in attempts:
        with pytest.raises(ToolFailed, match="outside the workspace"):
            attempt()
    assert outside.read_text() == "top secret\n"


def test_search_tools_do_not_follow_links_out(ctx: Ctx, workspace: Path, outside: Path) -> None:
    _link(workspace, "leak.txt", outside)
    _link(workspace, "leakdir", outside.parent)
    assert grep(ctx, "top secret")["matches"] == []
    assert "leak.txt" not in glob(ctx, "*")["paths"]


async def test_bash_runs_in_the_workspace_sandbox(ctx: Ctx, workspace: Path) -> None:
    result = await bash(ctx, "cat notes.md | wc -l; echo made > made.txt; touch /etc/x")
    assert result["output"].splitlines()[0] == "2"
    assert "Read-only file system" in result["output"]
    assert result["exit_code"] != 0 and not result["timed_out"]
    assert _read(workspace / "made.txt") == "made\n"


async def test_bash_timeout_is_capped_by_the_session(ctx: Ctx) -> None:
    ctx.deps.command_timeout_s = 0.5
    result = await bash(ctx, "sleep 5", timeout_s=60)
    assert result["timed_out"]


def _read(path: Path) -> str:
    return path.read_text()


async def test_todo_reads_and_replaces_the_list(ctx: Ctx) -> None:
    assert await todo(ctx) == {"todos": []}
    items = [
        TodoItem(id="1", content="write tests", status="in_progress"),
        TodoItem(id="2", content="ship"),
    ]
    assert (await todo(ctx, items))["todos"] == items
    assert (await todo(ctx))["todos"][1].status == "pending"


async def test_json_file_todo_store_persists_beside_the_workspace(workspace: Path) -> None:
    store = JsonFileTodoStore(workspace.parent)
    await store.save("sess_1", [TodoItem(id="a", content="first", status="completed")])
    reopened = JsonFileTodoStore(workspace.parent)
    assert await reopened.load("sess_1") == [TodoItem(id="a", content="first", status="completed")]
    saved = json.loads(_read(workspace.parent / "sess_1.todos.json"))
    assert saved == [{"id": "a", "content": "first", "status": "completed"}]
    assert await reopened.load("other") == []
    with pytest.raises(ValueError):
        await store.load("../escape")


async def test_in_memory_todo_store_keeps_sessions_apart() -> None:
    store = InMemoryTodoStore()
    await store.save("a", [TodoItem(id="1", content="x")])
    assert await store.load("b") == []
    assert len(await store.load("a")) == 1


def test_skill_lists_and_loads_skill_files(ctx: Ctx, workspace: Path) -> None:
    skill_dir = workspace / ".skills" / "deploy"
    skill_dir.mkdir(parents=True)
    (skill_dir / "SKILL.md").write_text(
        "---\nname: deploy\ndescription: Ship the app\n---\nRun make deploy.\n"
    )
    (workspace / "src" / "SKILL.md").write_text("No front matter here.\n")
    listing = skill(ctx)
    assert listing == {
        "skills": [
            {"name": "deploy", "description": "Ship the app", "path": ".skills/deploy/SKILL.md"},
            {"name": "src", "description": "", "path": "src/SKILL.md"},
        ]
    }
    loaded = skill(ctx, "deploy")
    assert loaded["content"].endswith("Run make deploy.\n")
    with pytest.raises(ToolFailed, match="available: deploy, src"):
        skill(ctx, "nope")


async def test_tools_are_offered_with_json_schemas(context: ToolContext) -> None:
    offered: dict[str, ToolDefinition] = {}

    def capture(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        offered.update({tool.name: tool for tool in [*info.function_tools, *info.output_tools]})
        return ModelResponse(parts=[TextPart("ok")])

    await build_agent(FunctionModel(capture)).run("hi", deps=context)
    assert set(offered) == set(TOOL_NAMES)
    edit_schema = offered["edit"].parameters_json_schema
    assert edit_schema["required"] == ["path", "old_string", "new_string"]
    assert edit_schema["properties"]["replace_all"] == {
        "default": False,
        "description": "Replace every occurrence instead of requiring a unique one.",
        "type": "boolean",
    }
    assert offered["read"].parameters_json_schema["properties"]["offset"]["default"] == 1
    assert (offered["bash"].description or "").startswith("Run a shell command")
    todo_items = offered["todo"].parameters_json_schema
    assert "in_progress" in json.dumps(todo_items)
    questions = offered["ask_user_question"].parameters_json_schema
    assert questions["required"] == ["questions"]
