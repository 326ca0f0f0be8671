"""create_app(): the FastAPI application with every module's router, middleware and handlers."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from opsdeck import __version__
from opsdeck.core.control_chars import ControlCharacterMiddleware, refuse_controls_in_multipart
from opsdeck.core.db import ensure_at_head, make_engine, make_sessionmaker
from opsdeck.core.errors import install_error_handlers, json_error_responses
from opsdeck.core.health import router as health_router
from opsdeck.core.http import (
    API_PREFIX,
    BodySizeLimitMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
    ServerErrorsUnsharedMiddleware,
)
from opsdeck.core.jobs import Relay
from opsdeck.core.queue import configure_celery
from opsdeck.core.routing import prefilter_routes
from opsdeck.core.security import Passwords
from opsdeck.core.sockets import SocketContext, SocketHub, asgi_app, build_socket_server
from opsdeck.core.spa import default_dist_dir, mount_spa
from opsdeck.modules import MODULES, task_modules
from opsdeck.settings import Settings, get_settings

DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>OpsDeck API</title>
<link rel="stylesheet" href="/api/docs/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/api/docs/static/swagger-ui-bundle.js"></script>
<script src="/api/docs/init.js"></script></body></html>"""
DOCS_INIT_JS = (
    "window.ui = SwaggerUIBundle({url: '/api/v1/openapi.json', dom_id: '#swagger-ui', "
    "deepLinking: true, withCredentials: true});"
)


def _operation_id(route: APIRoute) -> str:
    # Routes name themselves "<tag>-<name>"; the generated front-end client relies on it.
    return route.name


def serve_app() -> Any:
    """The factory `opsdeck web` hands to uvicorn: the FastAPI app inside the Socket.IO server
    (`/socket.io/` to the namespaces of every module, everything else to the app). With
    `--workers N` uvicorn starts fresh processes that import this and nothing else, so logging
    is configured here too."""
    from opsdeck.core.observability import configure_logging_for

    settings = get_settings()
    configure_logging_for(settings)
    served = with_sockets(create_app(settings))
    # Everything built so far (modules, routes, schemas, the app) lives as long as the process:
    # out of the cyclic collector's way, a full collection no longer walks it. Measured on a
    # 1,000-row CSV POST, embedded: p95 253 -> 104 ms, /health's worst 209 -> 14 ms meanwhile.
    gc.collect()
    gc.freeze()
    return served


def with_sockets(app: FastAPI) -> Any:
    """The ASGI application serving `app` and its Socket.IO server (`app.state.sockets`)."""
    hub: SocketHub = app.state.sockets
    return asgi_app(hub.server, app)


def create_app(settings: Settings | None = None, *, check_migrations: bool = True) -> FastAPI:
    settings = (settings or get_settings()).prepare()
    configure_celery(settings, task_modules())
    engine = make_engine(settings.database_url_resolved, pool_size=settings.database_pool_size)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if check_migrations:
            ensure_at_head(engine)
        # Sync routes emit to Socket.IO clients through the loop the server runs on.
        hub.bind(asyncio.get_running_loop())
        # Publishes the jobs whose broker was unreachable when their transaction committed.
        relay = Relay(engine)
        relay.start()
        try:
            yield
        finally:
            hub.close()
            relay.stop()
            engine.dispose()

    app = FastAPI(
        title="OpsDeck",
        version=__version__,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
        dependencies=[Depends(refuse_controls_in_multipart)],
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.passwords = Passwords(
        time_cost=settings.password_hash_time_cost,
        memory_kib=settings.password_hash_memory_kib,
        parallelism=settings.password_hash_parallelism,
    )

    hub = SocketHub(build_socket_server(settings))
    app.state.sockets = hub
    context = SocketContext(settings=settings, sessionmaker=app.state.sessionmaker, hub=hub)
    for module in MODULES:
        for namespace in module.socket_namespaces(context):
            hub.server.register_namespace(namespace)

    install_error_handlers(app)
    app.include_router(health_router)
    for module in MODULES:
        for router in module.routers():
            # Any route may find the database not answering (core.errors: 503 with Retry-After).
            app.include_router(router, responses=json_error_responses(503))
    _mount_docs(app)
    mount_spa(app, settings.frontend_dist or default_dist_dir())

    # Added innermost first: the request-context middleware wraps everything, so even a 413
    # or a CORS refusal carries a request id, security headers and a metric.
    body_limits = {
        path: limit for module in MODULES for path, limit in module.body_limits(settings).items()
    }
    app.add_middleware(ControlCharacterMiddleware)  # reads bodies the limit below has bounded
    app.add_middleware(
        BodySizeLimitMiddleware, default_limit=settings.max_request_bytes, limits=body_limits
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-CSRF-Token", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After", "Location"],
        )
        app.add_middleware(ServerErrorsUnsharedMiddleware)  # no CORS headers on a 500
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestContextMiddleware)
    # Last: the routes are complete (core/routing.py).
    prefilter_routes(app)
    return app


def _mount_docs(app: FastAPI) -> None:
    app.mount("/api/docs/static", StaticFiles(directory=str(swagger_ui_path)), name="docs-static")

    @app.get("/api/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(DOCS_HTML)

    @app.get("/api/docs/init.js", include_in_schema=False)
    async def docs_init() -> PlainTextResponse:
        return PlainTextResponse(DOCS_INIT_JS, media_type="text/javascript")
