"""The compiled body check never accepts a body the draft 2020-12 validator refuses.

``server.validation._fast_check`` (jsonschema-rs) may only say "valid" sooner: for every request
body schema of the spec, as Connexion hands it to the body validator, bodies built from the
schema's own property names and awkward values (whitespace the two regex engines could read
differently, numbers of every size, wrong types, extra keys) are judged by both, and no body the
Python validator refuses may pass the compiled check.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.spec import for_connexion, merged_spec
from server.validation import ECMA_WHITESPACE, _compiled, _fast_check, _reachable


def _body_schemas() -> dict[str, dict[str, Any]]:
    document = for_connexion(merged_spec())
    schemas = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "requestBody" not in operation:
                continue
            for media_type, content in operation["requestBody"]["content"].items():
                # What Connexion's body_schema() returns: the schema with the components beside it.
                schema = {**content["schema"], "components": document["components"]}
                schemas[f"{method.upper()} {path} {media_type}"] = schema
    return schemas


SCHEMAS = _body_schemas()
# The schemas that get a compiled check (the others reach a ``format``: Python alone judges).
FAST = {name: check for name, schema in SCHEMAS.items() if (check := _fast_check(schema))}


def _names(schema: dict[str, Any]) -> list[str]:
    names = {name for item in _reachable(schema) for name in item.get("properties", None) or {}}
    return sorted(names) or ["x"]


def _enum_values(schema: dict[str, Any]) -> list[Any]:
    return [value for item in _reachable(schema) for value in item.get("enum", None) or []]


_TEXT = st.one_of(
    st.sampled_from(
        ["", " ", "x", " x ", "\n", "123", "-7", "12\n", "a/b", "a/ b", "null", "\x85", "\u180e"]
        + [f"{char}" for char in ECMA_WHITESPACE]
        + ["00000000-0000-4000-8000-000000000000", "2026-01-01T00:00:00Z", "user", "assistant"]
    ),
    st.text(max_size=12),
)
_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    _TEXT,
)


def _bodies(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    names = st.sampled_from(_names(schema))
    scalars = st.one_of(_SCALAR, st.sampled_from(_enum_values(schema) or [None]))
    keys = st.one_of(names, st.text(max_size=5))
    values = st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=4)
        ),
        max_leaves=8,
    )
    # Bodies of the schema's own keys and strings: many of them valid, many just not.
    words = st.one_of(_TEXT, st.sampled_from(_enum_values(schema) or [""]))
    near = st.dictionaries(names, words, min_size=1, max_size=3)
    return st.one_of(near, st.dictionaries(keys, values, max_size=5), values)


def test_the_fast_check_covers_the_benchmarked_bodies() -> None:
    assert "PATCH /api/sessions/{sessionId}/chats/{chatId} application/json" in FAST, list(FAST)
    assert "POST /api/sessions/{sessionId}/chats application/json" in FAST, list(FAST)


@pytest.mark.parametrize("name", sorted(FAST))
def test_no_body_the_validator_refuses_passes_the_fast_check(name: str) -> None:
    schema = SCHEMAS[name]
    fast = FAST[name]
    slow = _compiled(schema)
    verdicts: list[tuple[bool, bool]] = []

    @settings(
        max_examples=400,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(_bodies(schema))
    def check(body: Any) -> None:
        accepted = fast.is_valid(body)
        valid = slow.is_valid(body)
        verdicts.append((accepted, valid))
        assert valid or not accepted, body

    check()
    assert (True, True) in verdicts and (False, False) in verdicts, "the bodies tried both ways"
