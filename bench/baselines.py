"""Two code-first servers of the benchmarked operations, to measure the contract-first one against.

Both call the very handler functions the real server routes to (``handlers.session_chats``), so
storage, queries, transactions and response shaping are the same code; both authenticate through
``server.security.account_for_api_key`` (the server's own path to
``storage.accounts.account_id_for_api_key``) and render errors through the server's
``ErrorRenderer``. Both also do the per-request work the design asks of every response, with the
server's own middleware: the request id and the access line (``RequestLogMiddleware``, logging
as ``recoup-api serve`` does) and the CORS headers (Starlette's ``CORSMiddleware`` with the
server's options). What differs is only the framework around them:

- ``starlette``: routes and hand-written checks, no framework validation (the ceiling);
- ``fastapi``: what a code-first team would write, pydantic request and response models, the
  credentials as a dependency.

Run one with ``python -m bench.baselines starlette|fastapi`` (settings from ``RECOUP_*``); it
serves under uvicorn with the real server's options (``server.cli.uvicorn_options``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from handlers import session_chats
from server import security
from server.config import Settings
from server.context import AppState, AppStateMiddleware
from server.errors import ApiError, ErrorRenderer, InvalidBody, Unauthorized
from server.middleware import RequestLogMiddleware, cors_options
from server.spec import merged_spec
from storage.db import Database

LIST = "handlers.session_chats.list_session_chats"
CREATE = "handlers.session_chats.create_session_chat"
UPDATE = "handlers.session_chats.update_session_chat"


def _state() -> tuple[AppState, Callable[[Any], Any]]:
    """The shared app state and a lifespan that opens (and disposes) its database."""
    settings = Settings.from_env()
    state = AppState(
        settings=settings, errors=ErrorRenderer(merged_spec(), handler_package="handlers")
    )

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        database = state.database = Database(settings.resolved_database_url)
        try:
            yield
        finally:
            await database.dispose()

    return state, lifespan


def _add_middleware(app: Starlette, state: AppState) -> None:
    """The server's own middleware, in its order (outermost first): request id and access line,
    CORS, app state. Starlette puts each one added outside those added before."""
    app.add_middleware(AppStateMiddleware, state=state)
    app.add_middleware(CORSMiddleware, **cors_options(state.settings))
    app.add_middleware(RequestLogMiddleware)


def _credential(api_key: str | None, authorization: str | None) -> str:
    """Exactly one of ``x-api-key`` or ``Authorization: Bearer``, as the spec's schemes say."""
    if (api_key is None) == (authorization is None):
        raise Unauthorized(security.INVALID if api_key is None else security.BOTH_GIVEN)
    if api_key is not None:
        return api_key
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized(security.INVALID)
    return token


def _error(state: AppState, operation: str, exc: ApiError) -> JSONResponse:
    return JSONResponse(state.errors.body(operation, exc.status, exc.message), exc.status)


# --- plain Starlette: no framework validation -------------------------------------------------


