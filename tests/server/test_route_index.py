"""The routers' index picks the route Starlette would, for any path and method: the same choice
(``first_match``, Starlette's rule, whose outcomes tests/api/test_http.py pins: 404, 405,
redirects) over every route and over the index's candidates only."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.routing import Mount, Route, Router
from starlette.testclient import TestClient

from server.app import create_app
from server.connexion_app import RouteIndex, first_match


@pytest.fixture(scope="module")
def routers(tmp_path_factory: pytest.TempPathFactory) -> list[Router]:
    """The app's indexed routers: the Swagger UI's and the routing middleware's."""
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("RECOUP_DATA_DIR", str(tmp_path_factory.mktemp("data")))
    app = create_app()
    with TestClient(app) as client:
        client.get("/readyz")  # builds the middleware stack
    monkeypatch.undo()
    found = [
        route.app
        for middleware in app.middleware.middleware_stack
        if isinstance(getattr(middleware, "router", None), Router)
        for route in middleware.router.routes
        if isinstance(route, Mount) and isinstance(route.app, Router) and route.app.routes
    ]
    assert len(found) == 2 and all(len(router.routes) > 2 for router in found)
    return found


def _templates(routers: list[Router]) -> list[str]:
    routes = [route for router in routers for route in router.routes]
    return sorted({route.path_format for route in routes if isinstance(route, Route)})


segment = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)


@st.composite
def paths(draw: st.DrawFn, templates: list[str]) -> str:
    """A template with its parameters filled (some values with "/"), cut, extended or slashed."""
    parts = draw(st.sampled_from(templates)).split("/")
    filled = [draw(segment) if part.startswith("{") else part for part in parts]
    if draw(st.booleans()):
        filled = filled[: draw(st.integers(1, len(filled)))]
    filled += draw(st.lists(segment, max_size=2))
    path = "/".join(filled)
    return draw(st.sampled_from([path, path + "/", path.rstrip("/"), "/" + path]))


def test_the_index_chooses_as_starlette_does(routers: list[Router]) -> None:
    templates = _templates(routers)
    assert any("{" in template for template in templates)

    @settings(max_examples=600, deadline=None)
    @given(
        path=paths(templates),
        method=st.sampled_from(["GET", "POST", "PATCH", "DELETE", "PUT", "OPTIONS"]),
        root_path=st.sampled_from(["", "/api"]),
    )
    def chooses_alike(path: str, method: str, root_path: str) -> None:
        scope = {"type": "http", "method": method, "path": root_path + path, "root_path": root_path}
        for router in routers:
            expected = first_match(router.routes, scope)  # every route
            chosen = RouteIndex(router).best_match(scope)
            if expected is None:
                assert chosen is None, (path, method)
            else:
                assert chosen is not None and chosen[0] is expected[0], (path, method)
                assert chosen[1] == expected[1]

    chooses_alike()
