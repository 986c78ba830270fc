"""The cache of recently verified API keys: bounded by its TTL, the key's expiry and revocation."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from server import context, security
from server.config import Settings
from server.context import AppState
from server.errors import Unauthorized
from storage import accounts
from storage.db import Database
from storage.models import utc_now


async def _live_key(db: Database, *, expires_in: timedelta | None = None):  # type: ignore[no-untyped-def]
    async with db.transaction() as tx:
        account = await accounts.create_account(tx, name="holder", kind="person")
        expires_at = None if expires_in is None else utc_now() + expires_in
        row, key = await accounts.create_api_key(
            tx, account_id=account.id, name="k", expires_at=expires_at
        )
    async with db.read() as session:
        live = await accounts.live_api_key(session, key=key)
    assert live is not None
    return row, key, live


async def test_a_remembered_key_answers_until_its_ttl(database: Database):
    _row, key, live = await _live_key(database)
    cache = accounts.VerifiedKeys(ttl_s=60)
    assert cache.account_id(key) is None

    cache.remember(key, live)

    assert cache.account_id(key) == live.account_id
    assert cache.account_id(key + "x") is None
    expired = accounts.VerifiedKeys(ttl_s=0)
    expired.remember(key, live)
    assert expired.account_id(key) is None


async def test_a_key_is_never_remembered_past_its_expiry(database: Database):
    _row, key, live = await _live_key(database, expires_in=timedelta(milliseconds=500))
    cache = accounts.VerifiedKeys(ttl_s=60)
    cache.remember(key, live)
    assert cache.account_id(key) == live.account_id

    await asyncio.sleep(0.6)

    assert cache.account_id(key) is None


async def test_revoking_a_key_forgets_it_at_once(database: Database):
    row, key, live = await _live_key(database)
    accounts.verified_keys.remember(key, live)

    async with database.transaction() as tx:
        assert await accounts.revoke_api_key(tx, key_id=row.id)

    assert accounts.verified_keys.account_id(key) is None


@pytest.fixture
def served_by(database: Database, tmp_path: Path) -> Iterator[None]:
    """What a request of the app reaches (server.context): settings and this database."""
    settings = Settings(data_dir=tmp_path, database_url=database.url)
    token = context._current.set(AppState(settings, errors=None, database=database))  # type: ignore[arg-type]
    yield
    context._current.reset(token)


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often keys are read from the database and their use written, once per call."""
    counted: Counter[str] = Counter()

    def counting(name: str) -> Any:
        real = getattr(accounts, name)

        async def count(*args: Any, **kwargs: Any) -> Any:
            counted[name] += 1
            return await real(*args, **kwargs)

        return count

    for name in ("live_api_key", "record_api_key_use"):
        monkeypatch.setattr(accounts, name, counting(name))
    return counted


async def test_requests_missing_one_key_at_once_share_one_lookup(
    database: Database, served_by: None, lookups: Counter[str]
):
    _row, key, live = await _live_key(database)
    lookups.clear()

    answers = await asyncio.gather(*(security.account_for_api_key(key) for _ in range(50)))

    assert answers == [live.account_id] * 50
    # One read of the key, one write of its (never recorded) use: not fifty of each.
    assert lookups == {"live_api_key": 1, "record_api_key_use": 1}
    assert await security.account_for_api_key(key) == live.account_id  # from the cache now
    assert lookups["live_api_key"] == 1


async def test_a_refused_key_is_refused_to_every_request_that_shared_its_lookup(
    database: Database, served_by: None, lookups: Counter[str]
):
    answers = await asyncio.gather(
        *(security.account_for_api_key("rk_unknown") for _ in range(20)), return_exceptions=True
    )

    assert all(isinstance(answer, Unauthorized) for answer in answers)
    assert lookups["live_api_key"] == 1
    # Nothing is remembered of a refusal: the next request reads again.
    with pytest.raises(Unauthorized):
        await security.account_for_api_key("rk_unknown")
    assert lookups["live_api_key"] == 2


async def test_a_request_that_goes_away_does_not_cancel_the_others_lookup(
    database: Database, served_by: None
):
    _row, key, live = await _live_key(database)
    first = asyncio.create_task(security.account_for_api_key(key))
    second = asyncio.create_task(security.account_for_api_key(key))
    await asyncio.sleep(0)  # both wait for the one lookup now
    first.cancel()

    assert await second == live.account_id
    with pytest.raises(asyncio.CancelledError):
        await first
