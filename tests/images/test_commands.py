"""`opsdeck images ...` run as a user would: a subprocess on a fresh embedded data directory."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from opsdeck.images.formats import sniff
from tests.conftest import STRONG_PASSWORD
from tests.images.servers import LocalServer


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSDECK_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        OPSDECK_DATA_DIR=str(data_dir),
        OPSDECK_LOG_LEVEL="WARNING",
        OPSDECK_FETCH_ALLOWED_NETWORKS="127.0.0.0/8",
    )
    return env


def _opsdeck(*args: str, env: dict[str, str], stdin: str | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "opsdeck", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_process_status_and_webhook_secret(
    tmp_path: Path, server: LocalServer, images: Any
) -> None:
    # A fresh data directory with no account at all: the batch is the system actor's.
    env = _env(tmp_path / "data")
    assert _opsdeck("db", "upgrade", env=env).returncode == 0

    server.serve("/a.jpg", images.jpeg_bytes(width=640, height=480))
    products = tmp_path / "products.csv"
    products.write_text(
        "S. No.,Product Name,Input Image Urls\n"
        f'1,Mug,"{server.url("/a.jpg")},{server.url("/missing.jpg")}"\n'
    )
    out = tmp_path / "out"
    result = _opsdeck(
        "images",
        "process",
        str(products),
        "--out",
        str(out),
        "--format",
        "webp",
        "--max-size",
        "320x320",
        env=env,
    )

    assert result.returncode == 0, result.stderr
    assert "completed_with_errors: 1 of 2 images written" in result.stdout
    written = out / "1-1.webp"
    assert sniff(written.read_bytes()) == "webp"
    table = list(csv.reader(io.StringIO((out / "output.csv").read_text("utf-8-sig"))))
    assert table[0][-2:] == ["Output Image Urls", "Errors"]
    assert table[1][3].endswith(",")  # the failed second image keeps its empty position
    assert table[1][4].startswith("2: ")

    request_id = result.stderr.split("request id: ", 1)[1].split()[0]
    shown = _opsdeck("images", "status", request_id, env=env)
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["status"] == "completed_with_errors"
    assert _opsdeck("images", "status", "nope", env=env).returncode == 1

    secret = _opsdeck("images", "webhook-secret", env=env)
    assert secret.stdout.strip() == (tmp_path / "data" / "webhook_secret").read_text().strip()

    owner, entries = _owner_and_audit(tmp_path / "data", request_id)
    assert owner == {
        "username": "system",
        "is_active": False,
        "role": "member",
        "can_sign_in": False,
    }
    assert entries == [
        (
            "user.created",
            "cli:images process",
            False,
            {"username": "system", "role": "member", "system": True},
        ),
        ("images.batch.created", "system", True, {"channel": "cli", "file": "products.csv"}),
    ]
    again = _opsdeck("images", "process", str(products), "--out", str(tmp_path / "o2"), env=env)
    assert again.returncode == 0, again.stderr  # the same system actor, not a second one
    assert [e[0] for e in _owner_and_audit(tmp_path / "data", request_id)[1]].count(
        "user.created"
    ) == 1

    taken = _opsdeck(
        "users",
        "create",
        "--username",
        "System",
        "--email",
        "s@example.com",
        "--password-stdin",
        env=env,
        stdin=STRONG_PASSWORD + "\n",
    )
    assert taken.returncode != 0
    assert "reserved" in taken.stderr


def _owner_and_audit(data_dir: Path, request_id: str) -> tuple[dict[str, Any], list[Any]]:
    """The batch owner's row and the audit entries, read from the run's SQLite database."""
    from opsdeck.accounts.models import User
    from opsdeck.audit.models import AuditEntry
    from opsdeck.core.security import Passwords
    from opsdeck.images.models import ImageBatch
    from opsdeck.settings import Settings

    engine = create_engine(Settings(data_dir=data_dir).database_url_resolved)
    try:
        with Session(engine) as session:
            batch = session.get_one(ImageBatch, request_id)
            user = session.get_one(User, batch.owner_id)
            passwords = Passwords(time_cost=2, memory_kib=19_456, parallelism=1)
            owner = {
                "username": user.username,
                "is_active": user.is_active,
                "role": user.role,
                "can_sign_in": passwords.verify(user.password_hash, ""),
            }
            entries = [
                (e.action, e.actor, e.actor_id == user.id, e.details)
                for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
            ]
    finally:
        engine.dispose()
    return owner, entries


def test_process_names_every_bad_row(tmp_path: Path) -> None:
    env = _env(tmp_path / "data")
    products = tmp_path / "bad.csv"
    products.write_text("S. No.,Product Name,Input Image Urls\n1,a,\n2,b,ftp://x/y.jpg\n")
    assert _opsdeck("db", "upgrade", env=env).returncode == 0

    result = _opsdeck("images", "process", str(products), "--out", str(tmp_path / "o"), env=env)

    assert result.returncode == 1
    assert "Line 2" in result.stderr
    assert "Line 3" in result.stderr
