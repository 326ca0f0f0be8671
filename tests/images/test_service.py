"""Batch state changes under concurrency, on the test stack's real database."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

import pytest
import pyvips
from celery import Celery
from fastapi import FastAPI
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from opsdeck.core import live
from opsdeck.core.db import transaction
from opsdeck.core.jobs import JobOutbox
from opsdeck.core.outbound.errors import FetchError
from opsdeck.core.outbound.slots import HostSlots
from opsdeck.core.queue import queued_tasks
from opsdeck.core.storage import MediaStore
from opsdeck.images import pipeline, service
from opsdeck.images.models import ImageBatch, ImageItem
from tests.conftest import UserFactory, make_settings


def _keep_from_the_worker(session: Session) -> None:
    """These tests play the worker themselves: the new batches' start_batch jobs are taken
    out of the outbox before the commit, so the test stack's real worker never sees them."""
    session.execute(delete(JobOutbox).where(JobOutbox.task == service.START_BATCH_JOB))


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
        _keep_from_the_worker(session)
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


def test_claiming_starts_the_batch_once_and_refuses_a_cancelled_batch(
    app: FastAPI, make_user: UserFactory
) -> None:
    owner = make_user("owner")
    with app.state.sessionmaker() as session:
        batch_id = _pending_batch(session, owner, 3)
        session.commit()
        first, second, third = service.item_ids(session, batch_id)
    started: dict[str, dict[str, Any]] = {}

    with app.state.sessionmaker() as session:
        work = service.claim_item(session, first, started_batches=started)
        session.commit()
        batch = session.get(ImageBatch, batch_id)
        assert batch is not None
        assert batch.status == "processing"
        assert batch.started_at
    assert work is not None
    assert (work.batch_id, work.input_url, work.attempt) == (batch_id, "http://x/a", 1)
    assert work.operations == {"quality": 50}
    assert started == {batch_id: {"quality": 50}}

    # The batch is known started: the next claim takes its operations from the caller's map.
    started[batch_id] = {"quality": 50, "seen": "from the map"}
    with app.state.sessionmaker() as session:
        again = service.claim_item(session, first, started_batches=started)  # redelivered
        other = service.claim_item(session, second, started_batches=started)
        session.commit()
    assert again is not None
    assert again.attempt == 2
    assert other is not None
    assert other.operations["seen"] == "from the map"

    with app.state.sessionmaker() as session:
        session.execute(
            update(ImageBatch).where(ImageBatch.id == batch_id).values(status="cancelled")
        )
        session.commit()
    with app.state.sessionmaker() as session:
        assert service.claim_item(session, third, started_batches=started) is None
        assert service.claim_item(session, third) is None
        session.commit()
        item = session.get(ImageItem, third)
        assert item is not None
        assert (item.status, item.attempts) == ("pending", 0)


