"""Running the incident jobs in the tests' own process: the send and delivery jobs that
committed transactions queue are captured (instead of going to the broker, where the test
stack's worker, with settings of its own, would take them) and run on demand with the
settings a test chooses (an SMTP server of its own, a stricter address policy)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session

from opsdeck.core.db import after_commit, transaction
from opsdeck.core.jobs import RetryLater
from opsdeck.incidents.service import notifications, outbound
from opsdeck.settings import Settings


class Jobs:
    """The incident jobs queued by committed transactions, run on demand in this process."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.pending: list[tuple[str, tuple[Any, ...]]] = []
        self.retries: list[tuple[str, float]] = []

    def capture(self, session: Session, calls: Any, **_: Any) -> int:
        batch = [
            (name if isinstance(name, str) else name.name, tuple(args)) for name, args in calls
        ]
        after_commit(session, lambda: self.pending.extend(batch))
        return len(batch)

    def unit_of_work(self) -> Any:
        return transaction(self.app.state.sessionmaker)

    def run(self, settings: Settings, *, limit: int = 100) -> list[str]:
        """Run every queued job (and what they queue, and their retries, at once): the
        outcomes in order."""
        outcomes: list[str] = []
        for _ in range(limit):
            if not self.pending:
                return outcomes
            name, args = self.pending.pop(0)
            try:
                if name == notifications.SEND_JOB:
                    outcomes.append(notifications.deliver(self.unit_of_work, settings, *args))
                elif name == outbound.DELIVER_JOB:
                    outcomes.append(outbound.deliver(self.unit_of_work, settings, *args))
                else:
                    raise AssertionError(f"unexpected job {name}")
            except RetryLater as retry:
                self.retries.append((name, retry.countdown))
                outcomes.append("retry")
                self.pending.append((name, args))
        raise AssertionError(f"jobs still queued after {limit} runs")


def capture_jobs(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> Jobs:
    """Capture the jobs the notifications and outbound services queue (only once their
    transaction commits, as the outbox would)."""
    captured = Jobs(app)
    monkeypatch.setattr(notifications, "enqueue_many", captured.capture)
    monkeypatch.setattr(outbound, "enqueue_many", captured.capture)
    return captured
