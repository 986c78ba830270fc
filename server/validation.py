"""Request body validation with OpenAPI 3.1 semantics, plugged into Connexion's validator_map.

Connexion 3.3 validates with JSON Schema draft 4 and decodes bodies with the declared charset
(an undecodable body becomes a 500). This validator reads JSON strictly as UTF-8, refuses what
JSON clients cannot produce (NaN, Infinity) and strings no database can store (NUL, unpaired
surrogates), and validates with draft 2020-12, formats included,
against the 3.1 form of the operation's schema.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

from connexion.exceptions import BadRequestProblem
from connexion.validators import JSONRequestBodyValidator
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from starlette.types import Scope

from server.spec import to_openapi_31

_ABSENT = object()  # no body at all, as opposed to a JSON `null`
_COMPILED: dict[int, tuple[dict[str, Any], Draft202012Validator]] = {}


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _unstorable_text(value: Any) -> str | None:
    """Why a parsed body cannot be stored as text (NUL, unpaired surrogate escapes), or None."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return "Request body contains a NUL character"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "Request body contains an unpaired surrogate escape"
    return None


def _describe(error: ValidationError) -> str:
    where = "/".join(str(part) for part in error.absolute_path)
    return f"{error.message} (at /{where})" if where else error.message


class OpenAPI31BodyValidator(JSONRequestBodyValidator):
    """Strict UTF-8 JSON parsing and draft 2020-12 validation of request bodies."""

    @property
    def _compiled(self) -> Draft202012Validator:
        # Connexion builds a validator per request around the same schema object: compile once.
        cached = _COMPILED.get(id(self._schema))
        if cached is None or cached[0] is not self._schema:
            validator = Draft202012Validator(
                to_openapi_31(self._schema), format_checker=Draft202012Validator.FORMAT_CHECKER
            )
            cached = _COMPILED[id(self._schema)] = (self._schema, validator)
        return cached[1]

    async def _parse(self, stream: AsyncGenerator[bytes, None], scope: Scope) -> Any:
        raw = b"".join([chunk async for chunk in stream])
        if not raw.strip():
            return _ABSENT
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequestProblem(detail="Request body is not valid UTF-8") from exc
        try:
            body = json.loads(text, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:
            raise BadRequestProblem(detail=f"Malformed JSON: {exc}") from exc
        # Valid JSON, but no database stores these in text columns.
        problem = _unstorable_text(body)
        if problem is not None:
            raise BadRequestProblem(detail=problem)
        return body

    def _validate(self, body: Any) -> dict[str, Any] | None:
        if body is _ABSENT:
            if self._required:
                raise BadRequestProblem(detail="Request body is required")
            return None
        error = best_match(self._compiled.iter_errors(body))
        if error is not None:
            raise BadRequestProblem(detail=_describe(error))
        return None
