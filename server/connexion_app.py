"""Connexion's ``AsyncApp``, with the per-request work that depends only on the operation done once.

Connexion 3.3 rebuilds, on every request, things that never change for an operation: the chain of
decorators around the handler (which inspects the handler's signature), the URI parser of the
operation's parameters, the snake_case form of each parameter name (three regular expressions a
name), and whether each security function takes ``request``/``required_scopes`` keywords (one
``inspect.signature`` per check). Here each is built once and reused, through Connexion's own
extension points: the app's operation class, its decorator, the parameter decorator's name
sanitizer and the ``security_map`` handlers. What a request sees is unchanged; only the repeated
building is gone (docs/performance.md).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from connexion import AsyncApp
from connexion.apps.abstract import AbstractApp
from connexion.apps.asynchronous import AsyncApi, AsyncASGIApp, AsyncOperation
from connexion.context import receive as current_receive
from connexion.context import scope as current_scope
from connexion.decorators import StarletteDecorator
from connexion.decorators.parameter import AsyncParameterDecorator, pythonic, sanitized
from connexion.middleware.main import ConnexionMiddleware
from connexion.middleware.response_validation import ResponseValidationMiddleware
from connexion.middleware.routing import RoutingMiddleware
from connexion.middleware.swagger_ui import SwaggerUIMiddleware
from connexion.security import ApiKeySecurityHandler, BearerSecurityHandler
from connexion.utils import inspect_function_arguments
from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, Mount, Route, Router
from starlette.types import Receive, Scope, Send

# The spec's parameter names are few and fixed; a request's unknown ones are bounded per request.
_cached_pythonic = functools.lru_cache(maxsize=1024)(pythonic)
_cached_sanitized = functools.lru_cache(maxsize=1024)(sanitized)


class _ParameterDecorator(AsyncParameterDecorator):
    """Connexion's parameter decorator whose name conversion is memoized (a pure function)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sanitize_fn = _cached_pythonic if kwargs.get("pythonic_params") else _cached_sanitized


class _Decorator(StarletteDecorator):
    """Connexion's Starlette decorator, decorating the handler once instead of per request."""

    @property
    def _parameter_decorator_cls(self) -> type[AsyncParameterDecorator]:
        return _ParameterDecorator

    def __call__(self, function: Callable[..., Any]) -> Callable[..., Any]:
        decorated = self.decorate(function)
        # The wrapper serves one operation (each _Operation decorates its own): its URI parser,
        # built from the operation of the first request, is the same for every later one.
        parser: Any = None

        @functools.wraps(function)
        async def wrapper(*_args: Any, **_kwargs: Any) -> Any:
            nonlocal parser
            if parser is None:
                parser = self.uri_parser
            request = self.framework.get_request(
                uri_parser=parser, scope=current_scope, receive=current_receive
            )
            return await decorated(request)

        return wrapper


class _Operation(AsyncOperation):
    @functools.cached_property
    def fn(self) -> Callable[..., Any]:  # type: ignore[override]
        return _Decorator(pythonic_params=self.pythonic_params, jsonifier=self.jsonifier)(self._fn)


class _Api(AsyncApi):
    def make_operation(self, operation: Any) -> AsyncOperation:
        return _Operation.from_operation(
            operation, pythonic_params=self.pythonic_params, jsonifier=self.jsonifier
        )


class _ASGIApp(AsyncASGIApp):
    api_cls = _Api


@functools.cache
def _accepts_keyword(function: Callable[..., Any], keyword: str) -> bool:
    arguments, has_kwargs = inspect_function_arguments(function)
    return bool(has_kwargs) or keyword in arguments


class _CachedKeywordChecks:
    """Security handlers that inspect each security function's signature once."""

    @staticmethod
    def _accepts_kwarg(func: Callable[..., Any], keyword: str) -> bool:
        return _accepts_keyword(inspect.unwrap(func), keyword)


class ApiKeyHandler(_CachedKeywordChecks, ApiKeySecurityHandler):
    pass


