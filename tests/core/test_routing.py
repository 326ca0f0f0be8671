"""core/routing.py: the path pre-check of each included router answers as FastAPI's own
matching does, for every route of the application, and spares the routers a path cannot reach."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import _IncludedRouter
from starlette.routing import BaseRoute, Match

from opsdeck.app import create_app
from opsdeck.core.routing import prefilter_routes
from opsdeck.settings import Settings

METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")


def _scope(app: FastAPI, method: str, path: str, kind: str = "http") -> dict[str, Any]:
    return {
        "type": kind,
        "method": method,
        "path": path,
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "app": app,
    }


def _answer(route: BaseRoute, matches: Any, scope: dict[str, Any]) -> tuple[Match, Any]:
    match, child = matches(scope)
    return match, child.get("endpoint")


def _templates(routes: Any) -> list[str]:
    found = []
    for route in routes:
        if isinstance(route, _IncludedRouter):
            found += _templates(route.effective_candidates())
        elif getattr(route, "starlette_route", None) is not None:
            found.append(route.starlette_route.path)
        elif getattr(route, "path", None):
            found.append(route.path)
    return found


def _sample_paths(app: FastAPI) -> set[str]:
    """A path for each route of the app (parameters filled in), and some no route has."""
    paths = {"/", "/nowhere", "/api/v1/nowhere", "/api/v1/incidents/1/nowhere", "/api/v1/"}
    for template in _templates(app.router.routes):
        path = re.sub(r"\{[^}:]+:path\}", "a/b.png", template)
        path = re.sub(r"\{[^}]+\}", "1", path)
        paths |= {path, path + "/", path + "/extra"}
    return paths


def test_the_pre_check_answers_as_fastapi_does_for_every_route(base_settings: Settings) -> None:
    app = create_app(base_settings, check_migrations=False)
    included = [r for r in app.router.routes if isinstance(r, _IncludedRouter)]
    checked = [r for r in included if "matches" in vars(r)]
    # Every module's routers are pre-checked (none holds a route without a path pattern).
    assert checked == included
    assert len(checked) >= 10
    paths = _sample_paths(app)
    assert len(paths) > 100
    spared = 0
    for path in sorted(paths):
        for method in METHODS:
            for route in checked:
                scope = _scope(app, method, path)
                expected = _answer(route, type(route).matches.__get__(route), dict(scope))
                assert _answer(route, route.matches, dict(scope)) == expected, (method, path)
                spared += expected[0] is Match.NONE
    assert spared > 0


def test_a_websocket_path_reaches_its_route(base_settings: Settings) -> None:
    app = create_app(base_settings, check_migrations=False)
    for route in app.router.routes:
        if "matches" in vars(route):
            for path in ("/socket.io/", "/api/v1/nowhere"):
                scope = _scope(app, "GET", path, kind="websocket")
                original = type(route).matches.__get__(route)
                assert _answer(route, route.matches, dict(scope)) == _answer(
                    route, original, dict(scope)
                )


def test_an_application_is_pre_checked_once() -> None:
    app = FastAPI()
    router = APIRouter(prefix="/things")

    @router.get("/{thing_id}")
    def thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    app.include_router(router)
    assert prefilter_routes(app) == 1
    with pytest.raises(RuntimeError):
        prefilter_routes(app)


def test_served_routes_still_answer(base_settings: Settings) -> None:
    from fastapi.testclient import TestClient

    app = FastAPI()
    router = APIRouter(prefix="/things")

    @router.get("/{thing_id}")
    def thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    @router.post("/{thing_id}")
    def poke(thing_id: int) -> dict[str, int]:
        return {"poked": thing_id}

    other = APIRouter(prefix="/others")

    @other.get("")
    def others() -> list[int]:
        return []

    app.include_router(other)
    app.include_router(router)
    assert prefilter_routes(app) == 2
    client = TestClient(app)
    assert client.get("/things/7").json() == {"id": 7}
    assert client.post("/things/7").json() == {"poked": 7}
    assert client.put("/things/7").status_code == 405
    assert client.get("/others").json() == []
    assert client.get("/nothing").status_code == 404