def test_a_killed_embedded_worker_s_taken_tasks_are_found_and_nothing_else(
    app: FastAPI, make_user: UserFactory, db: Session, tmp_path: Path
) -> None:
    """Celery's filesystem broker deletes a message when a worker takes it: a worker killed as
    a whole loses what it had taken. On restart, every unfinished image of an unfinished batch
    with no message waiting for it is queued again; images still queued, batches whose fan-out
    is still queued, and finished or cancelled batches are left alone."""
    owner = make_user("owner")
    _batch_id, claimed = _batch_with_claimed_items(app, owner, 1)
    with app.state.sessionmaker() as session:
        pending = _pending_batch(session, owner, 4)
        fanning_out = _pending_batch(session, owner, 1)
        cancelled = _pending_batch(session, owner, 1)
        session.execute(
            update(ImageBatch).where(ImageBatch.id == cancelled).values(status="cancelled")
        )
        session.commit()
        candidates = service.orphan_candidates(session)
        pending_ids = service.item_ids(session, pending)

    # What the embedded broker's folder holds: one image of `pending` queued alone and two in
    # a chunk, the fan-out of `fanning_out`, and a file that is not a Celery message at all.
    settings = make_settings(tmp_path, database_url="", redis_url="")
    broker = Celery("probe", broker="filesystem://")
    folder = str(settings.broker_dir / "queue")
    broker.conf.broker_transport_options = {
        "data_folder_in": folder,
        "data_folder_out": folder,
        "control_folder": str(tmp_path / "control"),
    }
    broker.send_task(pipeline.PROCESS_ITEM_TASK, args=[pending_ids[0]], queue="opsdeck")
    broker.send_task(pipeline.PROCESS_ITEMS_TASK, args=[pending_ids[1:3]], queue="opsdeck")
    broker.send_task(pipeline.START_BATCH_TASK, args=[fanning_out], queue="opsdeck")
    (settings.broker_dir / "queue" / "0_junk.opsdeck.msg").write_text("{not json")
    queued = list(queued_tasks(settings))

    assert sorted(name for name, _ in queued) == [
        pipeline.PROCESS_ITEM_TASK,
        pipeline.PROCESS_ITEMS_TASK,
        pipeline.START_BATCH_TASK,
    ]
    assert {item for item, batch in candidates} >= set(pending_ids)
    assert cancelled not in {batch for _, batch in candidates}
    assert sorted(pipeline.orphaned_items(candidates, queued)) == sorted([*claimed, pending_ids[3]])


def _pending_batch(session: Session, owner: Any, count: int, *, distinct: bool = False) -> str:
    """A batch of `count` images, all of one URL (or each of its own: `distinct`)."""
    batch = service.create_csv_batch(
        session,
        owner,
        columns=["S. No.", "Product Name", "Input Image Urls"],
        products=[
            service.ProductInput(
                str(n),
                f"p{n}",
                [str(n), f"p{n}", "u"],
                [f"http://x/{n}" if distinct else "http://x/a"],
            )
            for n in range(count)
        ],
        operations={"quality": 50},
        webhook_url=None,
    )
    _keep_from_the_worker(session)
    session.flush()
    return batch.id


def test_batches_are_split_into_tasks_that_spread_small_batches_and_group_big_ones() -> None:
    ids = [f"i{n}" for n in range(600)]

    assert service.chunks([]) == []
    assert service.chunks(ids[:40]) == [[item] for item in ids[:40]]
    assert {len(chunk) for chunk in service.chunks(ids[:64])} == {1, 2}
    big = service.chunks(ids)
    assert max(len(chunk) for chunk in big) == service.CHUNK_MAX
    assert [item for chunk in big for item in chunk] == ids  # all of them, in order, once
    # The end of a batch comes in ever smaller tasks, so no worker is left alone with a full
    # chunk while the others have nothing to do.
    sizes = [len(chunk) for chunk in big]
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[-service.CHUNK_TAPER :] == [1] * service.CHUNK_TAPER


def test_the_rest_of_a_chunk_is_packed_in_tasks_of_a_given_size_without_splitting_a_unit() -> None:
    units = [["a"], ["b", "c"], ["d"], ["e"], ["f", "g", "h", "i"], ["j"]]

    assert service.pack(units, per_task=3) == [
        ["a", "b", "c"],
        ["d", "e"],
        ["f", "g", "h", "i"],
        ["j"],
    ]
    assert service.pack(units, per_task=1) == units
    # Neither spread nor tapered: ten images in tasks of five are two tasks, not ten.
    ten = [[f"i{n}"] for n in range(10)]
    assert [len(chunk) for chunk in service.pack(ten, per_task=5)] == [5, 5]
    assert [len(chunk) for chunk in service.pack(ten)] == [1] * 10
    many = [[f"i{n}"] for n in range(40)]
    assert max(len(chunk) for chunk in service.pack(many, per_task=100)) == service.CHUNK_MAX


