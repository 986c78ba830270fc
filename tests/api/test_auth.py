"""Credentials: exactly one of ``x-api-key`` or ``Authorization: Bearer`` (an API key or a JWT)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
import pytest
from starlette.testclient import TestClient

from server.spec import operations
from storage import accounts
from storage.models import utc_now
from tests.api.conftest import (
    ANY_TEXT,
    JWT_ISSUER,
    JWT_SECRET,
    SPEC,
    Api,
    SmallApp,
    documented_error,
    secured,
    url,
)
from tests.conftest import Accounts, Caller

INVALID = "Invalid or expired credentials"
SECURED = [op["operationId"] for _m, _p, op in operations(SPEC) if secured(op)]
SECURED_WITH_BODY = [
    op["operationId"] for _m, _p, op in operations(SPEC) if secured(op) and "requestBody" in op
]


def _list(client: TestClient, headers: Any) -> Any:
    return client.get("/api/sessions", headers=headers)


def _unauthorized(message: Any = ANY_TEXT) -> dict[str, Any]:
    return documented_error("sessions.list_sessions", 401, message)


@pytest.mark.parametrize("operation_id", SECURED)
def test_no_credentials_is_401(client: TestClient, operation_id: str) -> None:
    method, path = url(operation_id)

    response = client.request(method, path)

    assert (response.status_code, response.json()) == (401, documented_error(operation_id, 401))


@pytest.mark.parametrize("operation_id", SECURED_WITH_BODY)
def test_401_comes_before_a_bad_body(client: TestClient, operation_id: str) -> None:
    method, path = url(operation_id)

    response = client.request(
        method, path, headers={"content-type": "application/json"}, content=b'{"broken": '
    )

    assert (response.status_code, response.json()) == (401, documented_error(operation_id, 401))


@pytest.mark.parametrize(
    "headers",
    [
        {"x-api-key": "recoup_sk_" + "A" * 43},
        {"x-api-key": "not-a-key"},
        {"x-api-key": ""},
        {"authorization": "Bearer recoup_sk_" + "A" * 43},
        {"authorization": "Bearer not-a-jwt"},
        {"authorization": "Bearer "},
        {"authorization": "Basic YWxpY2U6c2VjcmV0"},
    ],
    ids=[
        "unknown-key",
        "malformed-key",
        "empty-key",
        "unknown-bearer-key",
        "bearer-garbage",
        "empty-bearer",
        "basic-auth",
    ],
)
def test_bad_credentials_are_401(client: TestClient, headers: dict[str, str]) -> None:
    response = _list(client, headers)

    assert (response.status_code, response.json()) == (401, _unauthorized())


@pytest.mark.parametrize(
    "credentials",
    [
        lambda a, b: [("x-api-key", a.key), ("authorization", f"Bearer {a.key}")],
        lambda a, b: [("x-api-key", a.key), ("x-api-key", b.key)],
        lambda a, b: [("authorization", f"Bearer {a.key}"), ("authorization", f"Bearer {b.key}")],
    ],
    ids=["key-and-bearer", "two-keys", "two-bearers"],
)
def test_more_than_one_credential_is_401(
    client: TestClient, alice: Caller, bob: Caller, credentials: Any
) -> None:
    Api(client, alice).new_session()

    response = _list(client, credentials(alice, bob))

    assert (response.status_code, response.json()) == (401, _unauthorized())


def test_bearer_api_key(client: TestClient, as_alice: Api) -> None:
    session = as_alice.new_session()["session"]

    response = _list(client, {"authorization": f"Bearer {as_alice.caller.key}"})

    assert response.status_code == 200
    assert [s["id"] for s in response.json()["sessions"]] == [session["id"]]


@dataclass(frozen=True)
class _Key:
    id: str
    plaintext: str


def _new_key(people: Accounts, account_id: str, *, expires_in: timedelta | None = None) -> _Key:
    expires_at = None if expires_in is None else utc_now() + expires_in

    async def work(tx):  # type: ignore[no-untyped-def]
        row, plaintext = await accounts.create_api_key(
            tx, account_id=account_id, name="extra", expires_at=expires_at
        )
        return _Key(row.id, plaintext)

    return people.run(work)


@pytest.mark.parametrize("scheme", ["x-api-key", "bearer"])
def test_revoked_key_is_401(
    client: TestClient, people: Accounts, alice: Caller, scheme: str
) -> None:
    key = _new_key(people, alice.id)
    headers = (
        {"x-api-key": key.plaintext}
        if scheme == "x-api-key"
        else {"authorization": f"Bearer {key.plaintext}"}
    )
    assert _list(client, headers).status_code == 200

    async def revoke(tx):  # type: ignore[no-untyped-def]
        return await accounts.revoke_api_key(tx, key_id=key.id)

    assert people.run(revoke) is True

    response = _list(client, headers)

    assert (response.status_code, response.json()) == (401, _unauthorized(INVALID))
    assert _list(client, alice.headers).status_code == 200


@pytest.mark.parametrize(
    ("expires_in", "status"),
    [(timedelta(seconds=-1), 401), (timedelta(days=-30), 401), (timedelta(hours=1), 200)],
    ids=["just-expired", "long-expired", "not-yet-expired"],
)
def test_key_expiry(
    client: TestClient, people: Accounts, alice: Caller, expires_in: timedelta, status: int
) -> None:
    key = _new_key(people, alice.id, expires_in=expires_in)

    response = _list(client, {"x-api-key": key.plaintext})

    assert response.status_code == status
    if status == 401:
        assert response.json() == _unauthorized(INVALID)


def _token(subject: str, *, key: str = JWT_SECRET, **claims: Any) -> str:
    payload = {"sub": subject, "iss": JWT_ISSUER, "exp": int(time.time()) + 300, **claims}
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm="HS256")


def test_jwt_bearer(client: TestClient, people: Accounts) -> None:
    caller = people.person(name="jwt user")
    headers = {"authorization": f"Bearer {_token(caller.id)}"}

    created = client.post("/api/sessions", headers=headers, json={"title": "Via JWT"})
    listed = _list(client, headers)

    assert created.status_code == 200
    assert [s["title"] for s in listed.json()["sessions"]] == ["Via JWT"]
    # The session belongs to the token's subject: the same account's API key sees it.
    assert _list(client, caller.headers).json() == listed.json()


@pytest.mark.parametrize(
    "token",
    [
        lambda sub: _token(sub, key="another-secret-of-at-least-32-bytes!!"),
        lambda sub: _token(sub, exp=int(time.time()) - 60),
        lambda sub: _token(sub, iss="https://someone-else.test"),
        lambda sub: _token(str(uuid.uuid4())),
        lambda sub: _token(sub, exp=None),
        lambda sub: jwt.encode({"sub": sub, "iss": JWT_ISSUER}, None, algorithm="none"),
    ],
    ids=["bad-signature", "expired", "wrong-issuer", "unknown-subject", "no-exp", "alg-none"],
)
def test_jwt_bearer_refused(client: TestClient, people: Accounts, token: Any) -> None:
    caller = people.person(name="jwt user")

    response = _list(client, {"authorization": f"Bearer {token(caller.id)}"})

    assert (response.status_code, response.json()) == (401, _unauthorized(INVALID))


def test_jwt_refused_when_no_issuer_is_configured(small_app: SmallApp) -> None:
    caller = small_app.people.person()

    response = _list(small_app.client, {"authorization": f"Bearer {_token(caller.id)}"})

    assert (response.status_code, response.json()) == (401, _unauthorized(INVALID))
