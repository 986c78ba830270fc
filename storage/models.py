"""The tables, as SQLAlchemy 2 typed mappings. Portable between SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, String, Text, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite keeps no zone; PostgreSQL's ``timestamptz`` does. Either way the application sees
    aware UTC datetimes, so comparisons (``hasUnread``) behave the same on both.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_now() -> datetime:
    """Now, in UTC, truncated to the millisecond the API reports."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def storable_key(key: str) -> bool:
    """False for a key no row can have: PostgreSQL text cannot hold NUL (bodies with one are
    refused), so lookups check this first and find nothing on both databases instead of failing."""
    return "\x00" not in key


# Client-supplied ids that break ordering ties compare byte-wise, as SQLite compares them,
# whatever the PostgreSQL database's locale.
BYTEWISE_TEXT = Text().with_variant(Text(collation="C"), "postgresql")


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(20))  # person | artist | organization
    default_model_id: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class Membership(Base):
    """An account belonging to an organization account."""

    __tablename__ = "memberships"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(Text)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Session(Base):
    """A sandbox paired with chat threads, owned by one account."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_account_created", "account_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    artist_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    sandbox_state: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Chat(Base):
    __tablename__ = "chats"
    __table_args__ = (Index("ix_chats_session_created", "session_id", "created_at", "id"),)

    # Client-supplied ids are any non-empty string (of any length), unique across sessions.
    id: Mapped[str] = mapped_column(BYTEWISE_TEXT, primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(Text)
    model_id: Mapped[str] = mapped_column(Text)
    active_stream_id: Mapped[str | None] = mapped_column(String(64))
    last_assistant_message_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ChatMessage(Base):
    """An AI SDK UIMessage of a chat, stored whole."""

    __tablename__ = "chat_messages"
    __table_args__ = (Index("ix_chat_messages_chat_created", "chat_id", "created_at"),)

    chat_id: Mapped[str] = mapped_column(
        ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(BYTEWISE_TEXT, primary_key=True)
    role: Mapped[str] = mapped_column(String(20))
    parts: Mapped[list[Any]]
    created_at: Mapped[datetime]


class ChatRead(Base):
    """How far one account has read one chat."""

    __tablename__ = "chat_reads"

    chat_id: Mapped[str] = mapped_column(
        ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    last_read_at: Mapped[datetime]


class Run(Base):
    """One agent run answering a chat's latest user turn; its id is the durable workflow's id."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    chat_id: Mapped[str] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    # The assistant message the run writes (`start.messageId` of its stream).
    message_id: Mapped[str] = mapped_column(Text)
    # queued | running | completed | failed | cancelled
    status: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Executor(Base):
    """A server process's lease on its durable runs: its DBOS executor id, renewed by heartbeat.

    ``last_seen`` is in seconds since the epoch by the database's clock, so that hosts' clocks
    never meet; ``claimed_by`` names the live executor recovering this one's runs once its lease
    lapsed.
    """

    __tablename__ = "executors"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    last_seen: Mapped[float] = mapped_column(Float)
    claimed_by: Mapped[str | None] = mapped_column(Text)
