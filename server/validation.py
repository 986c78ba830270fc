"""Request body validation with OpenAPI 3.1 semantics, plugged into Connexion's validator_map.

Connexion 3.3 validates with JSON Schema draft 4 and decodes bodies with the declared charset
(an undecodable body becomes a 500). This validator reads JSON strictly as UTF-8, refuses what
JSON clients cannot produce (NaN, Infinity) and strings no database can store (NUL, unpaired
surrogates), and validates with draft 2020-12, formats included,
against the 3.1 form of the operation's schema.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import AsyncGenerator
from typing import Any

import jsonschema_rs
from connexion.exceptions import BadRequestProblem
from connexion.utils import is_null, is_nullable
from connexion.validators import JSONRequestBodyValidator, ParameterValidator
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match
from starlette.types import Scope

from server.spec import resolved, to_openapi_31

# ECMA-262 WhiteSpace and LineTerminator: what `\s` means in a JSON Schema pattern and what
# JavaScript's trim() removes. Python's own `\s` and str.strip() also take \x1c-\x1f and \x85.
ECMA_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_ECMA_CLASS_ESCAPES = {
    "\\s": f"[{ECMA_WHITESPACE}]",
    "\\S": f"[^{ECMA_WHITESPACE}]",
    "\\d": "[0-9]",
    "\\D": "[^0-9]",
    "\\w": "[A-Za-z0-9_]",
    "\\W": "[^A-Za-z0-9_]",
}
_CLASS_ESCAPE = re.compile(r"\\\\|\\[sSdDwW]")


def trim(text: str) -> str:
    """Trim as the specification's "trimmed" means it: ECMA-262 whitespace at both ends."""
    return text.strip(ECMA_WHITESPACE)


def ecma_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a JSON Schema pattern with ECMA-262 meanings of ``\\s \\d \\w`` (outside classes)."""
    translated = _CLASS_ESCAPE.sub(
        lambda match: _ECMA_CLASS_ESCAPES.get(match.group(0), match.group(0)), pattern
    )
    return re.compile(translated)


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Any:
    if isinstance(instance, str) and not _compiled_pattern(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


_compiled_pattern = functools.cache(ecma_pattern)
_Validator = validators.extend(Draft202012Validator, {"pattern": _pattern})

_ABSENT = object()  # no body at all, as opposed to a JSON `null`
# The scope extension in which a request's validated body reaches the argument binding.
PARSED_BODY = "recoup.parsed_body"
_COMPILED: dict[int, tuple[dict[str, Any], Any]] = {}


def _reachable(schema: dict[str, Any]) -> list[Any]:
    """Every subschema ``schema`` can reach, following its ``#/...`` references."""
    seen: list[Any] = []
    pending: list[Any] = [schema]
    visited_refs: set[str] = set()
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            seen.append(item)
            for key, value in item.items():
                if key == "components":
                    continue  # reached through references only
                if key == "$ref" and isinstance(value, str) and value.startswith("#/"):
                    if value not in visited_refs:
                        visited_refs.add(value)
                        pending.append(resolved(schema, item))
                else:
                    pending.append(value)
    return seen


