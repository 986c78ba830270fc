"""Connexion's ``AsyncApp``, with the per-request work that depends only on the operation done once.

Connexion 3.3 rebuilds, on every request, things that never change for an operation: the chain of
decorators around the handler (which inspects the handler's signature), the URI parser of the
operation's parameters, the snake_case form of each parameter name (three regular expressions a
name), the request validators (two URI parsers, the parameter validator, the media type table,
the body validator), whether each security function takes ``request``/``required_scopes``
keywords (one ``inspect.signature`` per check), and, from the operation's definition, which
arguments the handler gets and how its answer becomes a response. Here each is built once and
reused, through Connexion's own extension points: the app's operation class, its decorator, the
parameter decorator's name sanitizer, the middleware list and the ``security_map`` handlers.
What a request sees is unchanged (tests/server/test_binding.py compares both ways on every kind
of request); only the repeated building is gone (docs/performance.md). Routers try only the
routes that can match (:class:`RouteIndex`), and answers are written by :class:`FastJsonifier`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from connexion import AsyncApp
from connexion.apps.abstract import AbstractApp
from connexion.apps.asynchronous import AsyncApi, AsyncASGIApp, AsyncOperation
from connexion.context import _context, _operation, _receive, _scope
from connexion.context import receive as current_receive
from connexion.context import scope as current_scope
from connexion.decorators import StarletteDecorator
from connexion.decorators.parameter import (
    CONTEXT_NAME,
    AsyncParameterDecorator,
    _get_body_argument_json,
    pythonic,
    sanitized,
    unwrap_decorators,
)
from connexion.decorators.response import AsyncResponseDecorator
from connexion.http_facts import FORM_CONTENT_TYPES
from connexion.jsonifier import Jsonifier
from connexion.lifecycle import ConnexionResponse
from connexion.middleware.main import ConnexionMiddleware
from connexion.middleware.request_validation import (
    RequestValidationAPI,
    RequestValidationMiddleware,
    RequestValidationOperation,
)
from connexion.middleware.response_validation import ResponseValidationMiddleware
from connexion.middleware.routing import RoutingMiddleware
from connexion.middleware.swagger_ui import SwaggerUIMiddleware
from connexion.security import ApiKeySecurityHandler, BearerSecurityHandler
from connexion.utils import (
    inspect_function_arguments,
    is_json_mimetype,
    is_nullable,
    split_content_type,
)
from python_multipart.multipart import parse_options_header
from starlette._utils import get_route_path
from starlette.convertors import FloatConvertor, IntegerConvertor, StringConvertor, UUIDConvertor
from starlette.requests import Request
from starlette.routing import BaseRoute, Match, Mount, Route, Router
from starlette.types import Receive, Scope, Send

from server.validation import PARSED_BODY, only_a_string

# The spec's parameter names are few and fixed; a request's unknown ones are bounded per request.
_cached_pythonic = functools.lru_cache(maxsize=1024)(pythonic)
_cached_sanitized = functools.lru_cache(maxsize=1024)(sanitized)


class _ParameterDecorator(AsyncParameterDecorator):
    """Connexion's parameter decorator whose name conversion is memoized (a pure function)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sanitize_fn = _cached_pythonic if kwargs.get("pythonic_params") else _cached_sanitized


class _Decorator(StarletteDecorator):
    """Connexion's Starlette decorator, decorating the handler once instead of per request.

    Operations of the common shape (see :class:`_Binding`) also bind arguments and build the
    response without the request object and the generic rules: same arguments, same response.
    """

    @property
    def _parameter_decorator_cls(self) -> type[AsyncParameterDecorator]:
        return _ParameterDecorator

    def __call__(self, function: Callable[..., Any]) -> Callable[..., Any]:
        decorated = self.decorate(function)
        # The wrapper serves one operation (each _Operation decorates its own): its URI parser
        # and binding, built at the operation's first request, serve every later one.
        parser: Any = None
        binding: _Binding | None = None

        @functools.wraps(function)
        async def wrapper(*_args: Any, **_kwargs: Any) -> Any:
            nonlocal parser, binding
            if binding is None:
                binding = _Binding.of(function, self)
            if binding.applies:
                kwargs = await binding.arguments(_scope.get(), _receive.get())
                if kwargs is not None:
                    return binding.response(await function(**kwargs))
            if parser is None:
                parser = self.uri_parser
            request = self.framework.get_request(
                uri_parser=parser, scope=current_scope, receive=current_receive
            )
            return await decorated(request)

        return wrapper


_FORM_MIMETYPES = frozenset(FORM_CONTENT_TYPES)


