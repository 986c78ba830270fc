"""The merged document: valid OpenAPI 3.1, every operation handled, the seeds kept verbatim."""

from __future__ import annotations

import hashlib
import importlib
import inspect
from pathlib import Path

import pytest
import yaml
from openapi_spec_validator import validate

from server.spec import (
    OPENAPI_DIR,
    SpecError,
    apply_overlay,
    merge_documents,
    merged_spec,
    operations,
    seed_files,
)

DOCUMENT = merged_spec()
OPERATIONS = operations(DOCUMENT)


def test_the_merged_document_validates_as_openapi_31():
    assert DOCUMENT["openapi"] == "3.1.0"
    validate(DOCUMENT)


def test_every_seed_operation_is_in_the_merged_document():
    merged = {(method, path) for method, path, _op in OPERATIONS}
    for seed in seed_files():
        document = yaml.safe_load(seed.read_text())
        for path, item in document["paths"].items():
            for method in item:
                assert (method, path) in merged, f"{seed.name}: {method} {path} lost"


@pytest.mark.parametrize(
    "operation", [op for _m, _p, op in OPERATIONS], ids=lambda op: op["operationId"]
)
def test_every_operation_resolves_to_an_async_handler(operation):
    module_name, _, function = operation["operationId"].rpartition(".")
    handler = getattr(importlib.import_module(f"handlers.{module_name}"), function, None)
    assert handler is not None, f"no handler for {operation['operationId']}: run make codegen"
    assert inspect.iscoroutinefunction(handler)


def test_every_operation_requires_credentials_except_the_probes_and_the_spec():
    for method, path, operation in OPERATIONS:
        security = operation.get("security", DOCUMENT["security"])
        if path in ("/healthz", "/readyz", "/api/openapi.json"):
            assert security == []
        else:
            assert security == [{"ApiKeyAuth": []}, {"BearerAuth": []}], (method, path)
            assert "401" in operation["responses"], (method, path)


def test_nullable_fields_become_type_unions():
    chat = DOCUMENT["components"]["schemas"]["Chat"]["properties"]
    assert chat["activeStreamId"]["type"] == ["string", "null"]
    assert "nullable" not in str(DOCUMENT)


def test_vendored_seeds_are_byte_for_byte_as_vendored():
    # The overlay, not an edit, is how the project amends a seed. SEEDS.sha256 records the
    # digests of the documents as received.
    recorded = dict(
        reversed(line.split()) for line in (OPENAPI_DIR / "SEEDS.sha256").read_text().splitlines()
    )
    actual = {seed.name: hashlib.sha256(seed.read_bytes()).hexdigest() for seed in seed_files()}
    assert actual == recorded


def test_conflicting_components_are_an_error():
    base = {"openapi": "3.1.0", "paths": {}, "components": {"schemas": {"A": {"type": "string"}}}}
    fragment = {"components": {"schemas": {"A": {"type": "integer"}}}}
    with pytest.raises(SpecError, match="components.schemas.A"):
        merge_documents(base, [("f.yaml", fragment)])


def test_the_same_operation_twice_is_an_error():
    operation = {"responses": {"200": {"description": "ok"}}}
    base = {"paths": {"/x": {"get": operation}}}
    with pytest.raises(SpecError, match="defined twice"):
        merge_documents(base, [("f.yaml", {"paths": {"/x": {"get": operation}}})])


def test_a_fragments_top_level_security_moves_into_its_operations():
    fragment = {"security": [], "paths": {"/x": {"get": {"responses": {}}}}}
    merged = merge_documents({"security": [{"K": []}]}, [("f.yaml", fragment)])
    assert merged["paths"]["/x"]["get"]["security"] == []


def test_overlay_update_remove_and_missing_targets():
    document = {"paths": {"/x": {"get": {"security": [], "tags": ["a"]}}}}
    overlay = {
        "actions": [
            {"target": "$.paths['/x'].get.security", "remove": True},
            {"target": "$.paths['/x'].get", "update": {"operationId": "m.f", "tags": ["b"]}},
        ]
    }
    result = apply_overlay(document, overlay)
    assert result["paths"]["/x"]["get"] == {"tags": ["a", "b"], "operationId": "m.f"}
    assert document["paths"]["/x"]["get"]["security"] == []  # the input is not modified
    with pytest.raises(SpecError, match="does not exist"):
        apply_overlay(document, {"actions": [{"target": "$.paths['/y'].get", "update": {}}]})


def test_the_served_document_is_the_merged_one(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.json() == DOCUMENT


def test_openapi_dir_holds_the_project_files():
    assert (OPENAPI_DIR / "recoup.yaml").is_file()
    assert (OPENAPI_DIR / "overlay.yaml").is_file()
    assert len(seed_files()) == 5
    assert all(isinstance(p, Path) for p in seed_files())
