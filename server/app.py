"""The app factory: the merged spec routes requests to ``handlers`` through Connexion."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from connexion import AsyncApp
from connexion.datastructures import MediaTypeDict
from connexion.exceptions import ProblemException
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from connexion.resolver import RelativeResolver
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware

from runs import runtime as runs_runtime
from sandbox.runner import isolation_mode
from server.config import Settings
from server.connexion_app import SECURITY_MAP, RecoupApp, middlewares
from server.context import AppState, AppStateMiddleware
from server.errors import ApiError, ErrorRenderer
from server.faults import FaultsMiddleware, faults_from_env
from server.middleware import BodyLimitMiddleware, RequestLogMiddleware, cors_options
from server.spec import for_connexion, merged_spec
from server.validation import OpenAPI31BodyValidator, OpenAPI31ParameterValidator
from storage.db import Database

logger = logging.getLogger("recoup_api")

SPEC_PATH = "/api/openapi.json"
DOCS_PATH = "/api/docs"
HANDLERS = "handlers"
# How often DBOS's notification listener and scheduler poll on SQLite. The app uses neither
# DBOS notifications nor scheduled workflows (streams wake their readers themselves, runs/), so
# DBOS's default of a second costs 1 % of a core when idle where 0.1 s cost 2.5 %.
RUNS_POLLING_INTERVAL_S = 1.0


def create_app(settings: Settings | None = None) -> AsyncApp:
    """Build the ASGI app; the database is opened (and migrated) in its lifespan."""
    settings = settings or Settings.from_env()
    document = merged_spec()
    errors = ErrorRenderer(document, handler_package=HANDLERS)
    state = AppState(settings=settings, errors=errors)

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        database = state.database = Database(settings.resolved_database_url)
        await database.upgrade()
        logger.info((await asyncio.to_thread(isolation_mode))[1])
        try:
            # Launching the durable-run runtime resumes the runs a crash interrupted.
            await runs_runtime.start(
                database=database,
                data_dir=settings.data_dir,
                system_database_url=runs_runtime.system_database_url(
                    data_dir=settings.data_dir,
                    database_url=settings.resolved_database_url,
                    override=settings.dbos_database_url,
                ),
                polling_interval_s=RUNS_POLLING_INTERVAL_S,
                executor_id=settings.executor_id,
                heartbeat_s=settings.executor_heartbeat_s,
                lease_s=settings.executor_lease_s,
            )
            try:
                yield
            finally:
                await runs_runtime.stop()
        finally:
            await database.dispose()

    app = RecoupApp(
        __name__,
        lifespan=lifespan,
        middlewares=middlewares(
            validate_responses=settings.validate_responses,
            before_validation=[
                functools.partial(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
            ],
        ),
    )
    app.add_api(
        for_connexion(document),
        resolver=RelativeResolver(HANDLERS),
        pythonic_params=True,
        strict_validation=True,
        security_map=SECURITY_MAP,
        validate_responses=settings.validate_responses,
        validator_map={
            "body": MediaTypeDict({"*/*json": OpenAPI31BodyValidator}),
            "parameter": OpenAPI31ParameterValidator,
        },
        swagger_ui_options=SwaggerUIOptions(
            serve_spec=False, spec_path=SPEC_PATH, swagger_ui_path=DOCS_PATH
        ),
    )

    # Listed outermost first: the request id and log see every response, CORS headers reach
    # error responses too, and preflight requests never meet authentication.
    app.add_middleware(RequestLogMiddleware, position=MiddlewarePosition.BEFORE_EXCEPTION)
    app.add_middleware(
        CORSMiddleware, position=MiddlewarePosition.BEFORE_EXCEPTION, **cors_options(settings)
    )
    app.add_middleware(
        AppStateMiddleware, position=MiddlewarePosition.BEFORE_EXCEPTION, state=state
    )
    # Deliberate defects for the conformance kit's own tests (RECOUP_FAULTS; none by default).
    faults = faults_from_env()
    if faults:
        app.add_middleware(
            FaultsMiddleware, position=MiddlewarePosition.BEFORE_EXCEPTION, faults=faults
        )

    app.add_error_handler(ApiError, errors.api_error)  # type: ignore[arg-type]
    app.add_error_handler(ProblemException, errors.problem)  # type: ignore[arg-type]
    app.add_error_handler(HTTPException, errors.http_exception)  # type: ignore[arg-type]
    app.add_error_handler(Exception, errors.unexpected)
    return app
