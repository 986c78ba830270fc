"""The contract: the target's served specification, else the merged one bundled with the kit.

Every response the kit receives is checked against it with openapi-core (OpenAPI 3.1 semantics).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from server.spec import HTTP_METHODS, merged_spec

SPEC_PATH = "/api/openapi.json"
SpecSource = Literal["auto", "target", "bundled"]
Document = dict[str, Any]


def _text(value: bytes, **parameters: str) -> str:
    # openapi-core has no deserializer for text/event-stream; its documented schema is a string.
    return value.decode(parameters.get("charset", "utf-8"), errors="replace")


def _describe(exc: BaseException) -> str:
    cause = exc.__cause__
    errors = getattr(cause, "schema_errors", None)
    if errors:
        return f"{exc.__class__.__name__}: " + "; ".join(str(e.message) for e in errors)
    return f"{exc.__class__.__name__}: {exc}"


@dataclass
class Contract:
    """The OpenAPI 3.1 document the target is held to, and where it came from."""

    document: Document
    source: str
    base_url: str
    _openapi: OpenAPI = field(init=False, repr=False)
    _templates: list[tuple[re.Pattern[str], str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        local = copy.deepcopy(self.document)
        # Resolve every operation against the target rather than the documented production host.
        local["servers"] = [{"url": self.base_url}]
        for item in local.get("paths", {}).values():
            item.pop("servers", None)
            for method in HTTP_METHODS:
                if isinstance(item.get(method), dict):
                    item[method].pop("servers", None)
        self._openapi = OpenAPI.from_dict(
            local, config=Config(extra_media_type_deserializers={"text/event-stream": _text})
        )
        self._templates = [
            (re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$"), path)
            for path in self.document.get("paths", {})
        ]

    def has_operation(self, method: str, template: str) -> bool:
        """Whether the contract documents ``METHOD template``."""
        item = self.document.get("paths", {}).get(template, {})
        return isinstance(item.get(method.lower()), dict)

    def template_of(self, path: str) -> str | None:
        """The documented path template a concrete path belongs to."""
        return next((template for rx, template in self._templates if rx.match(path)), None)

    def check(
        self,
        *,
        method: str,
        path: str,
        query: dict[str, str] | None,
        status: int,
        headers: httpx.Headers,
        body: bytes,
    ) -> str | None:
        """Why this response breaks the contract, or ``None`` when it conforms."""
        request = MockRequest(self.base_url, method.lower(), path, args=query or {})
        response = MockResponse(
            body,
            status_code=status,
            headers=dict(headers),
            content_type=headers.get("content-type", "") if body else None,  # type: ignore[arg-type]
        )
        try:
            self._openapi.validate_response(request, response)
        except Exception as exc:  # openapi-core raises one of many unrelated exception types
            return _describe(exc)
        return None


def load_contract(http: httpx.Client, base_url: str, source: SpecSource = "auto") -> Contract:
    """The target's ``GET /api/openapi.json`` if it serves one (``auto``), else the bundled spec."""
    if source != "bundled":
        served = _served_document(http)
        if served is not None:
            return Contract(served, f"served by the target at {SPEC_PATH}", base_url)
        if source == "target":
            raise RuntimeError(f"the target serves no OpenAPI document at {SPEC_PATH}")
    return Contract(merged_spec(), "bundled with the kit (server.spec.merged_spec)", base_url)


def _served_document(http: httpx.Client) -> Document | None:
    try:
        response = http.get(SPEC_PATH)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:
        document = response.json()
    except ValueError:
        return None
    if isinstance(document, dict) and str(document.get("openapi", "")).startswith("3.1"):
        return document
    return None
