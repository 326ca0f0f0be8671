"""Mentions and incident links in messages: `@member` and `@room` parsed at send and edit,
stored, counted per room for the reader until read; `INC-42` linked; nothing inside code or
links; hostile input stays inert."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from fastapi.testclient import TestClient

from opsdeck.chat.service.mentions import ROOM_MENTION_OPEN_SIZE
from tests.chat.conftest import CHAT, Person, RoomFactory, Sender
from tests.conftest import UserFactory, sign_in


def _room(client: TestClient, person: Person, room_id: str) -> Any:
    response = client.get(f"{CHAT}/rooms/{room_id}", headers=person.headers)
    assert response.status_code == 200, response.text
    return response.json()


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


def _elements(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """The real elements of an HTML fragment (escaped text is text)."""
    parser = _Elements()
    parser.feed(html)
    return parser.found


def test_members_are_mentioned_and_counted_until_read(
    client: TestClient,
    alice: Person,
    bob: Person,
    eve: Person,
    make_room: RoomFactory,
    send: Sender,
) -> None:
    room = make_room(alice, joined=(bob,))
    # Eve is not in the room: her name stays text. Nobody called "nobody" exists.
    message = send(alice, room["id"], "@bob and @eve, see @nobody; @alice too. @BOB again")
    assert message["mentions"] == [bob.id]
    assert message["mentions_room"] is False
    html = message["body_html"]
    assert f'<span class="mention" data-user-id="{bob.id}">@bob</span>' in html
    assert f'<span class="mention" data-user-id="{bob.id}">@BOB</span>' in html
    assert "@eve" in html
    assert eve.id not in html
    # Yourself: shown as a member's name, counted for nothing.
    assert f'data-user-id="{alice.id}">@alice</span>' in html
    send(alice, room["id"], "no mention here")
    send(alice, room["id"], "@bob again")

    seen = _room(client, bob, room["id"])
    assert (seen["unread"], seen["mentions"]) == (3, 2)
    listed = client.get(f"{CHAT}/rooms", headers=bob.headers).json()["items"]
    assert [r["mentions"] for r in listed if r["id"] == room["id"]] == [2]
    assert _room(client, alice, room["id"])["mentions"] == 0

    read = client.post(f"{CHAT}/rooms/{room['id']}/read", json={"seq": 2}, headers=bob.headers)
    assert read.json()["mentions"] == 1
    read = client.post(f"{CHAT}/rooms/{room['id']}/read", json={"seq": 3}, headers=bob.headers)
    assert read.json() == {"room_id": room["id"], "last_read_seq": 3, "unread": 0, "mentions": 0}


def test_an_edit_changes_who_is_mentioned_and_a_deleted_mention_no_longer_counts(
    client: TestClient, alice: Person, bob: Person, make_room: RoomFactory, send: Sender
) -> None:
    room = make_room(alice, joined=(bob,))
    message = send(alice, room["id"], "hello")
    assert message["mentions"] == []
    edited = client.patch(
        f"{CHAT}/messages/{message['id']}", json={"body": "hello @bob"}, headers=alice.headers
    ).json()
    assert edited["mentions"] == [bob.id]
    assert _room(client, bob, room["id"])["mentions"] == 1
    edited = client.patch(
        f"{CHAT}/messages/{message['id']}", json={"body": "hello `@bob`"}, headers=alice.headers
    ).json()
    assert edited["mentions"] == []
    assert "<code>@bob</code>" in edited["body_html"]
    assert _room(client, bob, room["id"])["mentions"] == 0

    other = send(alice, room["id"], "@bob look")
    assert _room(client, bob, room["id"])["mentions"] == 1
    client.delete(f"{CHAT}/messages/{other['id']}", headers=alice.headers)
    assert _room(client, bob, room["id"])["mentions"] == 0


def test_room_mentions_everybody_in_small_rooms_and_only_moderators_in_big_ones(
    client: TestClient,
    alice: Person,
    bob: Person,
    make_room: RoomFactory,
    make_user: UserFactory,
    send: Sender,
) -> None:
    room = make_room(alice, joined=(bob,))
    everyone = send(bob, room["id"], "@room standup in 5")
    assert everyone["mentions_room"] is True
    assert '<span class="mention mention-room">@room</span>' in everyone["body_html"]
    assert _room(client, alice, room["id"])["mentions"] == 1
    assert _room(client, bob, room["id"])["mentions"] == 0  # not their own

    for n in range(ROOM_MENTION_OPEN_SIZE):
        make_user(f"crowd{n}")
        headers = sign_in(client, f"crowd{n}")
        assert client.post(f"{CHAT}/rooms/{room['id']}/join", headers=headers).status_code == 200
    plain = send(bob, room["id"], "@room anyone?")
    assert plain["mentions_room"] is False
    assert "mention" not in plain["body_html"]
    owner = send(alice, room["id"], "@room please read the runbook")
    assert owner["mentions_room"] is True


def test_incident_numbers_become_links_but_not_in_code_or_links(
    client: TestClient, alice: Person, bob: Person, make_room: RoomFactory, send: Sender
) -> None:
    room = make_room(alice, joined=(bob,))
    html = send(alice, room["id"], "INC-42 is INC-7's twin, not XINC-3 or INC-5x")["body_html"]
    assert html == (
        '<p><a href="/incidents/42" rel="noopener noreferrer nofollow">INC-42</a> is '
        '<a href="/incidents/7" rel="noopener noreferrer nofollow">INC-7</a>\'s twin, '
        "not XINC-3 or INC-5x</p>\n"
    )
    html = send(alice, room["id"], "`INC-1 @bob` and [INC-2 @bob](https://example.com)")[
        "body_html"
    ]
    assert "/incidents/" not in html
    assert "mention" not in html
    assert "<code>INC-1 @bob</code>" in html
    block = send(alice, room["id"], "```\nINC-9 @bob\n```")
    assert block["mentions"] == []
    assert "/incidents/9" not in block["body_html"]


def test_hostile_input_stays_inert(
    client: TestClient, alice: Person, bob: Person, make_room: RoomFactory, send: Sender
) -> None:
    room = make_room(alice, joined=(bob,))
    hostile = [
        '<span class="mention" data-user-id="x" onclick="alert(1)">@bob</span>',
        '<a href="javascript:alert(1)">INC-1</a>',
        'INC-1" onmouseover="alert(1)',
        "@bob<script>alert(1)</script>",
        "[click](javascript:alert(1)) @bob",
        "<img src=x onerror=alert(1)> INC-3",
    ]
    for body in hostile:
        html = send(alice, room["id"], body)["body_html"]
        for tag, attributes in _elements(html):
            assert tag in {"p", "a", "span", "code"}, (body, html)
            names = {name for name, _value in attributes}
            assert not any(name.startswith("on") for name in names), (body, html)
            values = dict(attributes)
            if tag == "a":
                assert (values.get("href") or "").startswith("/incidents/"), (body, html)
            if tag == "span":
                assert values.get("data-user-id") in (None, bob.id), (body, html)
    # The raw HTML is shown as text; the mention inside it is still a real mention of bob.
    first = send(alice, room["id"], hostile[0])
    assert first["body_html"].startswith('<p>&lt;span class="mention" data-user-id="x"')
    assert first["mentions"] == [bob.id]
