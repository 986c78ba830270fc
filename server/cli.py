"""The ``recoup-api`` command: serve, migrate, manage accounts and keys, scaffold handlers."""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server import security
from server.config import Settings
from storage import accounts, locks
from storage.db import Database
from storage.models import utc_now

FIRST_START_LOCK = "recoup-api first start"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class LogFormatter(logging.Formatter):
    """``logging.Formatter`` with the same output, whose date and time part is formatted once a
    second rather than once a record: under load that ``strftime`` was a sixth of the access
    log's cost, which every request pays (docs/performance.md)."""

    def __init__(self, fmt: str = LOG_FORMAT) -> None:
        super().__init__(fmt)
        self._second: tuple[int, str] = (-1, "")  # one tuple, so threads never see half of it

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        msec_format = self.default_msec_format
        if datefmt or not msec_format:
            return super().formatTime(record, datefmt)
        second, formatted = self._second
        if int(record.created) != second:
            second = int(record.created)
            formatted = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = (second, formatted)
        return msec_format % (formatted, record.msecs)


def lean_log_records() -> None:
    """Stop ``logging`` gathering, for every record, what the server's log format never shows.

    The caller's file, line and function (a walk up the stack), and the thread's, process's and
    multiprocessing process's names: the switches documented in the logging HOWTO
    ("Optimization"). For ``recoup-api serve`` alone, whose process logs one line per request;
    a format that asks for those fields then shows them empty (the thread, process and source
    fields as ``None``, the source file as ``(unknown file)``).
    """
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def configure_logging(settings: Settings) -> None:
    """Log records to standard error at the configured level, in the server's one line format."""
    handler = logging.StreamHandler()
    handler.setFormatter(LogFormatter())
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler])
    # Migration chatter on every command drowns the one line the command prints.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _print(payload: dict[str, Any]) -> None:
    print(json.dumps(payload), flush=True)


async def _open(settings: Settings) -> Database:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.resolved_database_url)
    await database.upgrade()
    return database


@asynccontextmanager
async def _transaction(settings: Settings) -> AsyncIterator[AsyncSession]:
    """One transaction on the migrated database, for a command that runs once and exits."""
    database = await _open(settings)
    try:
        async with database.transaction() as tx:
            yield tx
    finally:
        await database.dispose()


