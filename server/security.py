"""Credentials: exactly one of ``x-api-key`` or ``Authorization: Bearer``.

Connexion calls :func:`api_key_info` or :func:`bearer_info` (wired in ``server.spec``); both
return Connexion's token info, whose ``sub`` is the caller's account id and reaches handlers as
their ``user`` argument.
"""

from __future__ import annotations

import asyncio
from functools import cache
from typing import Any

import jwt
from connexion.lifecycle import ConnexionRequest

from server import context
from server.config import Settings
from server.errors import Unauthorized
from storage import accounts

BOTH_GIVEN = "Send either x-api-key or Authorization: Bearer, not both"
INVALID = "Invalid or expired credentials"


def _refuse_both(request: ConnexionRequest) -> None:
    if "x-api-key" in request.headers and "authorization" in request.headers:
        raise Unauthorized(BOTH_GIVEN)


async def _account_for_key(key: str) -> dict[str, Any]:
    async with context.database().transaction() as session:
        account_id = await accounts.account_id_for_api_key(session, key=key)
    if account_id is None:
        raise Unauthorized(INVALID)
    return {"sub": account_id}


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
