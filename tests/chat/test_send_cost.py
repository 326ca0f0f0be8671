"""What keeps a send cheap without giving up its guarantees: the statements of one send, the
counter's guard (membership checked again when the number is taken), resends found by the
client id's constraint without a gap in the numbers, the `unread` push's counts read in a
few queries but equal to the per-user counts, and the heartbeat signing each credential in
once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, select, update

from opsdeck.accounts import service as accounts
from opsdeck.chat import service
from opsdeck.chat.events import NAMESPACE, ChatNamespace, Connection, SocketUser
from opsdeck.chat.models import Conversation, Member, Message
from opsdeck.chat.presenters import sent_message_out
from opsdeck.chat.schemas import UserRef
from opsdeck.chat.service import messages as messages_service
from opsdeck.core.db import transaction
from opsdeck.core.errors import AppError
from tests.chat.conftest import CHAT, Person, RoomFactory, Sender


def _actor(person: Person) -> SocketUser:
    return SocketUser(id=person.id, username=person.username, is_admin=False)


@contextmanager
def _statements(app: FastAPI, *, any_thread: bool = False) -> Iterator[list[str]]:
    """The statements this thread runs (the app's background threads, such as the outbox
    relay polling its table, use the same engine), or every thread's."""
    seen: list[str] = []
    caller = threading.get_ident()

    def hook(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        mine = any_thread or threading.get_ident() == caller
        if mine and not statement.startswith("BEGIN"):
            seen.append(" ".join(statement.split()))

    engine = app.state.engine
    event.listen(engine, "before_cursor_execute", hook)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", hook)


def _send(app: FastAPI, person: Person, room_id: str, client_id: str, body: str) -> Any:
    with transaction(app.state.sessionmaker) as session:
        sent = service.send_message(
            session, _actor(person), room_id, client_id=client_id, body=body
        )
        author = UserRef(
            id=person.id, username=person.username, display_name=person.username.title()
        )
        return sent_message_out(session, sent, author=author).model_dump(mode="json")


def test_a_send_is_one_read_and_its_writes(
    app: FastAPI, client: TestClient, alice: Person, bob: Person, make_room: RoomFactory
) -> None:
    room = make_room(alice, joined=(bob,))
    _send(app, bob, room["id"], "warm", "the first")
    with _statements(app) as seen:
        answer = _send(app, bob, room["id"], "plain", "plain words, no mention")
    assert answer["seq"] == 2
    kinds = [statement.split()[0] for statement in seen]
    # The conversation and the membership in one read; the counter, the message (`ON
    # CONFLICT DO NOTHING`: a resend writes nothing, no savepoint needed), the search entry and
    # the sender's read pointer. The author of the answer is the sender, known without a query.
    assert kinds == ["SELECT", "UPDATE", "INSERT", "INSERT", "UPDATE"], seen
    assert "ON CONFLICT" in seen[2], seen
    assert not any("FROM users" in statement for statement in seen), seen


def test_mentions_are_read_in_one_query_whatever_the_number_of_names(
    app: FastAPI,
    client: TestClient,
    alice: Person,
    bob: Person,
    eve: Person,
    make_room: RoomFactory,
) -> None:
    room = make_room(alice, joined=(bob,))
    with _statements(app) as seen:
        answer = _send(app, alice, room["id"], "m-1", "@bob @eve @nobody and @room, see @bob")
    # Bob is a member; eve is not (plain text); nobody does not exist.
    assert answer["mentions"] == [bob.id], answer
    assert 'data-user-id="' + bob.id + '"' in answer["body_html"], answer
    named = [s for s in seen if s.startswith("SELECT") and "users" in s]
    assert len(named) == 1, seen
    # Read, the room's size (@room), the names; the writes: counter, message, search entry,
    # the mention, the mail notices, the read pointer.
    assert len(seen) == 9, seen


def test_the_counter_refuses_a_sender_removed_after_the_read(
    app: FastAPI,
    client: TestClient,
    alice: Person,
    bob: Person,
    make_room: RoomFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    room = make_room(alice, joined=(bob,))
    # Bob's membership as read just before a moderator banned him (another transaction).
    with transaction(app.state.sessionmaker) as session:
        stale = service.require_member(session, _actor(bob), room["id"])
    banned = client.post(
        f"{CHAT}/rooms/{room['id']}/bans", json={"user_id": bob.id}, headers=alice.headers
    )
    assert banned.status_code == 204, banned.text
    real = service.require_member
    calls: list[int] = []

    def read_before_the_ban(session: Any, actor: Any, conversation_id: str) -> Any:
        calls.append(1)
        if len(calls) == 1:
            conversation = session.get(Conversation, stale[0].id)
            return conversation, stale[1]
        return real(session, actor, conversation_id)

    monkeypatch.setattr(messages_service, "require_member", read_before_the_ban)
    with pytest.raises(AppError) as refused:
        _send(app, bob, room["id"], "late", "sent after the ban")
    assert refused.value.code == "room_not_found"
    assert len(calls) == 2
    with transaction(app.state.sessionmaker) as session:
        assert session.get_one(Conversation, room["id"]).next_seq == 0
        assert session.scalars(select(Message)).all() == []


def test_outsiders_sends_are_refused_and_take_no_number(
    app: FastAPI,
    client: TestClient,
    alice: Person,
    eve: Person,
    make_room: RoomFactory,
) -> None:
    public = make_room(alice, name="open")
    private = make_room(alice, name="closed", visibility="private")
    for room, code in ((public, "not_a_member"), (private, "room_not_found")):
        with pytest.raises(AppError) as refused:
            _send(app, eve, room["id"], "sneak", "hello")
        assert refused.value.code == code
    assert _send(app, alice, public["id"], "real", "mine")["seq"] == 1


def _conversation(app: FastAPI, room_id: str) -> tuple[int, Any]:
    with transaction(app.state.sessionmaker) as session:
        conversation = session.get_one(Conversation, room_id)
        return conversation.next_seq, conversation.last_activity_at


def test_a_resend_takes_no_number_and_is_answered_after_the_archive(
    app: FastAPI, client: TestClient, alice: Person, make_room: RoomFactory
) -> None:
    room = make_room(alice)
    first = _send(app, alice, room["id"], "c-1", "one")
    before = _conversation(app, room["id"])
    assert before[0] == 1
    again = _send(app, alice, room["id"], "c-1", "one, edited in the outbox")
    assert again == first
    # The number taken for the resend was given back, and the room's last activity is still
    # its message's time (the room list's order does not move on a resend).
    assert _conversation(app, room["id"]) == before
    assert _send(app, alice, room["id"], "c-2", "two")["seq"] == 2
    archived = client.post(f"{CHAT}/rooms/{room['id']}/archive", headers=alice.headers)
    assert archived.status_code == 200, archived.text
    assert _send(app, alice, room["id"], "c-2", "two")["seq"] == 2
    with pytest.raises(AppError) as refused:
        _send(app, alice, room["id"], "c-3", "three")
    assert refused.value.code == "room_archived"


def test_the_unread_push_counts_what_each_member_would_read(
    app: FastAPI,
    client: TestClient,
    alice: Person,
    bob: Person,
    eve: Person,
    make_room: RoomFactory,
    send: Sender,
) -> None:
    room_id = make_room(alice, joined=(bob, eve))["id"]
    send(alice, room_id, "hi @bob")
    send(bob, room_id, "hello")
    send(eve, room_id, "@room the deploy starts")
    gone = send(alice, room_id, "@eve a mistake")
    send(alice, room_id, "@bob and @eve again")
    send(bob, room_id, "@room and @eve")
    assert client.delete(f"{CHAT}/messages/{gone['id']}", headers=alice.headers).status_code == 200
    read = client.post(f"{CHAT}/rooms/{room_id}/read", json={"seq": 2}, headers=eve.headers)
    assert read.status_code == 200
    with transaction(app.state.sessionmaker) as session:
        # An author's own message after their pointer does not count for them (the pointer
        # normally follows their sends; set back here to try it).
        session.execute(
            update(Member)
            .where(Member.conversation_id == room_id, Member.user_id == bob.id)
            .values(last_read_seq=1)
        )
    with transaction(app.state.sessionmaker) as session:
        states = {s.user_id: s for s in service.unread_for_members(session, room_id)}
        assert set(states) == {alice.id, bob.id, eve.id}
        for person in (alice, bob, eve):
            state = states[person.id]
            expected_unread = service.unread_counts(session, person.id, [room_id]).get(room_id, 0)
            expected_mentions = service.mention_counts(session, person.id, [room_id]).get(
                room_id, 0
            )
            assert (state.unread, state.mentions) == (expected_unread, expected_mentions), person
        # What the counts are, worked out by hand: bob from seq 1 (his own 2 and 6 left out,
        # 4 deleted): 3 and 5, both mentioning him or the room; eve from 3, her own (a read
        # never moves a pointer back), 4 deleted: 5 and 6, both mentioning her.
        assert (states[bob.id].unread, states[bob.id].mentions) == (2, 2)
        assert (states[eve.id].unread, states[eve.id].mentions) == (2, 2)
        without_bob = service.unread_for_members(session, room_id, except_user_id=bob.id)
        assert {s.user_id for s in without_bob} == {alice.id, eve.id}


def test_the_heartbeat_signs_each_credential_in_once(
    app: FastAPI,
    client: TestClient,
    alice: Person,
    bob: Person,
    make_room: RoomFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chat = app.state.sockets.server.namespace_handlers[NAMESPACE]
    assert isinstance(chat, ChatNamespace)
    # Alice's tabs use an API token (read by a query each time it is checked), bob an access
    # token.
    with transaction(app.state.sessionmaker) as session:
        user = accounts.users_by_id(session, {alice.id})[alice.id]
        alice_token = accounts.create_api_token(session, user, name="tabs").token
    bob_token = bob.headers["Authorization"].removeprefix("Bearer ")
    disconnected: list[str] = []
    saved: dict[str, Any] = {}

    async def disconnect(sid: str, **_kwargs: Any) -> None:
        disconnected.append(sid)

    async def save_session(sid: str, session: Any, namespace: str | None = None) -> None:
        saved[sid] = session

    monkeypatch.setattr(chat.context.hub.server, "disconnect", disconnect)
    monkeypatch.setattr(chat, "save_session", save_session)

    def connections(tabs: int) -> dict[str, Connection]:
        found = {
            f"alice-{n}": Connection(user=_actor(alice), token=alice_token, cookie=None)
            for n in range(tabs)
        }
        found["bob"] = Connection(user=_actor(bob), token=bob_token, cookie=None)
        found["forged"] = Connection(user=_actor(bob), token="not-a-token", cookie=None)
        return found

    counts = []
    for tabs in (1, 5):
        disconnected.clear()
        chat.connections = connections(tabs)
        with _statements(app, any_thread=True) as seen:
            asyncio.run(chat._beat())
        counts.append(len([s for s in seen if s.startswith("SELECT") and "api_tokens" in s]))
        assert disconnected == ["forged"]
    # Alice's token is read once whether one tab or five use it.
    assert counts == [1, 1], counts
    # The connection's user is as the heartbeat found them: a new display name is used.
    assert chat.connections["bob"].user.display_name == "Bob"
    assert saved["bob"] == {"user": chat.connections["bob"].user}