def _nonblank(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _starlette_endpoint(
    state: AppState, operation: str, call: Callable[[Request, str], Awaitable[dict[str, Any]]]
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            user = await security.account_for_api_key(
                _credential(request.headers.get("x-api-key"), request.headers.get("authorization"))
            )
            return JSONResponse(await call(request, user))
        except ApiError as exc:
            return _error(state, operation, exc)

    return endpoint


async def _json_object(request: Request, *, required: bool) -> dict[str, Any] | None:
    raw = await request.body()
    if not raw.strip():
        if required:
            raise InvalidBody("Request body is required")
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        raise InvalidBody("Malformed JSON") from None
    if not isinstance(body, dict):
        raise InvalidBody("Request body must be an object")
    return body


async def _starlette_list(request: Request, user: str) -> dict[str, Any]:
    return await session_chats.list_session_chats(request.path_params["session_id"], user)


async def _starlette_create(request: Request, user: str) -> dict[str, Any]:
    body = await _json_object(request, required=False)
    if body is not None and "id" in body and not (isinstance(body["id"], str) and body["id"]):
        raise InvalidBody("Invalid chat id")
    return await session_chats.create_session_chat(request.path_params["session_id"], user, body)


async def _starlette_update(request: Request, user: str) -> dict[str, Any]:
    body = await _json_object(request, required=True) or {}
    given = {key: body[key] for key in ("title", "modelId") if key in body}
    if set(body) - given.keys() or not given or not all(map(_nonblank, given.values())):
        raise InvalidBody("Provide a non-empty title and/or modelId, nothing else")
    return await session_chats.update_session_chat(
        request.path_params["session_id"], request.path_params["chat_id"], user, body
    )


async def _ready(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def starlette_app() -> Starlette:
    """The three operations as plain Starlette routes."""
    state, lifespan = _state()
    chats = "/api/sessions/{session_id}/chats"
    app = Starlette(
        lifespan=lifespan,
        routes=[
            Route(chats, _starlette_endpoint(state, LIST, _starlette_list), methods=["GET"]),
            Route(chats, _starlette_endpoint(state, CREATE, _starlette_create), methods=["POST"]),
            Route(
                chats + "/{chat_id}",
                _starlette_endpoint(state, UPDATE, _starlette_update),
                methods=["PATCH"],
            ),
            Route("/readyz", _ready),
        ],
    )
    _add_middleware(app, state)
    return app


# --- FastAPI: pydantic models, credentials as a dependency ------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateSessionChatRequest(_Model):
    model_config = ConfigDict(extra="allow")
    id: str | None = Field(default=None, min_length=1)


class UpdateSessionChatRequest(_Model):
    title: str | None = Field(default=None, min_length=1, pattern=r"\S")
    modelId: str | None = Field(default=None, min_length=1, pattern=r"\S")  # noqa: N815

    @model_validator(mode="after")
    def _one_given(self) -> UpdateSessionChatRequest:
        if self.title is None and self.modelId is None:
            raise ValueError("Provide title and/or modelId")
        return self


class ChatOut(_Model):
    id: str
    sessionId: str  # noqa: N815
    title: str
    modelId: str  # noqa: N815
    activeStreamId: str | None  # noqa: N815
    lastAssistantMessageAt: str | None  # noqa: N815
    createdAt: str  # noqa: N815
    updatedAt: str  # noqa: N815


class ChatSummaryOut(ChatOut):
    hasUnread: bool  # noqa: N815
    isStreaming: bool  # noqa: N815


class ChatListOut(_Model):
    chats: list[ChatSummaryOut]
    defaultModelId: str  # noqa: N815


class ChatOutEnvelope(_Model):
    chat: ChatOut


async def _fastapi_caller(
    x_api_key: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> str:
    return await security.account_for_api_key(_credential(x_api_key, authorization))


Caller = Annotated[str, Depends(_fastapi_caller)]


def fastapi_app() -> FastAPI:
    """The three operations the way a code-first FastAPI team would write them."""
    state, lifespan = _state()
    app = FastAPI(lifespan=lifespan)
    _add_middleware(app, state)
    operations = {
        ("GET", "/api/sessions/{session_id}/chats"): LIST,
        ("POST", "/api/sessions/{session_id}/chats"): CREATE,
        ("PATCH", "/api/sessions/{session_id}/chats/{chat_id}"): UPDATE,
    }

    def operation_of(request: Request) -> str:
        route = request.scope.get("route")
        return operations.get((request.method, getattr(route, "path", "")), LIST)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return _error(state, operation_of(request), exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return _error(state, operation_of(request), InvalidBody(str(exc.errors()[0]["msg"])))

    @app.get("/api/sessions/{session_id}/chats", response_model=ChatListOut)
    async def list_session_chats(session_id: str, user: Caller) -> dict[str, Any]:
        return await session_chats.list_session_chats(session_id, user)

    @app.post("/api/sessions/{session_id}/chats", response_model=ChatOutEnvelope)
    async def create_session_chat(
        session_id: str, user: Caller, body: CreateSessionChatRequest | None = None
    ) -> dict[str, Any]:
        payload = None if body is None else body.model_dump(exclude_unset=True)
        return await session_chats.create_session_chat(session_id, user, payload)

    @app.patch("/api/sessions/{session_id}/chats/{chat_id}", response_model=ChatOutEnvelope)
    async def update_session_chat(
        session_id: str, chat_id: str, body: UpdateSessionChatRequest, user: Caller
    ) -> dict[str, Any]:
        payload = body.model_dump(exclude_unset=True)
        return await session_chats.update_session_chat(session_id, chat_id, user, payload)

    app.add_api_route("/readyz", _ready, methods=["GET"])
    return app


def main(argv: list[str]) -> int:
    import uvicorn

    from server.cli import (
        configure_logging,
        freeze_heap_after_startup,
        lean_log_records,
        uvicorn_options,
    )

    (framework,) = argv
    factory = {"starlette": starlette_app, "fastapi": fastapi_app}[framework]
    # Served as the real server is: its logging, the same uvicorn options, the heap frozen
    # after startup.
    settings = Settings.from_env()
    configure_logging(settings)
    lean_log_records()
    app = freeze_heap_after_startup(factory())
    uvicorn.run(app, **uvicorn_options(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
