"""Who may act on what: the 404-then-403 checks shared by the handlers."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from server.context import settings
from server.errors import Forbidden, NotFound
from storage import accounts, chats, sessions
from storage.models import Chat, Session


async def owned_session(
    tx: AsyncSession, *, session_id: str, account_id: str, for_update: bool = False
) -> Session:
    """The session, when it exists (else 404) and the account owns it (else 403).

    ``for_update`` serialises writers that decide on the session's whole state (PostgreSQL; an
    SQLite transaction already holds the write lock).
    """
    record = await sessions.get_session(tx, session_id=session_id, for_update=for_update)
    if record is None:
        raise NotFound("Session not found")
    if record.account_id != account_id:
        raise Forbidden("You do not have access to this session")
    return record


async def chat_in_session(tx: AsyncSession, *, session: Session, chat_id: str) -> Chat:
    """The chat, when it exists in this session; a chat of another session is 404."""
    chat = await chats.get_chat(tx, chat_id=chat_id)
    if chat is None or chat.session_id != session.id:
        raise NotFound("Chat not found")
    return chat


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
    preferred = account.default_model_id if account is not None else None
    return preferred or settings().default_model
