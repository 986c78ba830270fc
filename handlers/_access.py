"""Who may act on what: the 404-then-403 checks shared by the handlers."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from server.context import settings
from server.errors import Forbidden, NotFound
from storage import accounts, chats, sessions
from storage.chats import ChatRecord
from storage.db import Connectable
from storage.models import Chat, Session
from storage.sessions import SessionAccess

_Owned = TypeVar("_Owned", Session, SessionAccess)
_Chat = TypeVar("_Chat", Chat, ChatRecord)


def _owned(found: _Owned | None, *, account_id: str) -> _Owned:
    """What was found of a session, when it exists (else 404) and the account owns it (else 403)."""
    if found is None:
        raise NotFound("Session not found")
    if found.account_id != account_id:
        raise Forbidden("You do not have access to this session")
    return found


def found_chat(chat: _Chat | None) -> _Chat:
    """The chat found in a session; none there (even when another session has it) is 404."""
    if chat is None:
        raise NotFound("Chat not found")
    return chat


async def authorize_session(db: Connectable, *, session_id: str, account_id: str) -> str:
    """Check that the session exists (else 404) and the account owns it (else 403).

    Returns the account's default model (see :func:`default_model`), which the same statement
    reads: every operation on a session's chats starts here, and most of them need it.
    """
    access = await sessions.session_access(db, session_id=session_id, account_id=account_id)
    return _model_or_default(_owned(access, account_id=account_id).default_model_id)


async def owned_session(
    tx: AsyncSession, *, session_id: str, account_id: str, for_update: bool = False
) -> Session:
    """The session, when it exists (else 404) and the account owns it (else 403).

    ``for_update`` serialises writers that decide on the session's whole state (PostgreSQL; an
    SQLite transaction already holds the write lock).
    """
    record = await sessions.get_session(tx, session_id=session_id, for_update=for_update)
    return _owned(record, account_id=account_id)


async def chat_in_session(tx: AsyncSession, *, session: Session, chat_id: str) -> Chat:
    """The chat, when it exists in this session; a chat of another session is 404."""
    chat = await chats.get_chat(tx, chat_id=chat_id)
    return found_chat(chat if chat is not None and chat.session_id == session.id else None)


async def acting_account(tx: AsyncSession, *, caller: str, account_id: str | None) -> str:
    """The account a request acts for: the caller, or one sharing an organization with it."""
    if account_id is None or account_id == caller:
        return caller
    target = await accounts.get_account(tx, account_id=account_id)
    if target is None or not await accounts.shares_organization(
        tx, account_id=caller, other_id=account_id
    ):
        # An unknown account and one out of reach look the same, so ids cannot be probed.
        raise Forbidden("You do not have access to the specified accountId")
    return account_id


async def usable_artist(tx: AsyncSession, *, account_id: str, artist_id: str | None) -> str | None:
    """An artist id the account may create sessions for: 404 unknown, 403 out of reach."""
    if artist_id is None:
        return None
    artist = await accounts.get_account(tx, account_id=artist_id)
    if artist is None or artist.kind != "artist":
        raise NotFound("Artist not found")
    if not await accounts.shares_organization(tx, account_id=account_id, other_id=artist_id):
        raise Forbidden("You do not have access to this artist")
    return artist_id


async def default_model(tx: AsyncSession, *, account_id: str) -> str:
    """The account's preferred model, else the server's default."""
    account = await accounts.get_account(tx, account_id=account_id)
    return _model_or_default(account.default_model_id if account is not None else None)


def _model_or_default(preferred: str | None) -> str:
    return preferred or settings().default_model
