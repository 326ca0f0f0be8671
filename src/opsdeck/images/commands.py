"""`opsdeck images ...`: batches from the command line, through the same pipeline as the API.
Heavy imports are inside the commands so `opsdeck --help` stays quick."""

from __future__ import annotations

import json
import os
import shutil
import subprocess  # nosec B404
import sys
import time
from pathlib import Path
from typing import Any

import click

from opsdeck.settings import Settings, get_settings

FINAL = ("completed", "completed_with_errors", "failed", "cancelled")


@click.group("images")
def images() -> None:
    """Image batches."""


@images.command("webhook-secret")
def webhook_secret() -> None:
    """Print the secret that signs webhook deliveries (X-OpsDeck-Signature)."""
    click.echo(get_settings().prepare().webhook_secret.get_secret_value())


def _sessionmaker(settings: Settings) -> Any:
    from opsdeck.core.db import make_engine, make_sessionmaker

    return make_sessionmaker(make_engine(settings.database_url_resolved))


def _summary(settings: Settings, factory: Any, request_id: str) -> dict[str, Any]:
    from opsdeck.images import service
    from opsdeck.images.models import ImageBatch
    from opsdeck.images.presenters import batch_summary

    with factory() as session:
        batch = session.get(ImageBatch, request_id) if len(request_id) <= 64 else None
        if batch is None:
            raise click.ClickException(f"no image batch {request_id!r}")
        counts = service.counts_for(session, [batch.id])[batch.id]
        return batch_summary(settings, batch, counts).model_dump(mode="json")


@images.command("status")
@click.argument("request_id")
def status(request_id: str) -> None:
    """Print a batch's status as JSON; exit 1 when it failed."""
    settings = get_settings()
    summary = _summary(settings, _sessionmaker(settings), request_id)
    click.echo(json.dumps(summary, indent=2))
    if summary["status"] == "failed":
        sys.exit(1)


def _operations(quality: int | None, fmt: str | None, max_size: str | None) -> str:
    ops: dict[str, Any] = {}
    if quality is not None:
        ops["quality"] = quality
    if fmt:
        ops["format"] = fmt
    if max_size:
        width, _, height = max_size.lower().partition("x")
        try:
            ops["max_width"], ops["max_height"] = int(width), int(height or width)
        except ValueError as exc:
            raise click.BadParameter("use WxH, e.g. 1024x768", param_hint="--max-size") from exc
    return json.dumps(ops)


@images.command("process")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--quality", type=click.IntRange(1, 100), default=None, help="Default 50.")
@click.option("--format", "fmt", type=click.Choice(["keep", "jpeg", "png", "webp", "avif"]))
@click.option("--max-size", default=None, help="Shrink to fit WxH, e.g. 1024x1024.")
@click.option(
    "--as",
    "username",
    default=None,
    help="Owner of the batch (default: the system actor, which cannot sign in).",
)
def process(
    csv_file: Path,
    out_dir: Path,
    quality: int | None,
    fmt: str | None,
    max_size: str | None,
    username: str | None,
) -> None:
    """Run a products CSV through the pipeline and write the outputs and output.csv to --out.

    Uses the configured broker's workers; in embedded mode it starts a worker for the run."""
    from opsdeck.core.errors import AppError

    settings = get_settings()
    factory = _sessionmaker(settings)
    try:
        request_id = _submit(
            settings, factory, csv_file, _operations(quality, fmt, max_size), username
        )
    except AppError as exc:
        lines = [exc.message] + [f"  - {d.get('message', d)}" for d in exc.details]
        raise click.ClickException("\n".join(lines)) from exc
    click.echo(f"request id: {request_id}", err=True)
    worker = _embedded_worker(settings)
    try:
        summary = _wait(settings, factory, request_id)
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
    written = _write_outputs(settings, factory, request_id, out_dir)
    click.echo(
        f"{summary['status']}: {summary['processed_images'] - summary['failed_images']} of "
        f"{summary['total_images']} images written to {out_dir} ({written} files), "
        f"{summary['failed_images']} failed; see {out_dir / 'output.csv'}"
    )
    if summary["status"] == "failed":
        sys.exit(1)


def _submit(
    settings: Settings, factory: Any, csv_file: Path, operations: str, username: str | None
) -> str:
    from opsdeck.accounts import service as accounts
    from opsdeck.audit import service as audit
    from opsdeck.core.queue import configure_celery
    from opsdeck.images import intake, service

    configure_celery(settings)  # to publish the batch's first job once it is committed
    request = intake.parse_batch_request(settings, None, operations)
    products, columns = intake.parse_csv(settings, csv_file.read_bytes())
    with factory() as session:
        # Run by whoever operates the machine, not by a person of the web app: by default the
        # batch is the system actor's (created on first use, so a fresh data directory needs
        # no account), and the audit log names it.
        owner = (
            accounts.get_active_user_by_username(session, username)
            if username
            else accounts.system_user(session, on_behalf_of="cli:images process")
        )
        if owner is None:
            raise click.ClickException(f"no active user {username!r}")
        batch = service.create_csv_batch(
            session,
            owner,
            columns=columns,
            products=products,
            operations=request.operations,
            webhook_url=None,
        )
        audit.record(
            session,
            "images.batch.created",
            actor=owner,
            target_type="image_batch",
            target_id=batch.id,
            details={"channel": "cli", "file": csv_file.name[:200]},
        )
        session.commit()  # its start_batch job is published once this commits
        return batch.id


def _embedded_worker(settings: Settings) -> subprocess.Popen[bytes] | None:
    if not settings.embedded:
        return None
    return subprocess.Popen(  # nosec B603 - our own interpreter and module
        [sys.executable, "-m", "opsdeck", "worker"],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait(settings: Settings, factory: Any, request_id: str) -> dict[str, Any]:
    summary = _summary(settings, factory, request_id)
    with click.progressbar(length=summary["total_images"], label="images", file=sys.stderr) as bar:
        done = 0
        while True:
            summary = _summary(settings, factory, request_id)
            bar.update(summary["processed_images"] - done)
            done = summary["processed_images"]
            if summary["status"] in FINAL:
                return summary
            time.sleep(0.5)


def _write_outputs(settings: Settings, factory: Any, request_id: str, out_dir: Path) -> int:
    from opsdeck.core.storage import media_store
    from opsdeck.images import service
    from opsdeck.images.formats import content_type_and_extension
    from opsdeck.images.models import ImageBatch
    from opsdeck.images.presenters import output_csv_lines

    out_dir.mkdir(parents=True, exist_ok=True)
    store = media_store(settings)
    written = 0
    with factory() as session:
        batch = session.get(ImageBatch, request_id)
        if batch is None:
            raise click.ClickException(f"no image batch {request_id!r}")
        for product, items in service.products_with_items(session, batch):
            for item in items:
                if item.status != "succeeded" or not item.output_key or not item.output_format:
                    continue
                extension = content_type_and_extension(item.output_format)[1]
                safe = "".join(
                    c if c.isalnum() or c in "-_" else "_" for c in product.serial_number
                )
                target = out_dir / f"{safe}-{item.position + 1}{extension}"
                shutil.copyfile(store.path(item.output_key), target)
                written += 1
        (out_dir / "output.csv").write_bytes(b"".join(output_csv_lines(session, settings, batch)))
    return written
