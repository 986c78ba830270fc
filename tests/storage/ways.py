"""The two ways into a database that storage functions run on, for tests that cover both."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from storage.db import Connectable, Database

Opener = Callable[[Database], AbstractAsyncContextManager[Connectable]]
# A session (Database.transaction / Database.read, through SQLAlchemy's asyncio layer) and a bare
# connection (Database.connection; on SQLite a synchronous connection on the loop's thread).
WRITERS: dict[str, Opener] = {
    "session": lambda db: db.transaction(),
    "connection": lambda db: db.connection(),
}
READERS: dict[str, Opener] = {
    "session": lambda db: db.read(),
    "connection": lambda db: db.connection(read_only=True),
}
