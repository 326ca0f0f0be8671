"""core.signals: handlers declared in the registry and connected by hand are called with the
sender's session and values, in order; a disconnected one no more; a handler that raises
fails the sender."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from opsdeck.core import signals
from opsdeck.core.queue import beat_schedule
from opsdeck.modules import MODULES, task_modules


def test_handlers_get_the_session_and_the_values_until_disconnected() -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []

    def first(session: Any, **data: Any) -> None:
        calls.append(("first", data))

    def second(session: Any, **data: Any) -> None:
        calls.append((session, data))

    undo_first = signals.connect("tests.signal", first)
    undo_second = signals.connect("tests.signal", second)
    try:
        assert signals.send("a session", "tests.signal", number=7) == 2  # type: ignore[arg-type]
        assert calls == [("first", {"number": 7}), ("a session", {"number": 7})]
    finally:
        undo_first()
    assert signals.send("s", "tests.signal", number=8) == 1  # type: ignore[arg-type]
    undo_second()
    assert signals.send("s", "tests.signal") == 0  # type: ignore[arg-type]


def test_a_failing_handler_fails_the_sender() -> None:
    def broken(session: Any, **data: Any) -> None:
        raise RuntimeError("no")

    undo = signals.connect("tests.broken", broken)
    try:
        with pytest.raises(RuntimeError):
            signals.send("s", "tests.broken")  # type: ignore[arg-type]
    finally:
        undo()


def test_chat_subscribes_to_incident_changes_through_the_registry() -> None:
    declared = {name for module in MODULES for name in module.signals()}
    assert "incidents.changed" in declared
    for name in task_modules():
        importlib.import_module(name)
    assert beat_schedule()["chat.queue_mention_digests"]["schedule"] == 60.0
