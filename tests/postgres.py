"""A throwaway PostgreSQL cluster for the tests: started once per run, a fresh database per test.

PostgreSQL refuses to run as root, so as root the cluster runs as the ``postgres`` system user
(or a dedicated one, created when neither exists) in a temporary directory it owns. Durability
is switched off: the data is thrown away at the end anyway, and fsync is where the time would go.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from storage.db import Database

ROLE = "postgres"
TEMPLATE = "recoup_template"
PREFIX = "recoup-pg-"
DEDICATED_USER = "recoup-postgres"  # created when root and there is no ``postgres`` user
# Databases sort text linguistically, as a typical production one does (SQLite compares bytes).
LOCALE = "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
SERVER_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_connections": "300",
    "shared_buffers": "128MB",
    "checkpoint_timeout": "1h",
    "max_wal_size": "4GB",
    "log_min_messages": "warning",
}


def _candidate_bindirs() -> Iterator[Path]:
    if shutil.which("pg_config"):
        found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if found.returncode == 0:
            yield Path(found.stdout.strip())
    # Newest major version first; Debian's pg_config may belong to libpq-dev alone.
    yield from sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
        reverse=True,
    )


def _find_bindir() -> Path | None:
    for bindir in _candidate_bindirs():
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "psql")):
            return bindir
    return None


def server_bindir() -> Path:
    """The directory of ``initdb``/``pg_ctl``; installs PostgreSQL 15 when root and absent."""
    bindir = _find_bindir()
    if bindir is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "postgresql-15"], check=True, env=env)
        bindir = _find_bindir()
    if bindir is None:
        raise RuntimeError(
            "PostgreSQL server binaries not found (pg_config --bindir, /usr/lib/postgresql/*/bin)"
            " and could not be installed: install postgresql-15 to run the postgresql tests"
        )
    return bindir


def _service_user() -> str | None:
    """The OS user the server runs as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", DEDICATED_USER):
        with suppress(KeyError):
            return pwd.getpwnam(name).pw_name
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", DEDICATED_USER],
        check=True,
    )
    return DEDICATED_USER


def free_port() -> int:
    """A loopback TCP port nobody listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _in_thread(coroutine_factory) -> None:  # type: ignore[no-untyped-def]
    """Run a coroutine to completion on a private loop, whatever loop the caller is in."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coroutine_factory())
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PostgresCluster:
    """A cluster in a temporary directory on a free loopback port, trusting local connections."""

    def __init__(self, root: Path | None = None) -> None:
        self.bindir = server_bindir()
        self.user = _service_user()
        self.root = root or Path(tempfile.mkdtemp(prefix=PREFIX))
        self.data = self.root / "data"
        self.port = free_port()
        if root is None:
            # Who started it: a later run stops the cluster if this process dies without doing so.
            (self.root / "owner.pid").write_text(str(os.getpid()))
            if self.user is not None:
                entry = pwd.getpwnam(self.user)
                os.chown(self.root, entry.pw_uid, entry.pw_gid)

    @classmethod
    def reap_orphans(cls) -> None:
        """Stop and delete the clusters of test runs that were killed before their teardown."""
        for owner in Path(tempfile.gettempdir()).glob(f"{PREFIX}*/owner.pid"):
            try:
                pid = int(owner.read_text())
            except (OSError, ValueError):
                continue
            if not _alive(pid):
                with suppress(RuntimeError):  # already stopped, or another run reaped it first
                    cls(owner.parent).stop()

    def _run(self, *command: str) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", self.user, "--"] if self.user is not None else []
        done = subprocess.run([*prefix, *command], capture_output=True, text=True, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def start(self) -> None:
        """Create the cluster, start it, and build the migrated template database."""
        self._run(
            str(self.bindir / "initdb"),
            "--pgdata",
            str(self.data),
            "--username",
            ROLE,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        options = " ".join(f"-c {name}={value}" for name, value in SERVER_SETTINGS.items())
        options += f" -c listen_addresses=127.0.0.1 -p {self.port} -k {self.root}"
        self._run(
            str(self.bindir / "pg_ctl"),
            "start",
            "--pgdata",
            str(self.data),
            "--wait",
            "--timeout",
            "60",
            "--log",
            str(self.root / "server.log"),
            "-o",
            options,
        )
        self.sql(f"CREATE DATABASE {TEMPLATE} {LOCALE}")
        template = Database(self.url(TEMPLATE))

        async def migrate() -> None:
            try:
                await template.upgrade()
            finally:
                await template.dispose()

        _in_thread(migrate)

    def stop(self) -> None:
        """Stop the server at once and delete its files."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "stop",
                    "--pgdata",
                    str(self.data),
                    "-m",
                    "immediate",
                )
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        """An asyncpg URL of one database of the cluster."""
        return f"postgresql+asyncpg://{ROLE}@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str) -> None:
        """Run one statement as the superuser, outside any transaction."""
        done = subprocess.run(
            [
                str(self.bindir / "psql"),
                "--no-psqlrc",
                "--quiet",
                "--set=ON_ERROR_STOP=1",
                f"--host={self.root}",
                f"--port={self.port}",
                f"--username={ROLE}",
                "--dbname=postgres",
                f"--command={statement}",
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{statement!r} failed: {done.stderr}")

    @contextmanager
    def database(self, *, migrated: bool = True) -> Iterator[str]:
        """A new database (migrated, or empty) for one test, dropped afterwards; yields its URL."""
        name = f"test_{uuid.uuid4().hex}"
        self.sql(f"CREATE DATABASE {name} {f'TEMPLATE {TEMPLATE}' if migrated else LOCALE}")
        try:
            yield self.url(name)
        finally:
            # FORCE: a test that failed half-way may leave a connection open.
            self.sql(f"DROP DATABASE {name} WITH (FORCE)")


@contextmanager
def running_cluster() -> Iterator[PostgresCluster]:
    """A started cluster, stopped and deleted on exit."""
    PostgresCluster.reap_orphans()
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
