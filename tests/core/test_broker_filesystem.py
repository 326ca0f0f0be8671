"""The embedded broker (kombu's filesystem transport) with a worker taking messages while they
are published: every message arrives whole."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from kombu.connection import Connection

import opsdeck.core.queue  # noqa: F401  (applies the kombu fix on import)

MESSAGES = 1200


def test_messages_taken_while_they_are_published_arrive_whole(tmp_path: Path) -> None:
    folder = str(tmp_path / "queue")
    Path(folder).mkdir()
    options = {
        "data_folder_in": folder,
        "data_folder_out": folder,
        "control_folder": str(tmp_path / "control"),
        "polling_interval": 0.0,
    }
    connect: Any = Connection  # kombu ships no type information
    received: list[int] = []
    errors: list[BaseException] = []
    published = threading.Event()

    def consume() -> None:
        with connect("filesystem://", transport_options=options) as connection:
            queue = connection.SimpleQueue("q")
            try:
                while len(received) < MESSAGES:
                    try:
                        message = queue.get(timeout=0.05)
                    except queue.Empty:
                        if published.is_set() and not list(Path(folder).glob("*.msg")):
                            return
                        continue
                    received.append(message.payload["n"])
                    message.ack()
            except BaseException as exc:  # a torn message: kombu fails to decode it
                errors.append(exc)

    with connect("filesystem://", transport_options=options) as connection:
        # Declared (its exchange table written) before the consumer starts: the two
        # connections share kombu's in-process binding state, and a consumer that declared
        # first would have the publisher skip writing the table (one process here, where the
        # web server and the worker are two).
        queue = connection.SimpleQueue("q")
        consumer = threading.Thread(target=consume, daemon=True)
        consumer.start()
        for n in range(MESSAGES):
            queue.put({"n": n, "padding": "x" * 2000})
    published.set()
    consumer.join(timeout=120)

    assert errors == []
    assert sorted(received) == list(range(MESSAGES))


def test_a_consumer_outlives_its_queue_folder_going_away(tmp_path: Path) -> None:
    # The embedded broker's outage (tests/images/test_outages.py moves the folder away): kombu
    # listed the missing folder and the worker stopped with "Unrecoverable error". No folder
    # is no message; the consumer takes up the queue when the folder is back.
    folder = tmp_path / "queue"
    folder.mkdir()
    options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(tmp_path / "control"),
        "polling_interval": 0.0,
    }
    connect: Any = Connection  # kombu ships no type information
    with connect("filesystem://", transport_options=options) as connection:
        # Its own queue name: kombu keeps bindings per process, shared with the test above.
        queue = connection.SimpleQueue("outage")
        queue.put({"n": 1})
        aside = folder.rename(tmp_path / "queue-unavailable")
        for _ in range(3):
            try:
                queue.get(timeout=0.05)
            except queue.Empty:
                continue
            raise AssertionError("a message arrived from a folder that is not there")
        aside.rename(folder)
        message = queue.get(timeout=5)
        assert message.payload == {"n": 1}
        message.ack()
