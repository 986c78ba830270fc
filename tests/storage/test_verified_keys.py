"""The cache of recently verified API keys: bounded by its TTL, the key's expiry and revocation."""

from __future__ import annotations

import asyncio
from datetime import timedelta

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
