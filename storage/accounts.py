"""Accounts, organizations and API keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.models import Account, ApiKey, Membership, utc_now

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
    return await session.get(Account, account_id)


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


async def revoke_api_key(session: AsyncSession, *, key_id: str) -> bool:
    """Revoke a key by id; False when no live key has that id."""
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utc_now())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def account_id_for_api_key(session: AsyncSession, *, key: str) -> str | None:
    """The account a live (unrevoked, unexpired) key belongs to, or None."""
    digest = hash_api_key(key)
    row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
    # The lookup is by digest; compare again in constant time so no early exit leaks a prefix.
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    now = utc_now()
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        return None
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_PRECISION:
        row.last_used_at = now
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
