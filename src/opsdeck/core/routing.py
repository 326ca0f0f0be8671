"""A path pre-check in front of each included router, so a request is not tried against
every route of every module before it reaches its own.

FastAPI (0.16x) keeps each `include_router` as one entry of the application's routes and,
for every request, asks each entry in turn whether it matches; an entry answers by trying
each of its routes, with a few scope bookkeeping calls per route, and the entry that matches
does it once more to pick the route. With a hundred-odd routes before the incidents ones, that
was about 1 ms of CPU per request, before any work (bench/incidents_api.py's profile:
`fastapi.routing._match`, 15 calls and 76 route matches per request).

`prefilter_routes(app)` gives each included router one compiled regular expression, the
alternation of its routes' own path patterns: a path none of them can match is answered "no
match" by one `re.match` instead of by every route. A path one of them matches goes through
FastAPI's own matching, unchanged (methods, 405s, path parameters, route context). A router
holding anything whose path is not a regular expression (a Host route, front-end routes) is
left as it is. Call it once the application's routes are complete (routers added later are
not pre-checked; routes added to an already pre-checked router would be: so this refuses to
run twice)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import _IncludedRouter
from starlette._utils import get_route_path
from starlette.routing import Match, Mount, Route, WebSocketRoute, compile_path
from starlette.types import Scope

_PREFILTERED = "_opsdeck_prefiltered"
_NAMED_GROUP = re.compile(r"\(\?P<\w+>")


def _patterns(router: _IncludedRouter, prefix: str | None = None) -> list[str] | None:
    """The path patterns of every route `router` may match, or None when one of them has no
    path pattern (then the router is not pre-checked).

    Read from the router's own routes and its inclusion prefix, compiled as FastAPI compiles
    them (`compile_path(prefix + path)`), without asking the router for its effective routes:
    that builds every route's dependency tree and response models (about 1.2 s for the whole
    application on a 2-core machine), which FastAPI otherwise does lazily, only for the routers
    a request is tried against, and with the pre-check in place never for the others."""
    prefix = router.include_context.prefix if prefix is None else prefix
    if getattr(router.original_router, "_low_priority_routes", None):
        return None
    found: list[str] = []
    for route in router.original_router.routes:
        if isinstance(route, _IncludedRouter):
            nested = _patterns(route, prefix + route.include_context.prefix)
            if nested is None:
                return None
            found += nested
        elif isinstance(route, Mount):
            found.append(
                compile_path((prefix + route.path).rstrip("/") + "/{path:path}")[0].pattern
            )
        elif isinstance(route, (Route, WebSocketRoute)):  # APIRoute, APIWebSocketRoute too
            found.append(compile_path(prefix + route.path)[0].pattern)
        else:
            return None
    return found


def _prefiltered(
    matches: Callable[[Scope], tuple[Match, Scope]], pattern: re.Pattern[str]
) -> Callable[[Scope], tuple[Match, Scope]]:
    def prefiltered_matches(scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] in ("http", "websocket") and not pattern.match(get_route_path(scope)):
            return Match.NONE, {}
        return matches(scope)

    return prefiltered_matches


def prefilter_routes(app: FastAPI) -> int:
    """Pre-check the included routers of `app` (see the module's docstring); returns how many
    got a pre-check."""
    if getattr(app.router, _PREFILTERED, False):
        raise RuntimeError("the routes of this application are pre-checked already")
    setattr(app.router, _PREFILTERED, True)
    done = 0
    for route in app.router.routes:
        if not isinstance(route, _IncludedRouter):
            continue
        patterns = _patterns(route)
        if not patterns:
            continue
        # Each route's pattern is anchored (^...$); the alternation keeps them so. Their
        # parameters' named groups would clash: plain groups do here (the route's own pattern
        # reads the parameters).
        pattern = re.compile("|".join(f"(?:{_NAMED_GROUP.sub('(?:', p)})" for p in patterns))
        patched: Any = route
        patched.matches = _prefiltered(route.matches, pattern)
        done += 1
    return done
