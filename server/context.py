"""What a request can reach of the running app: settings, database, error renderer."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from server.config import Settings
from server.errors import ErrorRenderer
from storage.db import Database


@dataclass
class AppState:
    settings: Settings
    errors: ErrorRenderer
    database: Database | None = None  # opened in the app's lifespan


_current: ContextVar[AppState] = ContextVar("recoup_app_state")


def current() -> AppState:
    """The state of the app serving the current request."""
    return _current.get()


def database() -> Database:
    """The open database of the current app."""
    opened = _current.get().database
    if opened is None:
        raise RuntimeError("the database is opened by the app's lifespan, which has not run")
    return opened


def settings() -> Settings:
    return _current.get().settings


class AppStateMiddleware:
    """Makes the app's state reachable through :func:`current` for the request's duration."""

    def __init__(self, app: ASGIApp, *, state: AppState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _current.set(self.state)
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)
