"""The specification itself: ``GET /api/openapi.json``."""

from __future__ import annotations

from typing import Any

from server.spec import merged_spec


async def get_openapi() -> dict[str, Any]:
    """The merged OpenAPI 3.1 document (built once at start-up)."""
    return merged_spec()
