"""Credentials: exactly one of ``x-api-key`` or ``Authorization: Bearer``.

Connexion calls :func:`api_key_info` or :func:`bearer_info` (wired in ``server.spec``); both
return Connexion's token info, whose ``sub`` is the caller's account id and reaches handlers as
their ``user`` argument.
"""

from __future__ import annotations

import asyncio
import weakref
from functools import cache
from pathlib import Path
from typing import Any

import jwt
from connexion.lifecycle import ConnexionRequest

from server import context
from server.config import Settings
from server.errors import Unauthorized
from storage import accounts

BOTH_GIVEN = "Send exactly one credential: one x-api-key or one Authorization: Bearer header"
INVALID = "Invalid or expired credentials"
# In the data directory: one line per key revoked by the CLI, so servers drop cached keys.
REVOCATIONS_FILE = "revoked-keys.log"


_CREDENTIAL_HEADERS = (b"x-api-key", b"authorization")


def _refuse_both(request: ConnexionRequest) -> None:
    """Exactly one credential: two headers (of one name or of both) are refused."""
    # ASGI header names are lowercase; counted on the scope, no Headers object is built.
    given = sum(name in _CREDENTIAL_HEADERS for name, _value in request.scope["headers"])
    if given > 1:
        raise Unauthorized(BOTH_GIVEN)


def note_revocation(data_dir: Path, key_id: str) -> None:
    """Tell the servers on ``data_dir`` that a key was revoked (the CLI calls this)."""
    with (data_dir / REVOCATIONS_FILE).open("a", encoding="utf-8") as log:
        log.write(f"{key_id}\n")


_revocations_seen: dict[Path, tuple[int, int]] = {}


@cache
def _revocations_file(data_dir: Path) -> Path:
    return data_dir / REVOCATIONS_FILE


def _forget_keys_if_revoked_elsewhere(data_dir: Path) -> None:
    # One stat per request: the file grows by a line with each revocation by the CLI.
    path = _revocations_file(data_dir)
    try:
        status = path.stat()
        stamp = (status.st_size, status.st_mtime_ns)
    except FileNotFoundError:
        stamp = (0, 0)
    if _revocations_seen.get(path) != stamp:
        accounts.verified_keys.clear()
        _revocations_seen[path] = stamp


# Lookups of keys in flight, per event loop, by the key's digest (see account_for_api_key).
_lookups: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Task[str]]] = (
    weakref.WeakKeyDictionary()
)


async def account_for_api_key(key: str) -> str:
    """The account id of a live API key; :class:`Unauthorized` otherwise.

    A key verified in the last ``accounts.VERIFIED_KEY_TTL_S`` seconds is not read again; a
    revocation by this process or by ``recoup-api keys revoke`` on the same data directory is
    honoured at once, any other within that TTL. The lookup only reads, so it takes no write lock;
    the once-a-minute ``last_used_at`` update is a write transaction of its own.

    Requests that find the same key missing from the cache at the same time (all of a client's
    requests in flight, each time its entry expires) wait for one lookup instead of each reading
    the key and each writing its ``last_used_at``: under load that herd queued tens of write
    transactions and held requests for up to a second (docs/performance.md).
    """
    _forget_keys_if_revoked_elsewhere(context.settings().data_dir)
    account_id = accounts.verified_keys.account_id(key)
    if account_id is not None:
        return account_id
    loop = asyncio.get_running_loop()
    lookups = _lookups.get(loop) or _lookups.setdefault(loop, {})
    digest = accounts.hash_api_key(key)
    lookup = lookups.get(digest)
    if lookup is None:
        lookup = lookups[digest] = asyncio.create_task(_look_up(key))
        lookup.add_done_callback(lambda done: _settled(lookups, digest, done))
    # Shielded: a request that goes away does not cancel the lookup the others wait for.
    return await asyncio.shield(lookup)


def _settled(lookups: dict[str, asyncio.Task[str]], digest: str, lookup: asyncio.Task[str]) -> None:
    del lookups[digest]  # only ever replaced once gone: this is still the entry for it
    if not lookup.cancelled():
        lookup.exception()  # retrieved, so that no waiter left means no "never retrieved" warning


async def _look_up(key: str) -> str:
    """Read the key (and record its use when stale); remember it when live."""
    database = context.database()
    async with database.read() as session:
        key_row = await accounts.live_api_key(session, key=key)
    if key_row is None:
        raise Unauthorized(INVALID)
    if accounts.use_is_stale(key_row):
        async with database.transaction() as session:
            await accounts.record_api_key_use(session, key_id=key_row.id)
    accounts.verified_keys.remember(key, key_row)
    return key_row.account_id


async def _account_for_key(key: str) -> dict[str, Any]:
    return {"sub": await account_for_api_key(key)}


async def api_key_info(token: str, request: ConnexionRequest) -> dict[str, Any]:
    """Connexion's ``x-apikeyInfoFunc``: the account of an ``x-api-key``."""
    _refuse_both(request)
    return await _account_for_key(token)


async def bearer_info(token: str, request: ConnexionRequest) -> dict[str, Any]:
    """Connexion's ``x-bearerInfoFunc``: an API key, or a JWT from the configured issuer."""
    _refuse_both(request)
    if token.startswith(accounts.API_KEY_PREFIX):
        return await _account_for_key(token)
    settings = context.settings()
    if settings.jwt_issuer is None:
        raise Unauthorized(INVALID)
    subject = await _verified_subject(token, settings)
    async with context.database().transaction() as session:
        account = await accounts.get_account(session, account_id=subject)
    if account is None:
        raise Unauthorized(INVALID)
    return {"sub": account.id}


@cache
def _jwks_client(url: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(url, cache_keys=True)


async def _verified_subject(token: str, settings: Settings) -> str:
    try:
        if settings.jwt_jwks_url:
            # Fetching the key set is blocking I/O (cached after the first call).
            signing_key = await asyncio.to_thread(
                _jwks_client(settings.jwt_jwks_url).get_signing_key_from_jwt, token
            )
            key: Any = signing_key.key
            algorithms = ["RS256", "ES256", "EdDSA"]
        elif settings.jwt_secret:
            key, algorithms = settings.jwt_secret, ["HS256", "HS384", "HS512"]
        else:
            raise Unauthorized(INVALID)
        claims = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            options={
                "require": ["exp", "sub", "iss"],
                "verify_aud": settings.jwt_audience is not None,
            },
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized(INVALID) from exc
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise Unauthorized(INVALID)
    return subject
