"""Probes for load balancers: no credentials needed."""

from __future__ import annotations

from typing import Any

from server.context import database


async def healthz() -> dict[str, Any]:
    return {"status": "ok"}


async def readyz() -> tuple[dict[str, Any], int]:
    if await database().ping():
        return {"status": "ok"}, 200
    return {"status": "unavailable"}, 503
