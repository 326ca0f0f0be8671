"""Liveness, readiness and metrics endpoints."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import text

from opsdeck.core.metrics import render_metrics
from opsdeck.core.queue import check_broker, queue_depths
from opsdeck.core.redis import redis_client
from opsdeck.settings import Settings

log = structlog.get_logger("opsdeck.health")
router = APIRouter(tags=["health"])
READY_TIMEOUT_SECONDS = 2.0


@router.get("/health", operation_id="health-live", summary="Liveness: the process answers")
async def health() -> dict[str, str]:
    return {"status": "ok"}


def _check_database(request: Request) -> None:
    with request.app.state.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _check_storage(settings: Settings) -> None:
    probe = settings.media_dir / f".ready-{uuid.uuid4().hex}"
    probe.write_bytes(b"ok")
    probe.unlink()


def _check_broker(settings: Settings) -> None:
    if settings.embedded:
        check_broker(settings)
    else:
        redis_client(settings.broker_url, timeout=READY_TIMEOUT_SECONDS).ping()


def _readiness(request: Request) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    probes: list[tuple[str, Callable[[], None]]] = [
        ("database", lambda: _check_database(request)),
        ("broker", lambda: _check_broker(settings)),
        ("storage", lambda: _check_storage(settings)),
    ]
    checks: dict[str, str] = {}
    for name, check in probes:
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:
            # Anyone may ask /ready: the answer names the dependency and its state, never the
            # driver's text (which says where the database or broker is). That goes to the log.
            checks[name] = "error"
            log.warning(
                "ready_check_failed", check=name, exc_type=type(exc).__name__, error=str(exc)[:500]
            )
    return checks


@router.get(
    "/ready",
    operation_id="health-ready",
    summary="Readiness: database, broker and storage answer",
    # `failing` names what is down; why (the driver's error) goes to the log only.
    responses={503: {"description": "A dependency is down; `failing` names it."}},
)
async def ready(request: Request) -> JSONResponse:
    checks = await run_in_threadpool(_readiness, request)
    failing = [name for name, result in checks.items() if result != "ok"]
    body = {"status": "unavailable" if failing else "ok", "checks": checks, "failing": failing}
    return JSONResponse(body, status_code=503 if failing else 200)


@router.get("/metrics", operation_id="health-metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    payload, content_type = await run_in_threadpool(render_metrics, lambda: queue_depths(settings))
    return Response(payload, media_type=content_type)
