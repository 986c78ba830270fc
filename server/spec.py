"""The one merged OpenAPI document: seed fragments + the project's operations + the overlay.

The vendored seed documents under ``openapi/`` (those ``SEEDS.sha256`` lists) stay verbatim. At
start-up they are merged with the project's own files (``recoup.yaml`` first, then any other
``*.yaml``) and amended by ``overlay.yaml`` (OpenAPI Overlay 1.0), then validated as
OpenAPI 3.1. Connexion 3.3 only reads 3.0 documents, so it is handed a mechanical 3.0
rendering of the same document (:func:`for_connexion`).
"""

from __future__ import annotations

import copy
import re
from functools import cache, partial
from pathlib import Path
from typing import Any

import yaml
from openapi_spec_validator import validate as validate_openapi

OPENAPI_DIR = Path(__file__).resolve().parent.parent / "openapi"
PROJECT_FILE = "recoup.yaml"
OVERLAY_FILE = "overlay.yaml"
SEEDS_FILE = "SEEDS.sha256"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

Document = dict[str, Any]


class SpecError(Exception):
    """The documents under ``openapi/`` cannot be merged into one valid specification."""


def seed_files(directory: Path = OPENAPI_DIR) -> list[Path]:
    """The vendored seed documents: the files whose digests ``SEEDS.sha256`` records."""
    names = [line.split()[1] for line in (directory / SEEDS_FILE).read_text().splitlines() if line]
    return [directory / name for name in sorted(names)]


def project_files(directory: Path = OPENAPI_DIR) -> list[Path]:
    """The project's own operation files: ``recoup.yaml`` first, then the rest by name."""
    seeds = {path.name for path in seed_files(directory)}
    others = sorted(
        path
        for path in directory.glob("*.yaml")
        if path.name not in seeds and path.name not in (PROJECT_FILE, OVERLAY_FILE)
    )
    return [directory / PROJECT_FILE, *others]


def _load(path: Path) -> Document:
    with path.open(encoding="utf-8") as fh:
        loaded = yaml.safe_load(fh)
    if not isinstance(loaded, dict):
        raise SpecError(f"{path.name}: not a YAML mapping")
    return loaded


def merge_documents(base: Document, fragments: list[tuple[str, Document]]) -> Document:
    """Merge ``fragments`` into a copy of ``base``.

    A fragment's top-level ``security`` is pushed down into its operations so that it keeps
    meaning what it meant in the fragment. The same operation twice, or two different
    components of one name, is an error.
    """
    merged = copy.deepcopy(base)
    paths = merged.setdefault("paths", {})
    components = merged.setdefault("components", {})
    for name, fragment in fragments:
        fragment_security = fragment.get("security")
        for path, item in fragment.get("paths", {}).items():
            target = paths.setdefault(path, {})
            for key, value in item.items():
                if key in target and key in HTTP_METHODS:
                    raise SpecError(f"{name}: {key.upper()} {path} is defined twice")
                if key in target and target[key] != value:
                    raise SpecError(f"{name}: {path} {key} differs from another document")
                operation = copy.deepcopy(value)
                if key in HTTP_METHODS and "security" not in operation:
                    if fragment_security is not None:
                        operation["security"] = copy.deepcopy(fragment_security)
                target[key] = operation
        for section, entries in fragment.get("components", {}).items():
            existing = components.setdefault(section, {})
            for key, value in entries.items():
                if key in existing and existing[key] != value:
                    raise SpecError(f"{name}: components.{section}.{key} differs between documents")
                existing[key] = copy.deepcopy(value)
    return merged


_SEGMENT = re.compile(r"""\.([A-Za-z0-9_\-]+)|\[\s*'([^']*)'\s*\]|\[\s*"([^"]*)"\s*\]""")


def _target_path(target: str) -> list[str]:
    """Parse the JSONPath subset the overlay uses: ``$`` then ``.name`` or ``['name']``."""
    if not target.startswith("$"):
        raise SpecError(f"overlay target {target!r} must start with $")
    segments, position = [], 1
    while position < len(target):
        match = _SEGMENT.match(target, position)
        if not match:
            raise SpecError(f"overlay target {target!r}: cannot parse at {target[position:]!r}")
        segments.append(next(group for group in match.groups() if group is not None))
        position = match.end()
    return segments


def _update(target: Any, update: Any) -> Any:
    if isinstance(target, dict) and isinstance(update, dict):
        for key, value in update.items():
            target[key] = _update(target[key], value) if key in target else copy.deepcopy(value)
        return target
    if isinstance(target, list) and isinstance(update, list):
        return target + copy.deepcopy(update)
    return copy.deepcopy(update)


def apply_overlay(document: Document, overlay: Document) -> Document:
    """Apply OpenAPI Overlay 1.0 ``actions`` (``update`` and ``remove``) to a copy of a document."""
    result = copy.deepcopy(document)
    for action in overlay.get("actions", []):
        segments = _target_path(action["target"])
        parent: Any = result
        for segment in segments[:-1]:
            if not isinstance(parent, dict) or segment not in parent:
                raise SpecError(f"overlay target {action['target']} does not exist")
            parent = parent[segment]
        last = segments[-1]
        if not isinstance(parent, dict) or last not in parent:
            raise SpecError(f"overlay target {action['target']} does not exist")
        if action.get("remove"):
            del parent[last]
        elif "update" in action:
            parent[last] = _update(parent[last], action["update"])
    return result


