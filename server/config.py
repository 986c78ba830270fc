"""One typed settings object, read from the environment once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

OFFLINE_MODEL = "recoup/offline"


_Number = TypeVar("_Number", int, float)


def _number(name: str, default: _Number) -> _Number:
    """The variable read as the type of its default; unset or empty means the default."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return type(default)(raw)
    except ValueError as exc:
        kind = "an integer" if isinstance(default, int) else "a number"
        raise ValueError(f"{name} must be {kind}, not {raw!r}") from exc


@dataclass(frozen=True)
class Settings:
    """Every setting of the server; see the README for each variable."""

    data_dir: Path = Path("data")
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    default_model: str = OFFLINE_MODEL
    max_body_bytes: int = 4 * 1024 * 1024
    cors_origins: tuple[str, ...] = ("*",)
    jwt_issuer: str | None = None
    jwt_secret: str | None = None
    jwt_jwks_url: str | None = None
    jwt_audience: str | None = None
    validate_responses: bool = False
    log_level: str = "info"
    stream_keep_alive_s: float = 10.0
    dbos_database_url: str = ""
    # This process's DBOS executor id (DBOS__VMID); empty: chosen by runs/executors.py.
    executor_id: str = ""
    executor_heartbeat_s: float = 5.0
    executor_lease_s: float = 15.0

    def __post_init__(self) -> None:
        if not 0 < self.executor_heartbeat_s < self.executor_lease_s:
            # A lease no longer than a heartbeat would lapse while its process is alive.
            raise ValueError(
                "RECOUP_EXECUTOR_LEASE_SECONDS must exceed RECOUP_EXECUTOR_HEARTBEAT_SECONDS > 0"
            )

    @classmethod
    def from_env(cls) -> Settings:
        """Build the settings from ``RECOUP_*`` variables."""
        env = os.environ
        data_dir = Path(env.get("RECOUP_DATA_DIR") or "data")
        origins = tuple(
            origin.strip()
            for origin in (env.get("RECOUP_CORS_ORIGINS") or "*").split(",")
            if origin.strip()
        )
        heartbeat_s = _number("RECOUP_EXECUTOR_HEARTBEAT_SECONDS", 5.0)
        return cls(
            data_dir=data_dir,
            database_url=env.get("RECOUP_DATABASE_URL") or "",
            host=env.get("RECOUP_HOST") or "127.0.0.1",
            port=_number("RECOUP_PORT", 8000),
            default_model=env.get("RECOUP_DEFAULT_MODEL") or OFFLINE_MODEL,
            max_body_bytes=_number("RECOUP_MAX_BODY_BYTES", 4 * 1024 * 1024),
            cors_origins=origins,
            jwt_issuer=env.get("RECOUP_JWT_ISSUER") or None,
            jwt_secret=env.get("RECOUP_JWT_SECRET") or None,
            jwt_jwks_url=env.get("RECOUP_JWT_JWKS_URL") or None,
            jwt_audience=env.get("RECOUP_JWT_AUDIENCE") or None,
            validate_responses=env.get("RECOUP_VALIDATE_RESPONSES", "") == "1",
            log_level=env.get("RECOUP_LOG_LEVEL") or "info",
            stream_keep_alive_s=_number("RECOUP_STREAM_KEEPALIVE_SECONDS", 10.0),
            dbos_database_url=env.get("RECOUP_DBOS_DATABASE_URL") or "",
            executor_id=env.get("DBOS__VMID") or "",
            executor_heartbeat_s=heartbeat_s,
            executor_lease_s=_number("RECOUP_EXECUTOR_LEASE_SECONDS", 3 * heartbeat_s),
        )

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to an SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'recoup.db').resolve()}"
