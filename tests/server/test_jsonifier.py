"""The app's jsonifier writes the same JSON values as Connexion's, faster for plain data."""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

from connexion.jsonifier import Jsonifier
from hypothesis import given
from hypothesis import strategies as st

from server.connexion_app import FastJsonifier

fast, connexions = FastJsonifier(), Jsonifier()

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@given(json_values)
def test_plain_data_reads_back_as_connexions_does(value: Any) -> None:
    written = fast.dumps(value)

    assert written.endswith("\n")
    assert json.loads(written) == json.loads(connexions.dumps(value))


def test_plain_data_is_written_compactly_in_utf8() -> None:
    assert fast.dumps({"title": "Café", "ids": [1, None, True]}) == (
        '{"title":"Café","ids":[1,null,true]}\n'
    )


def test_what_is_not_plain_json_is_left_to_connexions_encoder() -> None:
    for value in [
        {"at": datetime.datetime(2026, 1, 2, 3, 4, 5)},  # Connexion's own format: "...Z"
        {"on": datetime.date(2026, 1, 2)},
        {"big": [2**64, -(2**63) - 1]},
        {1: "a non-string key"},
        {"lone": "\ud800"},
    ]:
        assert fast.dumps(value) == connexions.dumps(value), value
    assert fast.dumps({"n": 1}, indent=2) == connexions.dumps({"n": 1}, indent=2)


def test_a_uuid_is_its_string_and_a_non_finite_float_is_null() -> None:
    identifier = uuid.UUID(int=1)

    assert json.loads(fast.dumps({"id": identifier})) == {"id": str(identifier)}
    assert json.loads(fast.dumps([float("nan"), float("inf")])) == [None, None]