def _walk_schemas(node: Any, visit: Any) -> Any:
    """Rebuild a document bottom-up, letting ``visit`` rewrite every mapping."""
    if isinstance(node, dict):
        return visit({key: _walk_schemas(value, visit) for key, value in node.items()})
    if isinstance(node, list):
        return [_walk_schemas(item, visit) for item in node]
    return node


def _nullable_to_type_union(node: dict[str, Any]) -> dict[str, Any]:
    # The seeds carry 3.0's `nullable: true` under a 3.1.0 header; 3.1 spells it as a type union.
    if node.get("nullable") is True and isinstance(node.get("type"), str):
        node = {key: value for key, value in node.items() if key != "nullable"}
        node["type"] = [node["type"], "null"]
        if "enum" in node:
            node["enum"] = [*node["enum"], None]
    return node


def _type_union_to_nullable(node: dict[str, Any]) -> dict[str, Any]:
    kind = node.get("type")
    if isinstance(kind, list) and "null" in kind:
        others = [entry for entry in kind if entry != "null"]
        if len(others) == 1:
            node = {**node, "type": others[0], "nullable": True}
            if "enum" in node:
                node["enum"] = [value for value in node["enum"] if value is not None]
    return node


def to_openapi_31(schema: Any) -> Any:
    """Rewrite 3.0 ``nullable`` schemas as 3.1 type unions."""
    return _walk_schemas(schema, _nullable_to_type_union)


@cache
def merged_spec(directory: Path = OPENAPI_DIR) -> Document:
    """The merged, amended and validated OpenAPI 3.1 document (built once per directory)."""
    base, *own = project_files(directory)
    fragments = [(path.name, _load(path)) for path in [*own, *seed_files(directory)]]
    document = merge_documents(_load(base), fragments)
    document = apply_overlay(document, _load(directory / OVERLAY_FILE))
    document = to_openapi_31(document)
    document["openapi"] = "3.1.0"
    try:
        validate_openapi(document)
    except Exception as exc:  # the validator raises several unrelated exception types
        raise SpecError(f"the merged document is not valid OpenAPI 3.1: {exc}") from exc
    return document


def operations(document: Document) -> list[tuple[str, str, Document]]:
    """Every ``(method, path, operation)`` in a document."""
    return [
        (method, path, operation)
        for path, item in document.get("paths", {}).items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def allowed_methods(document: Document) -> list[tuple[re.Pattern[str], list[str]]]:
    """For each path template, a matcher for concrete paths and the methods it documents."""
    table = []
    for path, item in document.get("paths", {}).items():
        methods = sorted(method.upper() for method in item if method in HTTP_METHODS)
        table.append((path_matcher(path), methods))
    return table


def path_matcher(path: str) -> re.Pattern[str]:
    """A matcher for the concrete paths of a path template."""
    pattern = re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(path))
    return re.compile(f"^{pattern}$")


def resolved(document: Document, node: Any) -> Any:
    """``node``, or what its local ``$ref`` (``#/...``) points at (one step)."""
    ref = node.get("$ref") if isinstance(node, dict) else None
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return node
    target: Any = document
    for part in ref[2:].split("/"):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    return target


def _fold_path_parameters(document: Document) -> None:
    """Copy each path's parameters into its operations (an operation's own win) and drop them.

    Connexion appends a path's parameters to the operation's own list in place each time it
    builds the operation, and it builds every operation once per middleware: the lists grew
    sevenfold and every request validated each path parameter seven times. With the
    parameters on the operations the result is the same document, and nothing is appended.
    """
    for item in document.get("paths", {}).values():
        shared = item.pop("parameters", None)
        if not shared:
            continue
        for method in HTTP_METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            own = operation.setdefault("parameters", [])
            taken = {
                (param["name"], param["in"]) for param in map(partial(resolved, document), own)
            }
            for param in shared:
                resolved_param = resolved(document, param)
                if (resolved_param["name"], resolved_param["in"]) not in taken:
                    own.append(copy.deepcopy(param))


def for_connexion(document: Document) -> Document:
    """The same document in the 3.0 dialect Connexion 3.3 accepts, wired to our security code."""
    runtime = _walk_schemas(copy.deepcopy(document), _type_union_to_nullable)
    runtime["openapi"] = "3.0.3"
    _fold_path_parameters(runtime)
    schemes = runtime["components"]["securitySchemes"]
    for scheme in schemes.values():
        if scheme.get("type") == "apiKey":
            scheme["x-apikeyInfoFunc"] = "server.security.api_key_info"
        elif scheme.get("type") == "http" and scheme.get("scheme", "").lower() == "bearer":
            scheme["x-bearerInfoFunc"] = "server.security.bearer_info"
    return runtime
