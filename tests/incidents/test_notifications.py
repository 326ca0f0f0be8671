"""Incident e-mail: who gets which mail, preferences and one-click unsubscribe, the message
itself (text + HTML, escaped, List-Unsubscribe), SMTP down (retried, then "notification
failed" on the timeline), the .eml fallback, the daily digest and follow-up reminders.

Mail goes to a real local SMTP server (aiosmtpd). The send jobs the requests queue are
captured when their transaction commits and run here, in this process, with settings that
point at that server (`Jobs.run`); the `.eml` test runs them through the real broker and
the real Celery worker instead, whose settings have no SMTP host.
"""

from __future__ import annotations

import email
import email.policy
from datetime import date, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsdeck.core.db import transaction, utcnow
from opsdeck.core.jobs import JobOutbox
from opsdeck.core.security import sign_token
from opsdeck.incidents.models import (
    DeliveryStatus,
    FollowUp,
    FollowUpStatus,
    IncidentStatus,
    Notification,
)
from opsdeck.incidents.service import incidents, notifications
from opsdeck.settings import Settings
from tests.conftest import (
    UserFactory,
    error_of,
    make_settings,
    sign_in,
    smtp_overrides,
)
from tests.incidents.conftest import INCIDENTS, Declare
from tests.incidents.jobs import Jobs, capture_jobs
from tests.mail_server import SmtpServer
from tests.stack import ManagedProcess, wait_until

PREFERENCES = f"{INCIDENTS}/notification-preferences"


