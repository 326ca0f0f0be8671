"""The audit log's hash chain: appends never fork, and any edit, deletion or reordering of rows
is detected by `verify_chain` and by `opsdeck audit verify`."""

from __future__ import annotations

import threading

import pytest
from fastapi import FastAPI
from sqlalchemy import text, update
from sqlalchemy.orm import Session

from opsdeck.audit import service
from opsdeck.audit.models import AuditEntry
from opsdeck.core.deps import ClientContext
from opsdeck.core.pagination import PageParams, decode_cursor

CLIENT = ClientContext(ip="203.0.113.7", user_agent="pytest", request_id="req-123")


def _append(session: Session, count: int) -> list[AuditEntry]:
    entries = [
        service.record(
            session,
            "test.event",
            actor_name="tester",
            target_type="thing",
            target_id=str(n),
            details={"n": n, "note": "ünïcode ✓"},
            client=CLIENT,
        )
        for n in range(count)
    ]
    session.commit()
    return entries


def test_entries_chain_from_genesis_and_carry_context(db: Session) -> None:
    first, second = _append(db, 2)

    assert first.id == 1
    assert first.prev_hash == service.GENESIS_HASH
    assert second.prev_hash == first.hash
    assert first.ip == "203.0.113.7"
    assert first.request_id == "req-123"
    assert first.created_at.tzinfo is not None
    assert service.verify_chain(db) == service.ChainReport(ok=True, checked=2)


def test_empty_log_verifies(db: Session) -> None:
    assert service.verify_chain(db).ok


def test_edited_row_is_detected(db: Session) -> None:
    _append(db, 4)
    db.execute(
        update(AuditEntry).where(AuditEntry.id == 2).values(details={"n": 99, "note": "forged"})
    )
    db.commit()

    report = service.verify_chain(db)

    assert not report.ok
    assert report.first_broken_id == 2
    assert report.checked == 1
    assert "edited" in (report.reason or "")


def test_edited_actor_is_detected(db: Session) -> None:
    _append(db, 3)
    db.execute(update(AuditEntry).where(AuditEntry.id == 3).values(actor="someone-else"))
    db.commit()

    assert service.verify_chain(db).first_broken_id == 3


def test_deleted_row_is_detected(db: Session) -> None:
    _append(db, 4)
    db.execute(text("DELETE FROM audit_log WHERE id = 2"))
    db.commit()

    report = service.verify_chain(db)

    assert not report.ok
    assert report.first_broken_id == 3
    assert "missing" in (report.reason or "")


def test_deleted_row_with_renumbering_is_detected(db: Session) -> None:
    _append(db, 4)
    db.execute(text("DELETE FROM audit_log WHERE id = 2"))
    # One row at a time, lowest first: a single `SET id = id - 1` checks the primary key row by
    # row in PostgreSQL's scan order, which is not always the ids' order (a flaky collision).
    db.execute(text("UPDATE audit_log SET id = 2 WHERE id = 3"))
    db.execute(text("UPDATE audit_log SET id = 3 WHERE id = 4"))
    db.commit()

    report = service.verify_chain(db)

    assert not report.ok
    assert report.first_broken_id == 2
    assert "deleted or reordered" in (report.reason or "")


def test_reordered_rows_are_detected(db: Session) -> None:
    _append(db, 4)
    # Swap the ids of entries 2 and 3 (via a free id so the primary key never collides).
    db.execute(text("UPDATE audit_log SET id = 1000 WHERE id = 2"))
    db.execute(text("UPDATE audit_log SET id = 2 WHERE id = 3"))
    db.execute(text("UPDATE audit_log SET id = 3 WHERE id = 1000"))
    db.commit()

    report = service.verify_chain(db)

    assert not report.ok
    assert report.first_broken_id == 2


def test_concurrent_appends_never_fork_the_chain(app: FastAPI, db: Session) -> None:
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for n in range(5):
                with app.state.sessionmaker() as session:
                    service.record(session, "test.concurrent", details={"w": worker, "n": n})
                    session.commit()
        except BaseException as exc:  # surfaced below; a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    report = service.verify_chain(db)
    assert report.ok
    assert report.checked == 30


def test_list_entries_filters_and_pages(db: Session) -> None:
    _append(db, 5)
    service.record(db, "auth.login.failed", actor_name="Mallory", details={"reason": "x"})
    db.commit()

    def newest(limit: int, after: tuple[int, ...] | None = None) -> PageParams:
        return PageParams(orders=service.AUDIT_SORTS, sort="-id", limit=limit, after=after)

    page = service.list_entries(db, service.AuditFilter(), newest(4))
    assert [e.id for e in page.items] == [6, 5, 4, 3]
    assert page.next_cursor is not None
    after = decode_cursor(service.AUDIT_SORTS, "-id", page.next_cursor)
    rest = service.list_entries(db, service.AuditFilter(), newest(4, after))
    assert [e.id for e in rest.items] == [2, 1]
    assert rest.next_cursor is None

    oldest = PageParams(orders=service.AUDIT_SORTS, sort="id", limit=10)
    assert [e.id for e in service.list_entries(db, service.AuditFilter(), oldest).items] == [
        1,
        2,
        3,
        4,
        5,
        6,
    ]
    by_action = service.list_entries(db, service.AuditFilter(action="auth."), newest(10))
    assert [e.action for e in by_action.items] == ["auth.login.failed"]
    by_actor = service.list_entries(db, service.AuditFilter(actor="mallory"), newest(10))
    assert [e.id for e in by_actor.items] == [6]


@pytest.mark.parametrize("prefix", ["%", "_"])
def test_action_filter_treats_wildcards_literally(db: Session, prefix: str) -> None:
    _append(db, 2)
    page = PageParams(orders=service.AUDIT_SORTS, sort="-id", limit=10)
    assert service.list_entries(db, service.AuditFilter(action=prefix), page).items == []
