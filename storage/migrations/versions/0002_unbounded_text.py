"""unbounded text for client- and operator-supplied strings; chat and message ids bytewise

A chat id is any non-empty string, and names and model ids have no documented limit. SQLite
never enforced the declared lengths; PostgreSQL does, so a 256-character chat id was a 500 there
and a 200 on SQLite. Making these columns ``text`` gives both databases the same behaviour.
Chat and message ids break ordering ties; collation "C" orders them byte-wise, as SQLite does,
whatever the database's locale.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BYTEWISE = "C"
# (table, column, former length, nullable, collation)
COLUMNS = (
    ("accounts", "name", 200, False, None),
    ("accounts", "default_model_id", 200, True, None),
    ("api_keys", "name", 200, False, None),
    ("chats", "id", 255, False, BYTEWISE),
    ("chats", "model_id", 200, False, None),
    ("chat_messages", "chat_id", 255, False, BYTEWISE),
    ("chat_messages", "id", 255, False, BYTEWISE),
    ("chat_reads", "chat_id", 255, False, BYTEWISE),
)


def _skip() -> bool:
    # SQLite ignores declared lengths (VARCHAR(255) already has TEXT affinity), and rebuilding a
    # referenced table there would cascade-delete its children under foreign_keys=ON.
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    if _skip():
        return
    for table, column, length, nullable, collation in COLUMNS:
        op.alter_column(
            table,
            column,
            type_=sa.Text(collation=collation),
            existing_type=sa.String(length=length),
            existing_nullable=nullable,
        )


def downgrade() -> None:
    if _skip():
        return
    for table, column, length, nullable, collation in reversed(COLUMNS):
        op.alter_column(
            table,
            column,
            type_=sa.String(length=length),
            existing_type=sa.Text(collation=collation),
            existing_nullable=nullable,
        )