@pytest.fixture
def jobs(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> Jobs:
    return capture_jobs(app, monkeypatch)


@pytest.fixture
def mail_settings(data_dir: Path, smtp_server: SmtpServer) -> Settings:
    return make_settings(data_dir, **smtp_overrides(smtp_server))


People = dict[str, dict[str, str]]


@pytest.fixture
def people(client: TestClient, make_user: UserFactory, admin: Any, member: Any) -> People:
    """Headers of root (admin), mallory (member), ana and bob (members), eve (outsider)."""
    for name in ("ana", "bob", "eve"):
        make_user(name, display_name=name.title())
    return {name: sign_in(client, name) for name in ("root", "mallory", "ana", "bob", "eve")}


def _to(message: EmailMessage) -> str:
    return str(message["To"])


def _parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None, message
    assert html is not None, message
    return str(text.get_content()), str(html.get_content())


def _mail_to(server: SmtpServer, user: str) -> list[EmailMessage]:
    return [m for m in server.messages if _to(m) == f"{user}@example.com"]


def _notifications(app: FastAPI) -> list[Notification]:
    with app.state.sessionmaker() as session:
        return list(session.scalars(select(Notification).order_by(Notification.created_at)))


def test_an_assignment_mail_arrives_with_text_and_html_parts_and_one_click_unsubscribe(
    client: TestClient,
    people: People,
    declare: Declare,
    jobs: Jobs,
    mail_settings: Settings,
    smtp_server: SmtpServer,
) -> None:
    incident = declare(people["root"], title="Checkout is failing", severity="SEV1")
    number = incident["number"]
    response = client.post(
        f"{INCIDENTS}/{number}/assignees", json={"username": "ana"}, headers=people["root"]
    )
    assert response.status_code == 200, response.text

    assert jobs.run(mail_settings) == ["sent"]

    [message] = smtp_server.messages
    assert _to(message) == "ana@example.com"
    assert message["Subject"] == f"[INC-{number}] You are now assignee: Checkout is failing"
    assert message.get_content_type() == "multipart/alternative"
    text, html = _parts(message)
    link = f"{mail_settings.public_base_url}/incidents/{number}"
    for part in (text, html):
        assert f"INC-{number}" in part
        assert "Checkout is failing" in part
        assert "SEV1" in part
        assert "triage" in part
        assert link in part
    assert "root made you an assignee" in text
    unsubscribe = str(message["List-Unsubscribe"])
    assert unsubscribe.startswith(
        f"<{mail_settings.public_base_url}/api/v1/incidents/unsubscribe?token="
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe.strip("<>") in text
    [row] = _notifications(client.app)  # type: ignore[arg-type]
    assert (row.kind, row.status, row.attempts) == ("assignment", DeliveryStatus.DELIVERED, 1)
    # A job run again (delivery is at least once) sends nothing more.
    jobs.pending.append((notifications.SEND_JOB, (row.id,)))
    assert jobs.run(mail_settings) == ["nothing_to_send"]
    assert len(smtp_server.messages) == 1


def test_the_new_commander_gets_a_mail_and_nobody_mails_themselves(
    client: TestClient,
    people: People,
    declare: Declare,
    jobs: Jobs,
    mail_settings: Settings,
    smtp_server: SmtpServer,
) -> None:
    number = declare(people["root"])["number"]
    assert (
        client.patch(
            f"{INCIDENTS}/{number}", json={"commander": "bob"}, headers=people["root"]
        ).status_code
        == 200
    )
    # root assigns themselves: no mail to root.
    assert (
        client.post(
            f"{INCIDENTS}/{number}/assignees", json={"username": "root"}, headers=people["root"]
        ).status_code
        == 200
    )
    jobs.run(mail_settings)
    assert [_to(m) for m in smtp_server.messages] == ["bob@example.com"]
    assert "You are now commander" in str(smtp_server.messages[0]["Subject"])


def test_a_watcher_gets_the_comment_mail_and_the_author_does_not(
    client: TestClient,
    people: People,
    declare: Declare,
    jobs: Jobs,
    mail_settings: Settings,
    smtp_server: SmtpServer,
) -> None:
    number = declare(people["mallory"])["number"]  # the reporter watches
    assert client.post(f"{INCIDENTS}/{number}/watchers", headers=people["bob"]).status_code == 200

    response = client.post(
        f"{INCIDENTS}/{number}/comments",
        json={"body": "Rolled back **deploy 42**"},
        headers=people["mallory"],
    )
    assert response.status_code == 201, response.text
    jobs.run(mail_settings)

    assert [_to(m) for m in smtp_server.messages] == ["bob@example.com"]
    text, html = _parts(smtp_server.messages[0])
    assert "mallory commented" in text
    assert "> Rolled back **deploy 42**" in text
    assert "Rolled back **deploy 42**" in html

    client.post(f"{INCIDENTS}/{number}/comments", json={"body": "ok"}, headers=people["bob"])
    jobs.run(mail_settings)
    assert [_to(m) for m in smtp_server.messages] == ["bob@example.com", "mallory@example.com"]


def test_a_status_change_reaches_watchers_commander_and_assignees_but_not_the_actor(
    client: TestClient,
    people: People,
    declare: Declare,
    jobs: Jobs,
    mail_settings: Settings,
    smtp_server: SmtpServer,
) -> None:
    number = declare(people["mallory"])["number"]
    client.patch(f"{INCIDENTS}/{number}", json={"commander": "bob"}, headers=people["root"])
    client.post(f"{INCIDENTS}/{number}/assignees", json={"username": "ana"}, headers=people["root"])
    jobs.run(mail_settings)
    smtp_server.received.clear()

    response = client.post(
        f"{INCIDENTS}/{number}/transition", json={"to": "investigating"}, headers=people["ana"]
    )
    assert response.status_code == 200, response.text
    jobs.run(mail_settings)

    assert sorted(_to(m) for m in smtp_server.messages) == [
        "bob@example.com",
        "mallory@example.com",
    ]
    text, _ = _parts(smtp_server.messages[0])
    assert "ana moved" in text
    assert "from triage to investigating" in text


def test_preferences_default_to_on_and_a_kind_turned_off_sends_no_mail(
    client: TestClient,
    people: People,
    declare: Declare,
    jobs: Jobs,
    mail_settings: Settings,
    smtp_server: SmtpServer,
) -> None:
    assert client.get(PREFERENCES, headers=people["mallory"]).json() == {
        "assignment": True,
        "status_change": True,
        "comment": True,
        "follow_up_due": True,
        "daily_digest": True,
        "chat_mentions": True,
    }
    response = client.put(PREFERENCES, json={"comment": False}, headers=people["mallory"])
    assert response.status_code == 200, response.text
    assert response.json()["comment"] is False
    assert response.json()["assignment"] is True
    assert client.get(PREFERENCES, headers=people["mallory"]).json()["comment"] is False

    number = declare(people["mallory"])["number"]
    client.post(f"{INCIDENTS}/{number}/comments", json={"body": "hi"}, headers=people["bob"])
    jobs.run(mail_settings)
    assert smtp_server.messages == []
    assert _notifications(client.app) == []  # type: ignore[arg-type]


def test_a_mail_queued_before_its_kind_was_turned_off_is_not_sent(
    client: TestClient,
    people: People,
    declare: Declare,
    jobs: Jobs,
    mail_settings: Settings,
    smtp_server: SmtpServer,
) -> None:
    number = declare(people["mallory"])["number"]
    client.post(f"{INCIDENTS}/{number}/comments", json={"body": "hi"}, headers=people["bob"])
    assert len(jobs.pending) == 1
    client.put(PREFERENCES, json={"comment": False}, headers=people["mallory"])
    assert jobs.run(mail_settings) == ["nothing_to_send"]
    assert smtp_server.messages == []
    [row] = _notifications(client.app)  # type: ignore[arg-type]
    assert row.status == DeliveryStatus.FAILED
    assert row.last_error == "the recipient turned these e-mails off since"


def test_bad_preferences_are_refused(client: TestClient, people: People) -> None:
    for body in ({"comments": False}, {"comment": "maybe"}):
        response = client.put(PREFERENCES, json=body, headers=people["mallory"])
        assert response.status_code == 422, response.text
    assert client.get(PREFERENCES).status_code == 401
    assert client.put(PREFERENCES, json={"comment": False}).status_code == 401


def test_the_unsubscribe_link_works_in_one_click_and_from_its_page(
    client: TestClient,
    people: People,
    declare: Declare,
    jobs: Jobs,
    mail_settings: Settings,
    smtp_server: SmtpServer,
) -> None:
    number = declare(people["root"])["number"]
    client.post(f"{INCIDENTS}/{number}/assignees", json={"username": "ana"}, headers=people["root"])
    jobs.run(mail_settings)
    link = urlsplit(str(smtp_server.messages[0]["List-Unsubscribe"]).strip("<>"))
    url = f"{link.path}?{link.query}"

    page = client.get(url)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "form-action 'self'" in page.headers["content-security-policy"]
    assert "script" not in page.text
    assert '<form method="post"' in page.text
    assert "assignment e-mails" in page.text
    # Showing the page changes nothing.
    assert client.get(PREFERENCES, headers=people["ana"]).json()["assignment"] is True

    # RFC 8058: a POST with List-Unsubscribe=One-Click, no cookie, no CSRF token.
    anonymous = TestClient(client.app)
    response = anonymous.post(
        url,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    preferences = client.get(PREFERENCES, headers=people["ana"]).json()
    assert preferences["assignment"] is False
    assert preferences["comment"] is True
    # Clicking twice is fine.
    assert anonymous.post(url).status_code == 200

    client.delete(f"{INCIDENTS}/{number}/assignees/ana", headers=people["root"])
    client.post(f"{INCIDENTS}/{number}/assignees", json={"username": "ana"}, headers=people["root"])
    jobs.run(mail_settings)
    assert len(smtp_server.messages) == 1


def test_a_tampered_or_foreign_unsubscribe_token_is_a_400(
    client: TestClient, people: People, settings: Settings, app: FastAPI
) -> None:
    """400 `invalid_token` naming `query.token`: the link is the credential, and a link that
    is not one of ours is a bad request rather than a sign-in problem (401 would ask for
    one)."""
    secret = settings.secret_bytes()
    with app.state.sessionmaker() as session:
        ana = _user(session, "ana").id
    good = notifications.unsubscribe_token(secret, ana, "comment")
    other = notifications.unsubscribe_token(secret, ana, "all")
    forged = f"{other.partition('.')[0]}.{good.partition('.')[2]}"
    bad_tokens = [
        forged,  # another token's claims under this signature
        good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
        "garbage",
        sign_token(secret, "another-purpose", {"u": ana, "k": "all"}),
        sign_token(
            b"another-secret-that-is-long-enough-0123456789",
            "incidents.unsubscribe",
            {"u": ana, "k": "all"},
        ),
        notifications.unsubscribe_token(secret, ana, "everything"),
        notifications.unsubscribe_token(secret, "x" * 32, "all"),  # no such user
    ]
    for bad in bad_tokens:
        for method in ("GET", "POST"):
            response = client.request(method, f"{INCIDENTS}/unsubscribe", params={"token": bad})
            assert response.status_code == 400, (bad, response.text)
            assert error_of(response)["code"] == "invalid_token"
            assert error_of(response)["details"][0]["field"] == "query.token"
    assert client.post(f"{INCIDENTS}/unsubscribe").status_code == 422
    assert all(client.get(PREFERENCES, headers=people["ana"]).json().values())
    assert client.post(f"{INCIDENTS}/unsubscribe", params={"token": good}).status_code == 200
    assert client.get(PREFERENCES, headers=people["ana"]).json()["comment"] is False


def test_smtp_down_retries_then_shows_notification_failed_on_the_timeline(
    client: TestClient,
    people: People,
    declare: Declare,
    jobs: Jobs,
    mail_settings: Settings,
    smtp_server: SmtpServer,
) -> None:
    number = declare(people["mallory"])["number"]
    smtp_server.stop()

    response = client.post(
        f"{INCIDENTS}/{number}/transition", json={"to": "investigating"}, headers=people["root"]
    )
    assert response.status_code == 200, response.text
    outcomes = jobs.run(mail_settings)

    assert outcomes == ["retry"] * (notifications.MAX_ATTEMPTS - 1) + ["failed"]
    delays = [countdown for _, countdown in jobs.retries]
    assert delays == sorted(delays)
    assert delays[0] > 0
    [row] = _notifications(client.app)  # type: ignore[arg-type]
    assert (row.status, row.attempts) == (DeliveryStatus.FAILED, notifications.MAX_ATTEMPTS)
    assert row.last_error
    assert "cannot reach the SMTP server" in row.last_error
    timeline = client.get(f"{INCIDENTS}/{number}/timeline", headers=people["mallory"]).json()
    failed = [e for e in timeline["items"] if e["kind"] == "notification_failed"]
    assert len(failed) == 1
    assert "Notification failed" in failed[0]["body"]
    assert failed[0]["data"]["recipient"] == "mallory"
    # Nothing else is broken: the incident moves on, and a run again changes nothing.
    assert client.get(f"{INCIDENTS}/{number}", headers=people["root"]).json()["status"] == (
        "investigating"
    )
    jobs.pending.append((notifications.SEND_JOB, (row.id,)))
    assert jobs.run(mail_settings) == ["nothing_to_send"]


def test_a_permanent_refusal_fails_at_once(
    client: TestClient,
    people: People,
    declare: Declare,
    jobs: Jobs,
    mail_settings: Settings,
    smtp_server: SmtpServer,
) -> None:
    smtp_server.refuse["ana@example.com"] = "550 5.1.1 no such mailbox"
    number = declare(people["root"])["number"]
    client.post(f"{INCIDENTS}/{number}/assignees", json={"username": "ana"}, headers=people["root"])
    assert jobs.run(mail_settings) == ["failed"]
    timeline = client.get(f"{INCIDENTS}/{number}/timeline", headers=people["root"]).json()
    assert [e["kind"] for e in timeline["items"]].count("notification_failed") == 1


def test_html_escapes_a_hostile_title(
    client: TestClient,
    people: People,
    declare: Declare,
    jobs: Jobs,
    mail_settings: Settings,
    smtp_server: SmtpServer,
) -> None:
    title = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    number = declare(people["root"], title=title)["number"]
    client.post(f"{INCIDENTS}/{number}/assignees", json={"username": "ana"}, headers=people["root"])
    client.post(f"{INCIDENTS}/{number}/watchers", json={"username": "bob"}, headers=people["root"])
    client.post(
        f"{INCIDENTS}/{number}/comments",
        json={"body": "<b onmouseover=alert(3)>x</b>"},
        headers=people["root"],
    )
    jobs.run(mail_settings)
    assert len(smtp_server.messages) == 2
    for message in smtp_server.messages:
        text, html = _parts(message)
        assert title in text
        assert "<script" not in html
        assert "<img" not in html
        assert "<b " not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "\n" not in str(message["Subject"])


def test_restricted_incidents_never_mail_non_participants(
    client: TestClient,
    people: People,
    declare: Declare,
    jobs: Jobs,
    mail_settings: Settings,
    smtp_server: SmtpServer,
    app: FastAPI,
) -> None:
    number = declare(people["mallory"], visibility="restricted", title="Secret")["number"]
    client.post(f"{INCIDENTS}/{number}/assignees", json={"username": "ana"}, headers=people["root"])
    client.post(
        f"{INCIDENTS}/{number}/transition", json={"to": "investigating"}, headers=people["root"]
    )
    jobs.run(mail_settings)
    assert sorted(_to(m) for m in smtp_server.messages) == [
        "ana@example.com",  # assignment
        "ana@example.com",  # status change
        "mallory@example.com",  # status change (reporter, watcher)
    ]
    with transaction(app.state.sessionmaker) as session:
        incident = incidents.get_incident(session, _user(session, "root"), number)
        eve = _user(session, "eve")
        # Even when asked directly, nothing is queued for somebody who may not see it.
        assert notifications.queue(session, incident, "comment", [eve.id], "x", {}) == 0
        # And a mail queued before somebody lost sight of it is not sent.
        notifications.queue(session, incident, "comment", [_user(session, "ana").id], "x", {})
    client.delete(f"{INCIDENTS}/{number}/assignees/ana", headers=people["root"])
    smtp_server.received.clear()
    jobs.run(mail_settings)
    assert smtp_server.messages == []
    assert "eve@example.com" not in {_to(m) for m in smtp_server.messages}


def _user(session: Session, username: str) -> Any:
    from opsdeck.accounts import service as accounts

    user = accounts.get_active_user_by_username(session, username)
    assert user is not None
    return user


def test_the_daily_digest_lists_what_each_user_may_see(
    client: TestClient,
    people: People,
    declare: Declare,
    jobs: Jobs,
    mail_settings: Settings,
    smtp_server: SmtpServer,
    app: FastAPI,
) -> None:
    public = declare(people["mallory"], title="Public outage", severity="SEV2")["number"]
    secret = declare(people["mallory"], title="Secret breach", visibility="restricted")["number"]
    done = declare(people["mallory"], title="Already fixed")["number"]
    for to in ("investigating", "resolved"):
        client.post(f"{INCIDENTS}/{done}/transition", json={"to": to}, headers=people["root"])
    client.put(PREFERENCES, json={"daily_digest": False}, headers=people["bob"])
    jobs.run(mail_settings)
    smtp_server.received.clear()

    with transaction(app.state.sessionmaker) as session:
        queued = notifications.queue_digests(session, utcnow())
    assert queued == 4  # root, mallory, ana, eve; not bob
    with transaction(app.state.sessionmaker) as session:
        assert notifications.queue_digests(session, utcnow()) == 0  # once a day
    jobs.run(mail_settings)

    digests = {_to(m).split("@")[0]: _parts(m) for m in smtp_server.messages}
    assert sorted(digests) == ["ana", "eve", "mallory", "root"]
    for name, (text, html) in digests.items():
        assert f"INC-{public}" in text
        assert "Public outage" in text
        assert "SEV2" in text
        assert f"{mail_settings.public_base_url}/incidents/{public}" in html
        assert "Already fixed" not in text
        sees_secret = name in ("mallory", "root")
        assert ("Secret breach" in text) is sees_secret, name
        assert ("Secret breach" in html) is sees_secret, name
        assert (f"INC-{secret}" in text) is sees_secret
    assert all("daily digest" in str(m["Subject"]) for m in smtp_server.messages)

    # A day later with nothing changed since: no digest at all.
    with transaction(app.state.sessionmaker) as session:
        assert notifications.queue_digests(session, utcnow() + timedelta(days=2)) == 0


def test_a_follow_up_due_reminds_its_owner_once_a_day(
    client: TestClient,
    people: People,
    declare: Declare,
    jobs: Jobs,
    mail_settings: Settings,
    smtp_server: SmtpServer,
    app: FastAPI,
) -> None:
    number = declare(people["root"], title="Disk full")["number"]
    today = date(2026, 3, 10)
    with transaction(app.state.sessionmaker) as session:
        ana, bob = _user(session, "ana"), _user(session, "bob")
        session.add_all(
            [
                FollowUp(
                    incident_number=number,
                    title="Add alerts",
                    owner_id=ana.id,
                    due_date=today - timedelta(days=2),
                ),
                FollowUp(
                    incident_number=number,
                    title="Due today",
                    owner_id=bob.id,
                    due_date=today,
                    status=FollowUpStatus.IN_PROGRESS,
                ),
                FollowUp(
                    incident_number=number,
                    title="Finished",
                    owner_id=ana.id,
                    due_date=today - timedelta(days=1),
                    status=FollowUpStatus.DONE,
                ),
                FollowUp(
                    incident_number=number,
                    title="Later",
                    owner_id=ana.id,
                    due_date=today + timedelta(days=1),
                ),
                FollowUp(incident_number=number, title="Nobody's", due_date=today),
            ]
        )
    jobs.run(mail_settings)
    smtp_server.received.clear()

    def remind(day: date) -> int:
        with transaction(app.state.sessionmaker) as session:
            return notifications.remind_follow_ups(session, day)

    assert remind(today) == 2
    assert remind(today) == 0  # once a day
    jobs.run(mail_settings)
    subjects = {_to(m): str(m["Subject"]) for m in smtp_server.messages}
    assert subjects == {
        "ana@example.com": f"[INC-{number}] Follow-up due: Add alerts",
        "bob@example.com": f"[INC-{number}] Follow-up due: Due today",
    }
    text, _ = _parts(_mail_to(smtp_server, "ana")[0])
    assert "was due on 2026-03-08" in text
    assert "Disk full" in text

    client.put(PREFERENCES, json={"follow_up_due": False}, headers=people["bob"])
    # The next day: ana's overdue one again and "Later", now due; bob turned reminders off.
    assert remind(today + timedelta(days=1)) == 2


def test_a_change_that_rolls_back_queues_nothing(
    app: FastAPI, people: People, declare: Declare
) -> None:
    number = declare(people["mallory"])["number"]
    with app.state.sessionmaker() as session:
        before = session.scalar(select(func.count()).select_from(JobOutbox)) or 0
        incidents.transition(session, _user(session, "root"), number, IncidentStatus.INVESTIGATING)
        assert session.scalar(select(func.count()).select_from(Notification)) == 1
        assert (session.scalar(select(func.count()).select_from(JobOutbox)) or 0) > before
        session.rollback()
    with app.state.sessionmaker() as session:
        assert session.scalar(select(func.count()).select_from(Notification)) == 0


def test_without_an_smtp_host_the_worker_writes_eml_files(
    client: TestClient,
    people: People,
    declare: Declare,
    settings: Settings,
    celery_worker: ManagedProcess,
) -> None:
    """The whole way: the request's outbox, the broker, the real worker, the .eml file."""
    assert not settings.smtp_host
    number = declare(people["root"], title="Mail to a file")["number"]
    client.post(f"{INCIDENTS}/{number}/assignees", json={"username": "ana"}, headers=people["root"])

    def written() -> EmailMessage | None:
        for path in sorted(settings.mail_dir.glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if f"[INC-{number}] You are now assignee: Mail to a file" == message["Subject"]:
                return message
        return None

    message = wait_until(
        written, timeout=60, message="the .eml file", diagnostics=celery_worker.diagnostics
    )
    assert _to(message) == "ana@example.com"
    text, html = _parts(message)
    assert "Mail to a file" in text
    assert "Mail to a file" in html
    wait_until(
        lambda: all(n.status == DeliveryStatus.DELIVERED for n in _notifications(client.app)),  # type: ignore[arg-type]
        timeout=30,
        message="the notification marked sent",
    )


def test_a_status_change_by_an_integration_reaches_every_watcher(
    app: FastAPI,
    people: People,
    declare: Declare,
    jobs: Jobs,
    mail_settings: Settings,
    smtp_server: SmtpServer,
) -> None:
    number = declare(people["mallory"])["number"]
    with transaction(app.state.sessionmaker) as session:
        incident = incidents.get_incident(session, _user(session, "root"), number)
        incidents.transition(session, None, number, IncidentStatus.INVESTIGATING, incident=incident)
    jobs.run(mail_settings)
    [message] = smtp_server.messages
    assert _to(message) == "mallory@example.com"
    text, _ = _parts(message)
    assert text.startswith(f"An integration moved INC-{number} from triage to investigating.")
