"""Batch state changes under concurrency, on the test stack's real database."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from fastapi import FastAPI
from sqlalchemy.orm import Session

from opsdeck.images import service
from opsdeck.images.models import ImageBatch
from tests.conftest import UserFactory


def _batch_with_claimed_items(app: FastAPI, owner: Any, count: int) -> tuple[str, list[str]]:
    with app.state.sessionmaker() as session:
        batch = service.create_csv_batch(
            session,
            owner,
            columns=["S. No.", "Product Name", "Input Image Urls"],
            products=[
                service.ProductInput(str(n), f"p{n}", [str(n), f"p{n}", "u"], ["http://x/a"])
                for n in range(count)
            ],
            operations={"quality": 50},
            webhook_url=None,
        )
        session.commit()
        ids = service.item_ids(session, batch.id)
        for item_id in ids:
            assert service.claim_item(session, item_id) is not None
        session.commit()
        return batch.id, ids


def test_workers_finishing_the_last_images_at_once_finish_the_batch_exactly_once(
    app: FastAPI, make_user: UserFactory, db: Session
) -> None:
    batch_id, item_ids = _batch_with_claimed_items(app, make_user("owner"), 2)
    # On PostgreSQL both workers mark their image failed before either looks at the batch,
    # the interleaving that once left batches unfinished. SQLite serialises the two
    # transactions, so there the barrier times out and the second simply waits its turn.
    barrier = threading.Barrier(2, timeout=2)
    results: list[str | None] = []
    errors: list[BaseException] = []

    def worker(item_id: str) -> None:
        try:
            with app.state.sessionmaker() as session:
                service.fail_item(session, item_id, kind="http_status", message="404")
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait()
                results.append(service.finish_if_done(session, batch_id))
                session.commit()
        except BaseException as exc:  # surfaced below; a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(item_id,)) for item_id in item_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(results, key=str) == [None, "failed"]
    batch = db.get(ImageBatch, batch_id)
    assert batch is not None
    assert batch.status == "failed"
    assert batch.finished_at is not None
    db.commit()


def test_a_finished_item_is_not_claimed_or_changed_again(
    app: FastAPI, make_user: UserFactory
) -> None:
    batch_id, (item_id,) = _batch_with_claimed_items(app, make_user("owner"), 1)
    result = service.ItemResult("a" * 64, "jpeg", 10, 5, 1, 1)
    with app.state.sessionmaker() as session:
        assert service.complete_item(session, item_id, result)
        assert service.finish_if_done(session, batch_id) == "completed"
        session.commit()
    with app.state.sessionmaker() as session:
        # A duplicate delivery of the same task: nothing more happens.
        assert service.claim_item(session, item_id) is None
        assert not service.complete_item(session, item_id, result)
        assert not service.fail_item(session, item_id, kind="x", message="late failure")
        assert service.finish_if_done(session, batch_id) is None
        session.commit()