def _chunk_worker(
    app: FastAPI, owner: Any, monkeypatch: pytest.MonkeyPatch, count: int
) -> tuple[str, list[str], list[float]]:
    """A batch of `count` images with distinct URLs, and pipeline.process_chunk run in this
    process on the test database: every image "takes" 0.3 s of the returned fake clock and
    succeeds; this process has seen no batch yet."""
    with app.state.sessionmaker() as session:
        batch_id = _pending_batch(session, owner, count, distinct=True)
        session.commit()
        ids = service.item_ids(session, batch_id)
    monkeypatch.setattr(pipeline, "task_session", lambda: transaction(app.state.sessionmaker))
    monkeypatch.setattr(pipeline, "_started_batches", pipeline._Bounded(256))
    monkeypatch.setattr(MediaStore, "sync", lambda _store, keys: None)
    now = [0.0]
    monkeypatch.setattr(pipeline, "time", type("Clock", (), {"monotonic": lambda: now[0]}))
    monkeypatch.setattr(pipeline, "CHUNK_SLICE_SECONDS", 1.0)
    result = service.ItemResult("b" * 64, "jpeg", 10, 5, 1, 1)

    def attempt(work: service.ItemWork, **_: Any) -> pipeline.Produced:
        now[0] += 0.3
        return pipeline.Produced(work.item_id, work.batch_id, result=result)

    monkeypatch.setattr(pipeline, "attempt", attempt)
    return batch_id, ids, now


