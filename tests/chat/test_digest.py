"""The e-mail digest of mentions and direct messages left unread: sent through the incidents
mailer to a real SMTP server once the delay has passed, one mail per reader with everything
pending, nothing when it was read meanwhile, nothing for a reader who unsubscribed (the mail's
one-click link), nothing twice."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from opsdeck.chat import service
from opsdeck.core.db import transaction, utcnow
from opsdeck.settings import Settings
from tests.chat.conftest import CHAT, Person, RoomFactory, Sender
from tests.conftest import API, make_settings, smtp_overrides
from tests.incidents.jobs import Jobs, capture_jobs
from tests.mail_server import SmtpServer

PREFERENCES = f"{API}/incidents/notification-preferences"


@pytest.fixture
def jobs(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> Jobs:
    return capture_jobs(app, monkeypatch)


@pytest.fixture
def mail_settings(data_dir: Path, smtp_server: SmtpServer) -> Settings:
    return make_settings(data_dir, **smtp_overrides(smtp_server))


def _digests(app: FastAPI, settings: Settings, minutes: float) -> int:
    """Run the digest job as if `minutes` had passed."""
    with transaction(app.state.sessionmaker) as session:
        return service.queue_digests(session, settings, utcnow() + timedelta(minutes=minutes))


def _parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    return str(text.get_content()), str(html.get_content())


def test_unread_mentions_and_direct_messages_go_out_as_one_digest_after_the_delay(
    client: TestClient,
    app: FastAPI,
    settings: Settings,
    alice: Person,
    bob: Person,
    make_room: RoomFactory,
    send: Sender,
    jobs: Jobs,
    mail_settings: Settings,
    smtp_server: SmtpServer,
) -> None:
    room = make_room(alice, name="ops")
    assert client.post(f"{CHAT}/rooms/{room['id']}/join", headers=bob.headers).status_code == 200
    send(alice, room["id"], "no mention: no mail")
    send(alice, room["id"], "@bob can you look at <b>INC-4</b>?")
    dm = client.post(f"{CHAT}/dms", json={"user_ids": [bob.id]}, headers=alice.headers).json()
    send(alice, dm["id"], "ping me when you are back")

    # Not yet: the delay (10 minutes) has not passed.
    assert _digests(app, settings, minutes=1) == 0
    assert _digests(app, settings, minutes=11) == 1
    jobs.run(mail_settings)
    [message] = smtp_server.messages
    assert str(message["To"]) == "bob@example.com"
    assert message["Subject"] == "OpsDeck chat: 2 unread messages for you"
    assert message["X-OpsDeck-Notification"] == "chat_mentions"
    text, html = _parts(message)
    assert "alice in #ops" in text
    assert "@bob can you look at <b>INC-4</b>?" in text
    assert "alice in a direct message (" in text
    assert "ping me when you are back" in text
    assert f"/chat/rooms/{room['id']}?seq=2" in text
    assert "&lt;b&gt;INC-4&lt;/b&gt;" in html
    assert "<b>" not in html
    unsubscribe = str(message["List-Unsubscribe"]).strip("<>")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe in text

    # Nothing twice: the notices were used.
    assert _digests(app, settings, minutes=30) == 0
    jobs.run(mail_settings)
    assert len(smtp_server.messages) == 1

    # One click turns these mails off (the incidents mailer's preferences and link).
    link = urlsplit(unsubscribe)
    response = TestClient(app).post(
        f"{link.path}?{link.query}",
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    preferences = client.get(PREFERENCES, headers=bob.headers).json()
    assert preferences["chat_mentions"] is False
    assert preferences["comment"] is True
    send(alice, room["id"], "@bob still there?")
    assert _digests(app, settings, minutes=11) == 0
    jobs.run(mail_settings)
    assert len(smtp_server.messages) == 1


def test_what_was_read_in_time_is_not_mailed(
    client: TestClient,
    app: FastAPI,
    settings: Settings,
    alice: Person,
    bob: Person,
    eve: Person,
    make_room: RoomFactory,
    send: Sender,
    jobs: Jobs,
    mail_settings: Settings,
    smtp_server: SmtpServer,
) -> None:
    room = make_room(alice)
    for person in (bob, eve):
        assert (
            client.post(f"{CHAT}/rooms/{room['id']}/join", headers=person.headers).status_code
            == 200
        )
    first = send(alice, room["id"], "@bob @eve deploy?")
    # Bob reads it in time; eve does not; the author is never told of their own message.
    client.post(f"{CHAT}/rooms/{room['id']}/read", json={"seq": first["seq"]}, headers=bob.headers)
    # A mention edited away owes nothing either.
    second = send(alice, room["id"], "@bob one more")
    client.patch(
        f"{CHAT}/messages/{second['id']}", json={"body": "one more"}, headers=alice.headers
    )
    assert _digests(app, settings, minutes=11) == 1
    jobs.run(mail_settings)
    assert [str(m["To"]) for m in smtp_server.messages] == ["eve@example.com"]
    assert smtp_server.messages[0]["Subject"] == "OpsDeck chat: 1 unread message for you"
