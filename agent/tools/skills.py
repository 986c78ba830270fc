"""The `skill` tool: list the `SKILL.md` files of the workspace, or load one by name."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic_ai import RunContext, ToolFailed
from typing_extensions import TypedDict

from agent.context import ToolContext
from agent.tools.files import walk_files
from sandbox.paths import display_path, resolve_in_workspace

_MAX_SKILLS = 200


class SkillSummary(TypedDict):
    name: str
    description: str
    path: str


class SkillListing(TypedDict):
    skills: list[SkillSummary]


class SkillContent(TypedDict):
    name: str
    path: str
    content: str


def _front_matter(text: str) -> dict[str, object]:
    """The YAML block between leading `---` lines, or {} when there is none or it is invalid."""
    if not text.startswith("---"):
        return {}
    _, _, rest = text.partition("\n")
    block, separator, _ = rest.partition("\n---")
    if not separator:
        return {}
    try:
        data = yaml.safe_load(block)
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _find_skills(workspace: Path) -> list[tuple[SkillSummary, str]]:
    """Every SKILL.md inside the workspace with its summary and text."""
    found: list[tuple[SkillSummary, str]] = []
    root = resolve_in_workspace(workspace, ".")
    for candidate in walk_files(root, workspace):
        if candidate.name != "SKILL.md":
            continue
        text = candidate.read_text(encoding="utf-8", errors="replace")
        meta = _front_matter(text)
        shown = display_path(workspace, candidate)
        # A skill without front matter is named after its directory, like Claude Code does.
        name = str(meta.get("name") or candidate.parent.name or "workspace")
        summary = SkillSummary(name=name, description=str(meta.get("description", "")), path=shown)
        found.append((summary, text))
        if len(found) == _MAX_SKILLS:
            break
    return found


def skill(ctx: RunContext[ToolContext], name: str | None = None) -> SkillListing | SkillContent:
    """List the skills (SKILL.md files) in the workspace, or load one skill's instructions.

    Args:
        name: The skill to load; leave it out to list the available skills.
    """
    skills = _find_skills(ctx.deps.workspace)
    if name is None:
        return SkillListing(skills=[summary for summary, _ in skills])
    for summary, text in skills:
        if summary["name"] == name:
            return SkillContent(name=name, path=summary["path"], content=text)
    available = ", ".join(summary["name"] for summary, _ in skills) or "none"
    raise ToolFailed(f"no skill named {name!r}; available: {available}")
