"""Schemathesis over the whole merged specification, in process, with every check.

Each operation gets property-based positive and negative cases; the stateful test follows the
OpenAPI links (create a session, then its chats...). Requests carry a real API key.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings

from server.app import create_app
from server.config import Settings
from storage import accounts
from storage.db import Database

MAX_EXAMPLES = int(os.environ.get("RECOUP_FUZZ_EXAMPLES", "60"))
# Reproducible by default so that CI is deterministic; `make fuzz` explores fresh examples.
DERANDOMIZE = os.environ.get("RECOUP_FUZZ_SEED", "") != "random"

_settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="recoup-fuzz-")))


async def _api_key() -> str:
    database = Database(_settings.resolved_database_url)
    await database.upgrade()
    try:
        async with database.transaction() as tx:
            account = await accounts.create_account(tx, name="fuzzer", kind="person")
            _row, key = await accounts.create_api_key(tx, account_id=account.id, name="fuzz")
    finally:
        await database.dispose()
    return key


_settings.data_dir.mkdir(parents=True, exist_ok=True)
API_KEY = asyncio.run(_api_key())
schema = schemathesis.openapi.from_asgi(
    "/api/openapi.json",
    create_app(_settings),
    config=schemathesis.Config.from_path(str(Path(__file__).with_name("schemathesis.toml"))),
)
schema.config.update(headers={"x-api-key": API_KEY})


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=DERANDOMIZE,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms(case: schemathesis.Case) -> None:
    case.call_and_validate()


StatefulRun = schema.as_state_machine()
StatefulRun.TestCase.settings = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=DERANDOMIZE,
    stateful_step_count=8,
    suppress_health_check=list(HealthCheck),
)
TestStatefulLinks = StatefulRun.TestCase