async def _first_start(settings: Settings) -> str | None:
    """Migrate; on an empty database create a developer account and return its key.

    Servers starting together on an empty database take turns, so exactly one creates it.
    """
    async with _transaction(settings) as tx:
        await locks.take_turns(tx, name=FIRST_START_LOCK)
        if await accounts.count_accounts(tx):
            return None
        account = await accounts.create_account(tx, name="developer", kind="person")
        _key, plaintext = await accounts.create_api_key(
            tx, account_id=account.id, name="first start"
        )
    return plaintext


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn serves the app (also used by the benchmark's baselines, for a fair match).

    uvloop and httptools (from ``uvicorn[standard]``) are named, not left to "auto", so that a
    missing wheel is a visible fallback rather than a silent slowdown (docs/performance.md).
    """
    fast = importlib.util.find_spec("uvloop") and importlib.util.find_spec("httptools")
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": False,  # the app logs each request once, with its request id
        "loop": "uvloop" if fast else "asyncio",
        "http": "httptools" if fast else "h11",
    }


def freeze_heap_after_startup(app: Any) -> Any:
    """``app``, with what is alive at the end of its startup moved out of the collector's sight.

    Modules, the spec, Connexion's operations and the durable-run runtime live as long as the
    process: a quarter of a million objects, which every full collection of the cyclic garbage
    collector walked with the event loop stopped (75–125 ms here; the worst latencies under
    load). Once the app has started they are collected once and frozen (``gc.freeze``), so
    later collections walk only what requests allocate (docs/performance.md). Only for a served
    process: an app started many times in one process (the tests) would keep each start's heap.
    """

    async def started_then_frozen(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return

        async def send_and_freeze(message: Any) -> None:
            if message["type"] == "lifespan.startup.complete":
                gc.collect()
                gc.freeze()
            await send(message)

        await app(scope, receive, send_and_freeze)

    return started_then_frozen


def served_app() -> Any:
    """The app ``recoup-api serve`` runs (uvicorn's factory)."""
    from server.app import create_app

    return freeze_heap_after_startup(create_app())


def serve(settings: Settings) -> int:
    import uvicorn

    key = asyncio.run(_first_start(settings))
    if key is not None:
        print(
            f"\n  First start: created a developer account.\n  API key: {key}\n"
            f"  Try: curl -X POST -H 'x-api-key: {key}' http://{settings.host}:{settings.port}"
            "/api/sessions\n",
            flush=True,
        )
    uvicorn.run("server.cli:served_app", factory=True, **uvicorn_options(settings))
    return 0


async def _db_upgrade(settings: Settings) -> int:
    database = await _open(settings)
    await database.dispose()
    _print({"upgraded": True, "database": database.engine.url.render_as_string()})
    return 0


async def _accounts_create(settings: Settings, args: argparse.Namespace) -> int:
    async with _transaction(settings) as tx:
        kind = "artist" if args.artist else "person"
        account = await accounts.create_account(
            tx, name=args.name, kind=kind, organization=args.org
        )
        key = None
        if kind != "artist":
            _row, key = await accounts.create_api_key(tx, account_id=account.id, name="cli")
    _print({"id": account.id, "apiKey": key})
    return 0


async def _keys_create(settings: Settings, args: argparse.Namespace) -> int:
    async with _transaction(settings) as tx:
        account = await accounts.get_account(tx, account_id=args.account)
        if account is None or account.kind == "artist":
            print(f"error: no account {args.account} that can hold keys", file=sys.stderr)
            return 1
        expires = utc_now() + timedelta(days=args.expires_in_days) if args.expires_in_days else None
        row, key = await accounts.create_api_key(
            tx, account_id=account.id, name=args.name, expires_at=expires
        )
    _print({"id": row.id, "accountId": account.id, "apiKey": key})
    return 0


async def _keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    async with _transaction(settings) as tx:
        revoked = await accounts.revoke_api_key(tx, key_id=args.key_id)
    if revoked:
        security.note_revocation(settings.data_dir, args.key_id)
    _print({"id": args.key_id, "revoked": revoked})
    return 0 if revoked else 1


def _codegen() -> int:
    from server.codegen import generate_stubs
    from server.spec import merged_spec

    for name in generate_stubs(merged_spec()):
        print(f"stub written: {name}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recoup-api", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="serve the API (settings from RECOUP_* variables)")
    db = commands.add_parser("db", help="database maintenance").add_subparsers(
        dest="db_command", required=True
    )
    db.add_parser("upgrade", help="apply pending migrations")
    accounts_parser = commands.add_parser("accounts", help="manage accounts")
    account_commands = accounts_parser.add_subparsers(dest="accounts_command", required=True)
    create = account_commands.add_parser("create", help="create an account and its first key")
    create.add_argument("--name", required=True)
    create.add_argument("--org", help="organization id or name to join (created if absent)")
    create.add_argument("--artist", action="store_true", help="an artist account (no key)")
    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True
    )
    key_create = keys.add_parser("create", help="create an API key for an account")
    key_create.add_argument("--account", required=True)
    key_create.add_argument("--name", default="cli")
    key_create.add_argument("--expires-in-days", type=int, default=None)
    key_revoke = keys.add_parser("revoke", help="revoke an API key by id")
    key_revoke.add_argument("key_id")
    commands.add_parser("codegen", help="write handler stubs for operations without handlers")
    commands.add_parser(
        "conformance", help="test an implementation against the contract (docs/conformance.md)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["conformance"]:
        # The kit has its own options; it needs no settings or database of this server.
        from conformance.cli import main as conformance_main

        return conformance_main(argv[1:])
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    configure_logging(settings)
    if args.command == "serve":
        lean_log_records()
        return serve(settings)
    if args.command == "db":
        return asyncio.run(_db_upgrade(settings))
    if args.command == "accounts":
        return asyncio.run(_accounts_create(settings, args))
    if args.command == "keys" and args.keys_command == "create":
        return asyncio.run(_keys_create(settings, args))
    if args.command == "keys":
        return asyncio.run(_keys_revoke(settings, args))
    return _codegen()


if __name__ == "__main__":
    sys.exit(main())
