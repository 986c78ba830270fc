"""`recoup-api codegen`: an operation added to a spec gets a handler stub in the right module."""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

import pytest

from server.codegen import generate_stubs, missing_handlers

# A scenario spec of its own: two operations, one handler module that does not exist yet.
SPEC = {
    "openapi": "3.1.0",
    "info": {"title": "t", "version": "1"},
    "security": [{"ApiKeyAuth": []}],
    "paths": {
        "/widgets/{widgetId}": {
            "parameters": [{"$ref": "#/components/parameters/WidgetId"}],
            "get": {"operationId": "widgets.get_widget", "summary": "Get a widget"},
            "patch": {
                "operationId": "widgets.update_widget",
                "parameters": [{"name": "dryRun", "in": "query", "schema": {"type": "boolean"}}],
                "requestBody": {"content": {"application/json": {"schema": {}}}},
            },
        },
        "/ping": {"get": {"operationId": "misc.ping", "security": []}},
    },
    "components": {
        "parameters": {
            "WidgetId": {"name": "widgetId", "in": "path", "required": True, "schema": {}}
        }
    },
}


@pytest.fixture
def handlers_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    package = tmp_path / "scenario_handlers"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "misc.py").write_text("async def ping():\n    return {}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package
    for name in [m for m in sys.modules if m.startswith("scenario_handlers")]:
        del sys.modules[name]


def test_missing_operations_get_stubs_with_connexion_arguments(handlers_dir: Path):
    assert missing_handlers(SPEC, "scenario_handlers") == [
        ("widgets", "get_widget"),
        ("widgets", "update_widget"),
    ]
    written = generate_stubs(SPEC, handlers_dir)
    assert written == [
        "scenario_handlers.widgets.get_widget",
        "scenario_handlers.widgets.update_widget",
    ]
    importlib.invalidate_caches()
    module = importlib.import_module("scenario_handlers.widgets")
    assert list(inspect.signature(module.get_widget).parameters) == ["widget_id", "user"]
    assert list(inspect.signature(module.update_widget).parameters) == [
        "widget_id",
        "dry_run",
        "user",
        "body",
    ]
    assert missing_handlers(SPEC, "scenario_handlers") == []
    assert generate_stubs(SPEC, handlers_dir) == []  # idempotent
