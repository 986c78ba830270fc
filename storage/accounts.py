"""Accounts, organizations and API keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.models import Account, ApiKey, Membership, storable_key, utc_now

API_KEY_PREFIX = "recoup_sk_"
# Writing last_used_at on every request would make every read a write; a minute is precise enough.
LAST_USED_PRECISION = timedelta(minutes=1)


def new_api_key() -> str:
    """A fresh key: the prefix and 32 random bytes, base64url without padding."""
    raw = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return API_KEY_PREFIX + raw


def hash_api_key(key: str) -> str:
    """The stored form of a key: its SHA-256 (256 random bits need no salt or slow hash)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


async def create_account(
    session: AsyncSession, *, name: str, kind: str, organization: str | None = None
) -> Account:
    """Create an account; with ``organization`` (an id or a name), make it a member of it.

    An organization named but not found is created.
    """
    account = Account(id=str(uuid.uuid4()), name=name, kind=kind, created_at=utc_now())
    session.add(account)
    if organization is not None:
        org = await session.scalar(
            select(Account)
            .where(Account.kind == "organization")
            .where((Account.id == organization) | (Account.name == organization))
            .limit(1)
        )
        if org is None:
            org = Account(
                id=str(uuid.uuid4()), name=organization, kind="organization", created_at=utc_now()
            )
            session.add(org)
        await session.flush()
        session.add(Membership(account_id=account.id, organization_id=org.id))
    await session.flush()
    return account


async def get_account(session: AsyncSession, *, account_id: str) -> Account | None:
    return await session.get(Account, account_id) if storable_key(account_id) else None


async def count_accounts(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Account)) or 0)


async def create_api_key(
    session: AsyncSession, *, account_id: str, name: str, expires_at: datetime | None = None
) -> tuple[ApiKey, str]:
    """Store a new key for an account; returns the row and the only copy of the plaintext."""
    plaintext = new_api_key()
    key = ApiKey(
        id=str(uuid.uuid4()),
        account_id=account_id,
        name=name,
        key_hash=hash_api_key(plaintext),
        created_at=utc_now(),
        expires_at=expires_at,
    )
    session.add(key)
    await session.flush()
    return key, plaintext


class VerifiedKeys:
    """Keys recently found live, by digest, each for ``ttl_s`` at most and never past its expiry.

    What a key stands for is looked up once per ``ttl_s`` instead of on every request. A key
    revoked through :func:`revoke_api_key` in this process is forgotten at once; callers clear the
    whole cache when they learn of a revocation made elsewhere (see ``server.security``), and
    anything else (a revocation on another host) is honoured within ``ttl_s``.
    """

    def __init__(self, *, ttl_s: float, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, str, str]] = {}  # digest: (until, key id, account)

    def account_id(self, key: str) -> str | None:
        """The account of a key verified less than ``ttl_s`` ago, else None."""
        digest = hash_api_key(key)
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if time.monotonic() >= entry[0]:
            del self._entries[digest]
            return None
        return entry[2]

    def remember(self, key: str, row: ApiKey) -> None:
        """Record a key just found live (by :func:`live_api_key`)."""
        until = time.monotonic() + self.ttl_s
        if row.expires_at is not None:
            until = min(until, time.monotonic() + (row.expires_at - utc_now()).total_seconds())
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # many distinct live keys: start over rather than grow
        self._entries[hash_api_key(key)] = (until, row.id, row.account_id)

    def forget(self, key_id: str) -> None:
        for digest, (_until, entry_key_id, _account) in list(self._entries.items()):
            if entry_key_id == key_id:
                del self._entries[digest]

    def clear(self) -> None:
        self._entries.clear()


# A revoked key may keep working this long in a process that did not revoke it and was not told
# (docs/performance.md): the price of not reading the key on every request.
VERIFIED_KEY_TTL_S = 5.0
verified_keys = VerifiedKeys(ttl_s=VERIFIED_KEY_TTL_S)


async def revoke_api_key(session: AsyncSession, *, key_id: str) -> bool:
    """Revoke a key by id; False when no live key has that id."""
    verified_keys.forget(key_id)
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utc_now())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def live_api_key(session: AsyncSession, *, key: str) -> ApiKey | None:
    """The row of a live (unrevoked, unexpired) key, or None; reads only."""
    digest = hash_api_key(key)
    row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
    # The lookup is by digest; compare again in constant time so no early exit leaks a prefix.
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    now = utc_now()
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        return None
    return row


def use_is_stale(key: ApiKey) -> bool:
    """True when the key's ``last_used_at`` is older than its precision and must be written."""
    return key.last_used_at is None or utc_now() - key.last_used_at > LAST_USED_PRECISION


async def record_api_key_use(session: AsyncSession, *, key_id: str) -> None:
    """Set a key's ``last_used_at`` to now."""
    await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utc_now()))


async def account_id_for_api_key(session: AsyncSession, *, key: str) -> str | None:
    """The account a live (unrevoked, unexpired) key belongs to, or None."""
    row = await live_api_key(session, key=key)
    if row is None:
        return None
    if use_is_stale(row):
        row.last_used_at = utc_now()
    return row.account_id


async def shares_organization(session: AsyncSession, *, account_id: str, other_id: str) -> bool:
    """True when both accounts are members of one organization (or one is the other's org)."""
    if account_id == other_id:
        return True
    mine, theirs = aliased(Membership), aliased(Membership)
    shared = await session.scalar(
        select(func.count())
        .select_from(mine)
        .join(theirs, mine.organization_id == theirs.organization_id)
        .where(mine.account_id == account_id, theirs.account_id == other_id)
    )
    if shared:
        return True
    direct = await session.scalar(
        select(func.count())
        .select_from(Membership)
        .where(
            ((Membership.account_id == account_id) & (Membership.organization_id == other_id))
            | ((Membership.account_id == other_id) & (Membership.organization_id == account_id))
        )
    )
    return bool(direct)