def test_a_chunk_out_of_time_hands_its_rest_back_in_tasks_it_could_have_done_in_its_slice(
    app: FastAPI, make_user: UserFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch_id, ids, _ = _chunk_worker(app, make_user("owner"), monkeypatch, 11)
    sent: list[list[str]] = []
    monkeypatch.setattr(
        service,
        "enqueue_many",
        lambda _session, jobs: sent.extend(
            [args[0]] if isinstance(args[0], str) else list(args[0]) for _task, args in jobs
        ),
    )

    taken = pipeline.process_chunk(ids)  # four fit in the 1 s slice (0, 0.3, 0.6, 0.9)

    assert taken == 4
    # The seven left go back in tasks of two (half what this chunk did in its slice), in order.
    assert sent == [ids[4:6], ids[6:8], ids[8:10], ids[10:11]]
    with app.state.sessionmaker() as session:
        states = dict(
            session.execute(
                select(ImageItem.id, ImageItem.status).where(ImageItem.batch_id == batch_id)
            ).all()
        )
    assert [states[item_id] for item_id in ids] == ["succeeded"] * 4 + ["pending"] * 7


def test_only_a_batchs_first_chunk_in_a_process_records_its_first_image_alone(
    app: FastAPI, make_user: UserFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, ids, now = _chunk_worker(app, make_user("owner"), monkeypatch, 6)
    recorded: list[int] = []
    record = pipeline.record

    def counting(produced: list[pipeline.Produced]) -> list[pipeline.ItemOutcome]:
        if produced:
            recorded.append(len(produced))
        return record(produced)

    monkeypatch.setattr(pipeline, "record", counting)

    pipeline.process_chunk(ids[:3])
    first = list(recorded)
    recorded.clear()
    now[0] = 0.0
    pipeline.process_chunk(ids[3:])

    # The batch's first output shows at once; its later chunks record in one transaction.
    assert first == [1, 2]
    assert recorded == [3]


def test_claiming_several_items_returns_them_in_order_and_releasing_gives_them_back(
    app: FastAPI, make_user: UserFactory
) -> None:
    owner = make_user("owner")
    with app.state.sessionmaker() as session:
        batch_id = _pending_batch(session, owner, 4)
        session.commit()
        ids = service.item_ids(session, batch_id)
    done = ids[1]
    with app.state.sessionmaker() as session:
        assert service.claim_item(session, done) is not None
        assert service.complete_item(
            session, done, service.ItemResult("a" * 64, "jpeg", 10, 5, 1, 1)
        )
        session.commit()

    wanted = [ids[3], ids[0], done, ids[2]]
    with app.state.sessionmaker() as session:
        claimed = service.claim_items(session, wanted)
        session.commit()
    assert [work.item_id for work in claimed] == [ids[3], ids[0], ids[2]]  # the done one skipped
    assert {work.operations["quality"] for work in claimed} == {50}

    with app.state.sessionmaker() as session:
        assert service.release_items(session, [ids[0], ids[2], done]) == 2
        session.commit()
        states = {
            item.id: (item.status, item.attempts)
            for item in session.scalars(select(ImageItem).where(ImageItem.batch_id == batch_id))
        }
    assert states[ids[0]] == ("pending", 0)
    assert states[ids[2]] == ("pending", 0)
    assert states[ids[3]] == ("processing", 1)
    assert states[done][0] == "succeeded"


def test_recording_several_images_at_once_finishes_each_batch_once(
    app: FastAPI, make_user: UserFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = make_user("owner")
    with app.state.sessionmaker() as session:
        one = _pending_batch(session, owner, 2)
        two = _pending_batch(session, owner, 1)
        session.execute(
            update(ImageBatch)
            .where(ImageBatch.id == two)
            .values(webhook_url="https://hooks.example.com/x", webhook_status="pending")
        )
        session.commit()
        ids = [*service.item_ids(session, one), *service.item_ids(session, two)]
    # The worker's units of work, on the test app's database.
    monkeypatch.setattr(pipeline, "task_session", lambda: transaction(app.state.sessionmaker))
    works = pipeline.claim(ids)
    result = service.ItemResult("a" * 64, "jpeg", 10, 5, 1, 1)
    produced = [
        pipeline.Produced(works[0].item_id, one, result=result),
        pipeline.Produced(works[1].item_id, one, result=result),
        pipeline.Produced(works[2].item_id, two, failure=("http_error", "HTTP 404")),
    ]

    outcomes = pipeline.record(produced)
    again = pipeline.record(produced)  # a redelivered chunk records the same images again

    assert [o.status for o in outcomes] == ["succeeded", "succeeded", "failed"]
    # Each batch finished once, by its last image: the webhook only where one is pending.
    assert [(o.finished_batch, o.webhook) for o in outcomes] == [
        (None, False),
        (one, False),
        (two, True),
    ]
    assert [o.finished_batch for o in again] == [None, None, None]
    with app.state.sessionmaker() as session:
        batches = {b: session.get(ImageBatch, b) for b in (one, two)}
        statuses = {b: batch.status if batch else None for b, batch in batches.items()}
    assert statuses == {one: "completed", two: "failed"}


def test_completing_several_images_at_once_changes_only_those_still_processing(
    app: FastAPI, make_user: UserFactory
) -> None:
    batch_id, ids = _batch_with_claimed_items(app, make_user("owner"), 4)
    results = {
        item_id: service.ItemResult(f"{n}" * 64, "png", 100 + n, 50 + n, 10 + n, 20 + n)
        for n, item_id in enumerate(ids)
    }
    with app.state.sessionmaker() as session:
        assert service.fail_item(session, ids[1], kind="x", message="failed first")
        session.commit()
    with app.state.sessionmaker() as session:
        assert service.complete_items(session, results) == {ids[0], ids[2], ids[3]}
        assert service.complete_items(session, results) == set()  # done already: no change
        session.commit()
        items = {
            item.id: item
            for item in session.scalars(select(ImageItem).where(ImageItem.batch_id == batch_id))
        }
    assert items[ids[1]].status == "failed"
    assert items[ids[1]].output_key is None
    for n in (0, 2, 3):
        item = items[ids[n]]
        assert item.status == "succeeded"
        assert (item.output_key, item.output_format) == (f"{n}" * 64, "png")
        assert (item.bytes_in, item.bytes_out, item.width, item.height) == (
            100 + n,
            50 + n,
            10 + n,
            20 + n,
        )
        assert item.output_token
        assert item.finished_at is not None
    assert len({items[ids[n]].output_token for n in (0, 2, 3)}) == 3  # a token each


def test_recording_successes_finishes_the_batch_once_and_publishes_its_state(
    app: FastAPI, make_user: UserFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = make_user("owner")
    with app.state.sessionmaker() as session:
        batch_id = _pending_batch(session, owner, 3)
        session.execute(
            update(ImageBatch)
            .where(ImageBatch.id == batch_id)
            .values(webhook_url="https://hooks.example.com/x", webhook_status="pending")
        )
        session.commit()
        ids = service.item_ids(session, batch_id)
    events: list[str] = []

    def task_session() -> Any:
        events.append("transaction")
        return transaction(app.state.sessionmaker)

    monkeypatch.setattr(pipeline, "task_session", task_session)
    monkeypatch.setattr(
        MediaStore, "sync", lambda _store, keys: events.append(f"sync {sorted(set(keys))}")
    )
    published: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(live, "publish", lambda room, _event, data: published.append((room, data)))
    monkeypatch.setattr(pipeline, "enqueue", lambda *_args, **_kwargs: None)  # no real webhook
    works = pipeline.claim(ids)
    result = service.ItemResult("b" * 64, "jpeg", 10, 5, 1, 1)

    first = pipeline.record([pipeline.Produced(works[0].item_id, batch_id, result=result)])
    rest = pipeline.record(
        [pipeline.Produced(work.item_id, batch_id, result=result) for work in works[1:]]
    )
    again = pipeline.record(
        [pipeline.Produced(work.item_id, batch_id, result=result) for work in works]
    )

    # The outputs made durable before each transaction that records them.
    assert events == [
        "transaction",  # the claim
        *["sync ['" + "b" * 64 + "']", "transaction"] * 3,
    ]
    assert [(o.status, o.finished_batch, o.webhook) for o in first] == [("succeeded", None, False)]
    assert [(o.finished_batch, o.webhook) for o in rest] == [(None, False), (batch_id, True)]
    assert [o.finished_batch for o in again] == [None, None, None]
    assert [(room, data["status"]) for room, data in published] == [
        (f"images:batch:{batch_id}", "processing"),
        (f"images:batch:{batch_id}", "completed"),
        (f"images:batch:{batch_id}", "completed"),
    ]


def test_a_chunk_takes_its_hosts_download_slot_once_and_gives_it_back(
    app: FastAPI,
    make_user: UserFactory,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Five images from one host in one chunk: one slot taken (not five), held by no one after
    the chunk; the host's cap of one is never exceeded meanwhile."""
    with app.state.sessionmaker() as session:
        batch_id = _pending_batch(session, make_user("owner"), 5, distinct=True)
        session.commit()
        ids = service.item_ids(session, batch_id)
    monkeypatch.setattr(pipeline, "task_session", lambda: transaction(app.state.sessionmaker))
    monkeypatch.setattr(pipeline, "_started_batches", pipeline._Bounded(256))
    monkeypatch.setattr(MediaStore, "sync", lambda _store, keys: None)
    slots = HostSlots(1, lock_dir=tmp_path)
    taken: list[str] = []
    acquire = slots.acquire

    def counting(host: str, *, wait_seconds: float) -> Any:
        taken.append(host)
        return acquire(host, wait_seconds=wait_seconds)

    monkeypatch.setattr(slots, "acquire", counting)
    monkeypatch.setattr(pipeline, "_host_slots", lambda: slots)
    jpeg = bytes(pyvips.Image.black(8, 8, bands=3).jpegsave_buffer())
    fetched: list[str] = []

    class Client:
        def fetch(self, url: str) -> Any:
            # The chunk holds the host's only slot.
            with (
                pytest.raises(FetchError),
                HostSlots(1, lock_dir=tmp_path).hold("x", wait_seconds=0),
            ):
                pass
            fetched.append(url)
            return type("Answer", (), {"content": jpeg})()

    monkeypatch.setattr(pipeline, "_client", Client)

    assert pipeline.process_chunk(ids) == 5

    assert len(fetched) == 5
    assert taken == ["x"]
    with HostSlots(1, lock_dir=tmp_path).hold("x", wait_seconds=0):
        pass
    with app.state.sessionmaker() as session:
        states = session.scalars(select(ImageItem.status).where(ImageItem.batch_id == batch_id))
        assert set(states) == {"succeeded"}
