"""Serves the built web application (`frontend/dist`) beside the API.

Hashed bundles under `/assets/` are cached for a year; `index.html` is revalidated on every
load so a deploy is picked up at once. Client-side routes fall back to `index.html`, but only
for GET/HEAD requests that no route answered and that are outside the server's own prefixes:
an unknown `/api/...` path keeps its JSON 404.

The fallback hooks the 404 handler instead of adding a catch-all route, so routers included
after `mount_spa` still win and a wrong method on an API path is still a 405.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from html import escape
from pathlib import Path
from typing import cast

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.types import Scope

from opsdeck.core.errors import error_response

ASSETS_CACHE_CONTROL = "public, max-age=31536000, immutable"
INDEX_CACHE_CONTROL = "no-cache"
# Paths the server owns: never answered with the web app.
SERVER_PREFIXES = ("/api", "/health", "/ready", "/metrics", "/socket.io", "/assets", "/media")

NOT_BUILT_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>OpsDeck</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto;
 padding: 0 1rem">
<h1>OpsDeck</h1>
<p>The API is running, but the web application has not been built yet
(no <code>{dist}</code>).</p>
<p>Build it with <code>make run</code>, or by hand:
<code>npm --prefix frontend ci &amp;&amp; npm --prefix frontend run build</code>,
then reload this page.</p>
<p>The API documentation is at <a href="/api/docs">/api/docs</a>.</p>
</body></html>"""

ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


def default_dist_dir() -> Path:
    """`frontend/dist` of a source checkout (src/opsdeck/core/spa.py -> repository root)."""
    return Path(__file__).resolve().parents[3] / "frontend" / "dist"


def is_server_path(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in SERVER_PREFIXES)


class _ImmutableAssets(StaticFiles):
    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        if response.status_code in (200, 304):
            response.headers["Cache-Control"] = ASSETS_CACHE_CONTROL
        return response


def _file_in(root: Path, relative: str) -> Path | None:
    """The regular file at `relative` under `root`, or None (also for `..` escapes)."""
    if not relative or "\x00" in relative:
        return None
    candidate = (root / relative).resolve()
    if candidate != root and root in candidate.parents and candidate.is_file():
        return candidate
    return None


def mount_spa(app: FastAPI, dist_dir: Path) -> None:
    """Serve the built front end in `dist_dir` at `/`. Call after install_error_handlers()."""
    previous = app.exception_handlers.get(StarletteHTTPException)

    async def fallback_http_error(_request: Request, exc: Exception) -> Response:
        exc = cast(StarletteHTTPException, exc)  # registered for it only
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, "http_error", message, headers=headers)

    delegate: ExceptionHandler = previous or fallback_http_error  # type: ignore[assignment]
    root = dist_dir.resolve()
    index = root / "index.html"

    if not index.is_file():

        async def not_built(request: Request, exc: Exception) -> Response:
            if (
                isinstance(exc, StarletteHTTPException)
                and exc.status_code == 404
                and request.method in ("GET", "HEAD")
                and request.url.path == "/"
            ):
                return HTMLResponse(
                    NOT_BUILT_HTML.format(dist=escape(str(dist_dir))),
                    headers={"Cache-Control": INDEX_CACHE_CONTROL},
                )
            return await delegate(request, exc)

        app.add_exception_handler(StarletteHTTPException, not_built)
        return

    if (root / "assets").is_dir():
        app.mount("/assets", _ImmutableAssets(directory=root / "assets"), name="spa-assets")

    async def spa_fallback(request: Request, exc: Exception) -> Response:
        path = request.url.path
        if (
            not isinstance(exc, StarletteHTTPException)
            or exc.status_code != 404
            or request.method not in ("GET", "HEAD")
            or is_server_path(path)
        ):
            return await delegate(request, exc)
        static_file = _file_in(root, path.lstrip("/"))
        if static_file is not None and static_file != index:
            return FileResponse(static_file, headers={"Cache-Control": INDEX_CACHE_CONTROL})
        return FileResponse(
            index, media_type="text/html", headers={"Cache-Control": INDEX_CACHE_CONTROL}
        )

    app.add_exception_handler(StarletteHTTPException, spa_fallback)