def extract_content_type(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The request's ``content-type``, as ``connexion.utils.extract_content_type`` finds it.

    Connexion's evaluates the typing subscriptions of a local annotation on every call, a few
    microseconds twice a request; ASGI headers need none of its generality.
    """
    for name, value in headers:
        if name.lower() == b"content-type":
            return value.decode("latin-1")
    return None


def _not_plain_json(value: Any) -> Any:
    raise TypeError


_PLAIN_JSON_ONLY = (
    orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


class FastJsonifier(Jsonifier):
    """Connexion's jsonifier, writing plain JSON data (dicts, lists, strings, numbers, booleans,
    None) with orjson: a list of ten chats takes 3 µs instead of 30.

    Anything else (a datetime, a dataclass, an integer beyond 64 bits, a non-string key, a lone
    surrogate) and any call with options goes to Connexion's own encoder, unchanged; a UUID is
    written as its string by both. The text differs only in form: no spaces after separators,
    non-ASCII characters as UTF-8 rather than escapes, and a non-finite float as ``null`` (the
    standard library writes ``NaN``, which is not JSON). Parsing stays with the standard library.
    """

    def dumps(self, data: Any, **kwargs: Any) -> str:
        if not kwargs:
            try:
                encoded = orjson.dumps(data, default=_not_plain_json, option=_PLAIN_JSON_ONLY)
            except TypeError:
                pass
            else:
                return encoded.decode() + "\n"
        return str(super().dumps(data, **kwargs))


def _mimetype(content_type: str) -> str:
    mimetype, _ = parse_options_header(content_type)
    return str(mimetype.decode())


class _Binding:
    """Connexion's argument binding and response building, resolved once for one operation.

    It applies to operations whose path parameters are plain strings (``type: string``, no
    other constraint), with no query parameters, no form body, and a coroutine handler: every
    operation of this API but the few with query parameters. For those, what Connexion's
    parameter decorator decides per request from the operation (which parameters exist, their
    conversion, the body's argument name, which context values the handler accepts) is decided
    here once; a request it cannot decide the same way (a form or non-JSON body) and every
    response other than a JSON object or array take Connexion's own path. The arguments and the
    response are those Connexion builds (``connexion.decorators.parameter.get_arguments``,
    ``connexion.decorators.response``); tests/server/test_binding.py compares the two.
    """

    def __init__(self, operation: Any, function: Callable[..., Any], decorator: _Decorator):
        arguments, has_kwargs = inspect_function_arguments(unwrap_decorators(function))
        self.operation = operation
        self.accepted = frozenset(arguments)
        self.has_kwargs = bool(has_kwargs)
        self.context_argument = CONTEXT_NAME in self.accepted
        self.sanitize = _cached_pythonic if decorator.pythonic_params else _cached_sanitized
        body_name = self.sanitize(operation.body_name(None))
        self.body_name = (
            body_name
            if operation.is_request_body_defined and (body_name in self.accepted or self.has_kwargs)
            else None
        )
        self.jsonifier = decorator.jsonifier
        self.framework = decorator.framework
        self.generic_response = AsyncResponseDecorator(
            framework=decorator.framework, jsonifier=decorator.jsonifier
        )
        self.content_type = self._json_content_type(operation)
        self.applies = (
            inspect.iscoroutinefunction(function)
            and operation.method.upper() != "TRACE"
            and all(
                parameter["in"] == "path" and only_a_string(parameter.get("schema", parameter))
                for parameter in operation.parameters
                if parameter["in"] in ("path", "query")
            )
        )

    @classmethod
    def of(cls, function: Callable[..., Any], decorator: _Decorator) -> _Binding:
        return cls(_operation.get(), function, decorator)

    @staticmethod
    def _json_content_type(operation: Any) -> str | None:
        """The content type Connexion gives a dict or list answer, when it serializes to JSON."""
        produces = list(set(operation.produces))
        if len(produces) > 1:
            return None  # Connexion refuses to choose: its own path raises
        content_type = produces[0] if produces else "application/json"
        mime_type, _ = split_content_type(content_type)
        return content_type if is_json_mimetype(mime_type) else None

    async def arguments(self, scope: Scope, receive: Receive) -> dict[str, Any] | None:
        """The handler's keyword arguments, or None when this request needs Connexion's path."""
        content_type = extract_content_type(scope["headers"])
        mimetype = None if content_type is None else _mimetype(content_type)
        if mimetype in _FORM_MIMETYPES:
            return None  # form fields and files can become arguments
        sanitize = self.sanitize
        path_params = scope.get("path_params", {})
        kwargs = {sanitize(name): value for name, value in path_params.items()}
        if self.body_name is not None:
            content_type = content_type or "application/octet-stream"
            if not is_json_mimetype(content_type):
                return None
            extensions = scope.get("extensions", {})
            if PARSED_BODY in extensions:
                body = extensions.pop(PARSED_BODY)  # parsed once, by the body validator
            else:
                try:
                    body = await Request(scope, receive).json()
                except ValueError:
                    body = None
            kwargs[self.body_name] = _get_body_argument_json(
                body, operation=self.operation, content_type=mimetype
            )
        context = _context.get()
        for key, value in context.items():
            if self.has_kwargs or key in self.accepted:
                kwargs[key] = value
        if self.context_argument:
            kwargs[CONTEXT_NAME] = context
        return kwargs

    def response(self, answer: Any) -> Any:
        """The framework response Connexion's response decorator makes of ``answer``."""
        if type(answer) in (dict, list) and self.content_type is not None:
            return self.framework.build_response(
                self.jsonifier.dumps(answer),
                content_type=self.content_type,
                status_code=200,
                headers={"Content-Type": self.content_type},
            )
        if self.framework.is_framework_response(answer):
            return answer
        if isinstance(answer, ConnexionResponse):
            return self.framework.connexion_to_framework_response(answer)
        return self.generic_response.build_framework_response(answer)


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


# Starlette's convertors whose values cannot hold a "/" (a custom one might).
_SEGMENT_CONVERTORS = (StringConvertor, IntegerConvertor, FloatConvertor, UUIDConvertor)


def _literal_prefix(route: BaseRoute) -> str:
    """What every path the route matches starts with ("" when it cannot say)."""
    if isinstance(route, Route):
        return route.path_format.split("{", 1)[0]
    return ""


def _slashes(route: BaseRoute) -> int | None:
    """How many "/" every path the route matches has (None when it cannot say)."""
    if isinstance(route, Route) and all(
        type(convertor) in _SEGMENT_CONVERTORS for convertor in route.param_convertors.values()
    ):
        return route.path_format.count("/")
    return None


class RouteIndex:
    """A router's routes that can match a path, in the router's order.

    A route whose literal prefix does not start the path cannot match it, nor can one whose
    parameters hold no "/" when the path has another number of "/" than the route's template.
    Skipping those changes nothing: whenever some route does match, Starlette's own algorithm
    (the first full match, else the first partial one) decides among the rest.
    """

    def __init__(self, router: Router) -> None:
        self.router = router
        self._indexed: list[BaseRoute] = []
        self._by_slashes: dict[int, list[tuple[str, BaseRoute]]] = {}
        self._any_slashes: list[tuple[str, BaseRoute]] = []

    def candidates(self, path: str) -> list[BaseRoute]:
        routes = self.router.routes
        if len(self._indexed) != len(routes):  # routes added after indexing: index again
            self._index(routes)
        table = self._by_slashes.get(path.count("/"), self._any_slashes)
        return [route for prefix, route in table if path.startswith(prefix)]

    def _index(self, routes: list[BaseRoute]) -> None:
        self._indexed = list(routes)
        entries = [(_slashes(route), _literal_prefix(route), route) for route in routes]
        self._any_slashes = [(prefix, route) for count, prefix, route in entries if count is None]
        self._by_slashes = {
            wanted: [(prefix, route) for count, prefix, route in entries if count in (None, wanted)]
            for wanted in {count for count, _, _ in entries if count is not None}
        }

    def best_match(self, scope: Scope) -> tuple[BaseRoute, Scope] | None:
        return first_match(self.candidates(get_route_path(scope)), scope)


def first_match(routes: Sequence[BaseRoute], scope: Scope) -> tuple[BaseRoute, Scope] | None:
    """Starlette's Router choice among ``routes``: the first full match, else the first partial."""
    partial: tuple[BaseRoute, Scope] | None = None
    for route in routes:
        match, child_scope = route.matches(scope)
        if match is Match.FULL:
            return route, child_scope
        if match is Match.PARTIAL and partial is None:
            partial = (route, child_scope)
    return partial


def _index_routes(router: Router) -> None:
    """Make ``router`` try only the routes that can match the path (:class:`RouteIndex`).

    Starlette tries every route's regular expression in turn (and, when none matches, every route
    again with a slash added or removed, for a redirect): the operation's route was found after
    two dozen misses, and the Swagger UI's router, in front of every request, missed all of its
    routes twice.
    """
    fallback = router.middleware_stack
    best_match = RouteIndex(router).best_match

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


# Bounds the per-operation caches keyed by what clients send (content types).
_CACHED_CONTENT_TYPES = 32


class _ValidationOperation(RequestValidationOperation):
    """Connexion's request validation of one operation, its validators built once.

    Connexion 3.3 builds, on every request, two URI parsers, the parameter validator, the media
    type table of the operation's ``consumes`` and the body validator, all from the operation
    alone (and the request's content type). They hold no per-request state, so they are built at
    the operation's first request (validators per content type, a bounded number of them) and
    reused. The checks, their order and their errors are Connexion's own.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parameter_validator: Any = None
        self._body_validators: dict[tuple[str, str], Any] = {}

    def _body_validator(self, mime_type: str, encoding: str) -> Any:
        """Connexion's body validator for this content type (None: nothing to validate)."""
        operation = self._operation
        schema = operation.body_schema(mime_type)
        if not schema:
            return None
        try:
            validator_class = self._validator_map["body"][mime_type]
        except KeyError:
            return None  # no validator registered for this content type: Connexion skips too
        return validator_class(
            schema=schema,
            required=operation.request_body.get("required", False),
            nullable=is_nullable(operation.body_definition(mime_type)),
            encoding=encoding,
            strict_validation=self.strict_validation,
            uri_parser=operation.uri_parser_class(
                operation.parameters, operation.body_definition()
            ),
        )

    def extract_content_type(self, headers: list[tuple[bytes, bytes]]) -> tuple[str, str]:
        """Connexion's, with the header found by this module's :func:`extract_content_type`."""
        mime_type, encoding = split_content_type(extract_content_type(headers))
        if mime_type is None:
            # Content-type header is not required. Take a best guess (as Connexion does).
            consumes = self._operation.consumes
            mime_type = consumes[0] if consumes else "application/octet-stream"
        return mime_type, encoding or "utf-8"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        operation = self._operation
        if self._parameter_validator is None:
            self._parameter_validator = self._validator_map["parameter"](
                operation.parameters,
                uri_parser=operation._uri_parser_class(
                    operation.parameters, operation.body_definition()
                ),
                strict_validation=self.strict_validation,
                security_query_params=self.security_query_params,
            )
        self._parameter_validator.validate(scope)

        mime_type, encoding = self.extract_content_type(scope["headers"])
        key = (mime_type, encoding)
        try:
            validator = self._body_validators[key]
        except KeyError:
            self.validate_mime_type(mime_type)  # raises for a type the operation refuses
            validator = self._body_validator(mime_type, encoding)
            if len(self._body_validators) < _CACHED_CONTENT_TYPES:
                self._body_validators[key] = validator
        if validator is not None:
            receive, scope = await validator.wrap_receive(receive, scope=scope)
        await self.next_app(scope, receive, send)


class _ValidationApi(RequestValidationAPI):
    def make_operation(self, operation: Any) -> RequestValidationOperation:
        return _ValidationOperation(
            self.next_app,
            operation=operation,
            strict_validation=self.strict_validation,
            validator_map=self.validator_map,
        )


class CachedRequestValidationMiddleware(RequestValidationMiddleware):
    """Connexion's request validation, each operation's validators built once."""

    api_cls = _ValidationApi


def middlewares(*, validate_responses: bool, before_validation: Sequence[Any] = ()) -> list[Any]:
    """Connexion's default middleware list: routing indexed, validators cached, response
    validation only if on, and ``before_validation`` just before the request validation.

    Connexion's ``MiddlewarePosition.BEFORE_VALIDATION`` looks for its own validation class, so
    what goes there is placed here instead.
    """
    chosen = []
    for middleware in ConnexionMiddleware.default_middlewares:
        if middleware is RoutingMiddleware:
            chosen.append(IndexedRoutingMiddleware)
        elif middleware is RequestValidationMiddleware:
            chosen.extend(before_validation)
            chosen.append(CachedRequestValidationMiddleware)
        elif middleware is SwaggerUIMiddleware:
            chosen.append(IndexedSwaggerUIMiddleware)
        elif middleware is not ResponseValidationMiddleware or validate_responses:
            chosen.append(middleware)
    return chosen


class RecoupApp(AsyncApp):
    """``AsyncApp`` whose operations are decorated once (see the module's docstring)."""

    def __init__(self, import_name: str, **kwargs: Any) -> None:
        kwargs.setdefault("jsonifier", FastJsonifier())
        # What AsyncApp.__init__ does, with the app's operation class replaced.
        self._middleware_app = _ASGIApp()
        AbstractApp.__init__(self, import_name, **kwargs)