def _with_ecma_patterns(schema: Any) -> Any:
    """A copy of ``schema`` whose patterns mean, in any regex engine, what ECMA-262 says."""
    if isinstance(schema, list):
        return [_with_ecma_patterns(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    copied = {key: _with_ecma_patterns(value) for key, value in schema.items()}
    if isinstance(copied.get("pattern"), str):
        copied["pattern"] = ecma_pattern(copied["pattern"]).pattern
    return copied


_FAST: dict[int, tuple[dict[str, Any], Any]] = {}


def _fast_check(schema: dict[str, Any]) -> Any:
    """A compiled (jsonschema-rs) validator of ``schema``, or None where it may disagree.

    It only ever says "valid" sooner: a body it finds invalid is judged again, and described,
    by the draft 2020-12 validator above, so the errors stay that validator's. Its format checks
    are not the same as Python's (it accepts some date-times Python refuses), so schemas that
    reach a ``format`` get none. tests/server/test_validation_fast.py compares the two.
    """
    cached = _FAST.get(id(schema))
    if cached is None or cached[0] is not schema:
        fast = None
        translated = to_openapi_31(schema)
        try:
            if not any("format" in item for item in _reachable(translated)):
                fast = jsonschema_rs.Draft202012Validator(_with_ecma_patterns(translated))
        except Exception:  # a schema it cannot follow or compile: the Python validator decides
            fast = None
        cached = _FAST[id(schema)] = (schema, fast)
    return cached[1]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _compiled(schema: dict[str, Any]) -> Any:
    # Connexion builds validators per request around the same schema objects: compile once.
    cached = _COMPILED.get(id(schema))
    if cached is None or cached[0] is not schema:
        validator = _Validator(
            to_openapi_31(schema), format_checker=Draft202012Validator.FORMAT_CHECKER
        )
        cached = _COMPILED[id(schema)] = (schema, validator)
    return cached[1]


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

    async def _parse(self, stream: AsyncGenerator[bytes, None], scope: Scope) -> Any:
        body = await self._parse_strictly(stream)
        # Left for the argument binding, which would otherwise parse the same bytes again: what
        # Starlette's ``Request.json()`` gives for them, None for an empty body.
        scope.setdefault("extensions", {})[PARSED_BODY] = None if body is _ABSENT else body
        return body

    async def _parse_strictly(self, stream: AsyncGenerator[bytes, None]) -> Any:
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
        fast = _fast_check(self._schema)
        try:
            if fast is not None and fast.is_valid(body):
                return None
        except Exception:  # whatever it cannot judge, the validator below judges
            pass
        error = best_match(_compiled(self._schema).iter_errors(body))
        if error is not None:
            raise BadRequestProblem(detail=_describe(error))
        return None


# Keywords that constrain nothing: a schema of only these and ``type: string`` accepts any string.
_ANNOTATIONS = frozenset({"type", "title", "description", "example", "examples", "deprecated"})


def only_a_string(schema: dict[str, Any]) -> bool:
    """True for ``{type: string}`` plus annotations: every path parameter of the spec today.

    Path and header values are always strings, so such a schema needs no validator run (the
    general validator costs tens of microseconds a parameter, on every request).
    """
    return schema.get("type") == "string" and schema.keys() <= _ANNOTATIONS


class OpenAPI31ParameterValidator(ParameterValidator):
    """Path, query and header parameters validated with draft 2020-12 formats (``uuid``...)."""

    def __init__(self, parameters: list[dict[str, Any]], *args: Any, **kwargs: Any) -> None:
        super().__init__(parameters, *args, **kwargs)
        path = self.parameters.get("path", [])
        # Operations whose only parameters are path parameters accepting any string: a request
        # without a query string that has each of them as a string passes every check.
        self._any_string_path = set(self.parameters) <= {"path"} and all(
            only_a_string(parameter.get("schema", parameter)) for parameter in path
        )
        # The names Connexion looks path parameters up by.
        self._path_keys = [parameter["name"].replace("-", "_") for parameter in path]

    def validate(self, scope: Scope) -> None:
        if self._any_string_path and not scope.get("query_string"):
            values = scope.get("path_params", {})
            if all(isinstance(values.get(key), str) for key in self._path_keys):
                return
        super().validate(scope)

    @staticmethod
    def validate_parameter(
        parameter_type: str, value: Any, param: dict[str, Any], param_name: str | None = None
    ) -> str | None:
        if is_nullable(param) and is_null(value):
            return None
        if value is None:
            if param.get("required"):
                return f"Missing {parameter_type} parameter '{param['name']}'"
            return None
        schema = param.get("schema", param)
        if only_a_string(schema) and isinstance(value, str):
            return None
        error = best_match(_compiled(schema).iter_errors(value))
        if error is None:
            return None
        return f"{error.message} ({parameter_type} parameter '{param.get('name', param_name)}')"