class BearerHandler(_CachedKeywordChecks, BearerSecurityHandler):
    pass


SECURITY_MAP = {"apiKey": ApiKeyHandler, "bearer": BearerHandler}


def _literal_prefix(route: BaseRoute) -> str:
    """What every path the route matches starts with ("" when it cannot say)."""
    if isinstance(route, Route):
        return route.path_format.split("{", 1)[0]
    return ""


def _index_routes(router: Router) -> None:
    """Make ``router`` try, in its order, only the routes whose literal prefix starts the path.

    Starlette tries every route's regular expression in turn (and, when none matches, every route
    again with a slash added or removed, for a redirect): the operation's route was found after
    two dozen misses, and the Swagger UI's router, in front of every request, missed all of its
    routes twice. A route whose literal prefix does not start the path cannot match, so skipping
    it changes nothing; whenever some route does match, Starlette's own algorithm decides.
    """
    fallback = router.middleware_stack
    indexed: list[tuple[str, BaseRoute]] = []

    def candidates(path: str) -> list[BaseRoute]:
        if len(indexed) != len(router.routes):
            indexed[:] = [(_literal_prefix(route), route) for route in router.routes]
        return [route for prefix, route in indexed if path.startswith(prefix)]

    def best_match(scope: Scope) -> tuple[BaseRoute, Scope] | None:
        """The first full match, else the first partial one (what Starlette picks)."""
        partial: tuple[BaseRoute, Scope] | None = None
        for route in candidates(get_route_path(scope)):
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                return route, child_scope
            if match is Match.PARTIAL and partial is None:
                partial = (route, child_scope)
        return partial

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await fallback(scope, receive, send)
            return
        scope.setdefault("router", router)
        found = best_match(scope)
        if found is not None:
            route, child_scope = found
            scope["route"] = route
            scope.update(child_scope)
            await route.handle(scope, receive, send)
            return
        path = get_route_path(scope)
        if router.redirect_slashes and path != "/":
            other = dict(scope)
            other["path"] = scope["path"].rstrip("/") if path.endswith("/") else scope["path"] + "/"
            if best_match(other) is not None:
                await fallback(scope, receive, send)  # Starlette answers with its redirect
                return
        await router.default(scope, receive, send)

    router.middleware_stack = app


def _index_mounted_routers(router: Router) -> None:
    for route in router.routes:
        if isinstance(route, Mount) and isinstance(route.app, Router):
            _index_routes(route.app)


class IndexedRoutingMiddleware(RoutingMiddleware):
    """Connexion's routing, with each API's routes indexed by literal prefix."""

    def add_api(self, *args: Any, **kwargs: Any) -> None:
        super().add_api(*args, **kwargs)
        _index_mounted_routers(self.router)


class IndexedSwaggerUIMiddleware(SwaggerUIMiddleware):
    """Connexion's Swagger UI routes, indexed by literal prefix."""

    def add_api(self, *args: Any, **kwargs: Any) -> None:
        super().add_api(*args, **kwargs)
        _index_mounted_routers(self.router)


def middlewares(*, validate_responses: bool) -> list[Any]:
    """Connexion's default middleware list, routing indexed, response validation only if on."""
    chosen = []
    for middleware in ConnexionMiddleware.default_middlewares:
        if middleware is RoutingMiddleware:
            chosen.append(IndexedRoutingMiddleware)
        elif middleware is SwaggerUIMiddleware:
            chosen.append(IndexedSwaggerUIMiddleware)
        elif middleware is not ResponseValidationMiddleware or validate_responses:
            chosen.append(middleware)
    return chosen


class RecoupApp(AsyncApp):
    """``AsyncApp`` whose operations are decorated once (see the module's docstring)."""

    def __init__(self, import_name: str, **kwargs: Any) -> None:
        # What AsyncApp.__init__ does, with the app's operation class replaced.
        self._middleware_app = _ASGIApp()
        AbstractApp.__init__(self, import_name, **kwargs)
