"""Structured JSON logs with a correlation id that follows the work from request to task."""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
import uuid
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
request_id_var: ContextVar[str | None] = ContextVar("opsdeck_request_id", default=None)

if TYPE_CHECKING:
    from opsdeck.settings import Settings


def new_request_id() -> str:
    return uuid.uuid4().hex


def accept_request_id(value: str | None) -> str:
    """Use the caller's id when it is a sane token; anything else (log injection) is replaced."""
    if value and _REQUEST_ID_PATTERN.match(value):
        return value
    return new_request_id()


def bind_request_id(request_id: str) -> None:
    request_id_var.set(request_id)
    structlog.contextvars.bind_contextvars(request_id=request_id)


def clear_request_id() -> None:
    request_id_var.set(None)
    structlog.contextvars.unbind_contextvars("request_id")


def current_request_id() -> str | None:
    return request_id_var.get()


def configure_logging(
    *,
    level: str = "INFO",
    fmt: str = "json",
    log_file: Path | None = None,
    retention_days: int = 14,
) -> None:
    """Route structlog and the standard library (uvicorn, celery, sqlalchemy) through one
    formatter, to stdout and, when `log_file` is given, to a file rotated at midnight UTC."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.TimedRotatingFileHandler(
                log_file, when="midnight", backupCount=retention_days, utc=True, encoding="utf-8"
            )
        )
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_opsdeck", False):
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        handler._opsdeck = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # Our access log line carries the request id; uvicorn's own duplicates it without one.
    logging.getLogger("uvicorn.access").disabled = True
    # One line per task: our task_finished (task, id, request id, state, duration). Celery's
    # own "received" and "succeeded" lines say the same without the correlation id, and at
    # forty images a second would be most of a worker's log. Its errors still come through,
    # and at DEBUG everything does.
    per_task = logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING
    for name in ("celery.app.trace", "celery.worker.strategy"):
        logging.getLogger(name).setLevel(per_task)

    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def configure_logging_for(settings: Settings) -> None:
    """configure_logging with the settings' level, format, file and retention."""
    configure_logging(
        level=settings.log_level,
        fmt=settings.log_format,
        log_file=settings.log_file,
        retention_days=settings.log_retention_days,
    )
