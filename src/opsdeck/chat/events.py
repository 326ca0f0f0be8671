"""The `/chat` Socket.IO namespace (docs/chat.md has the table of events and payloads).

- Connecting authenticates like the API: `auth: {token}` (an access token or an `opd_` API
  token), else the `opsdeck_session` cookie, which is accepted only from an allowed Origin
  (this app's, or OPSDECK_CORS_ORIGINS). A refusal is a `connect_error` with a reason.
- Every event is answered through its ack with `{ok: true, ...}` or
  `{ok: false, error: {code, message}}`: a bad payload, a refusal, even a bug, never a
  disconnect. The sender is the connection's user, never a field of the payload, and
  membership is checked on every event (it may have changed since the room was joined).
- Database work runs in a thread, one unit of work per event (core.sockets.in_transaction);
  so does a rate limit's Redis round trip (never on the event loop).
- A send is acknowledged as soon as its transaction has committed; its `message:new` goes out
  after the ack, through `RoomBroadcasts` (one conversation's events one at a time, in the
  order they were handed over). The members' `unread` counts follow at most every
  UNREAD_DELAY_SECONDS per conversation (`UnreadPushes`), one emit per distinct payload.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from typing import Any, TypeVar

import socketio
import structlog
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session, sessionmaker

from opsdeck.accounts import service as accounts
from opsdeck.accounts.dependencies import SESSION_COOKIE
from opsdeck.chat import service
from opsdeck.chat.presenters import message_out, messages_out, sent_message_out
from opsdeck.chat.schemas import (
    DeleteEvent,
    EditEvent,
    LiveEvent,
    PresenceEvent,
    ReactionEvent,
    ReadEvent,
    RoomEvent,
    SendEvent,
    SyncEvent,
    UserRef,
)
from opsdeck.chat.service import live as live_topics
from opsdeck.chat.service.presence import Presence, presence_store, sharing_user_ids
from opsdeck.chat.service.unread import UnreadState, unread_for_members
from opsdeck.core import live
from opsdeck.core.errors import AppError, Unauthorized, is_database_unavailable
from opsdeck.core.ratelimit import Decision, RateLimit, rate_limiter
from opsdeck.core.sockets import SocketContext, SocketHub, in_transaction, origin_allowed
from opsdeck.settings import Settings

NAMESPACE = "/chat"
# Joins, leaves, syncs, reads, edits and deletes share one bucket per user (sends and typing
# have their own, from settings): a flood of joins is answered `rate_limited`, not served.
EVENT_LIMIT = RateLimit("chat.event", 100, 10.0)
# Reactions and presence changes per user.
REACTION_LIMIT = RateLimit("chat.reaction", 30, 10.0)
PRESENCE_LIMIT = RateLimit("chat.presence", 20, 10.0)
MAX_TOKEN_LENGTH = 4096
# Live topics one connection may follow at once.
MAX_LIVE_TOPICS = 200
# The live-bus topic of chat's own messages between web processes (evictions).
CONTROL_TOPIC = "chat:control"
# After a new message, the members' `unread` counts are pushed once this delay has passed:
# every message of the conversation in the meantime is in the same push.
UNREAD_DELAY_SECONDS = 0.25
# Credentials signed in again per transaction at a heartbeat.
SIGN_IN_CHUNK = 100
log = structlog.get_logger("opsdeck.chat.events")
P = TypeVar("P", bound=BaseModel)
Ack = dict[str, Any]


def conversation_room(conversation_id: str) -> str:
    return f"conversation:{conversation_id}"


def user_room(user_id: str) -> str:
    return f"user:{user_id}"


def live_room(topic: str) -> str:
    return f"live:{topic}"


@dataclass(frozen=True)
class SocketUser:
    """The connection's user, as the chat service reads it (`service.Actor`)."""

    id: str
    username: str
    is_admin: bool
    # Shown as the author of what they send; refreshed at every heartbeat.
    display_name: str = ""


def _socket_user(user: Any) -> SocketUser:
    return SocketUser(
        id=user.id, username=user.username, is_admin=user.is_admin, display_name=user.display_name
    )


class EventError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def ok(**fields: Any) -> Ack:
    return {"ok": True, **fields}


def failed(code: str, message: str) -> Ack:
    return {"ok": False, "error": {"code": code, "message": message}}


def allowed(decision: Decision) -> None:
    """Refuse an event the rate limiter refused (`rate_limited`)."""
    if not decision.allowed:
        raise EventError("rate_limited", f"Slow down; try again in {decision.retry_after} s.")


def _parse(model: type[P], data: Any) -> P:
    if not isinstance(data, Mapping):
        raise EventError("invalid_payload", "The payload must be an object.")
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'payload'}: {error['msg']}"
            for error in exc.errors(include_url=False)[:5]
        )
        raise EventError("invalid_payload", problems) from None


def _cookie(environ: Mapping[str, Any]) -> str | None:
    raw = environ.get("HTTP_COOKIE")
    if not raw:
        return None
    try:
        jar = SimpleCookie(str(raw))
    except CookieError:
        return None
    morsel = jar.get(SESSION_COOKIE)
    return morsel.value if morsel is not None and morsel.value else None


def _refuse(code: str, message: str) -> socketio.exceptions.ConnectionRefusedError:
    return socketio.exceptions.ConnectionRefusedError(message, {"code": code})


Handler = Callable[[str, SocketUser, Any], Awaitable[Ack]]


@dataclass
class Connection:
    """A connection held by this process: who, how they signed in (checked again at every
    heartbeat), their presence and the live topics they follow."""

    user: SocketUser
    token: str | None
    cookie: str | None
    status: Presence = Presence.ONLINE
    topics: set[str] = field(default_factory=set)


class ChatNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    def __init__(self, context: SocketContext) -> None:
        super().__init__(NAMESPACE)
        self.context = context
        self.connections: dict[str, Connection] = {}
        # Work started by an event that must outlive it (a reference keeps each task alive).
        self._tasks: set[asyncio.Task[None]] = set()
        self.presence = presence_store(context.settings)
        self.broadcasts = RoomBroadcasts(self._emit_to_room)
        self.unread = UnreadPushes(
            context.hub.server, context.sessionmaker, settings=context.settings
        )
        context.hub.on_start(self._start)
        self.handlers: dict[str, Handler] = {
            "room:join": self.room_join,
            "room:leave": self.room_leave,
            "message:send": self.message_send,
            "message:edit": self.message_edit,
            "message:delete": self.message_delete,
            "typing": self.typing,
            "read": self.read,
            "sync": self.sync,
            "reaction:toggle": self.reaction_toggle,
            "presence": self.presence_event,
            "live:subscribe": self.live_subscribe,
            "live:unsubscribe": self.live_unsubscribe,
        }

    # -- dispatch ------------------------------------------------------------------------

    async def trigger_event(self, event: str, *args: Any) -> Any:
        if event == "connect":
            await self.connect(args[0], args[1], args[2] if len(args) > 2 else None)
            return True
        if event == "disconnect":
            await self.disconnected(args[0])
            return None
        sid = args[0]
        data = args[1] if len(args) > 1 else None
        handler = self.handlers.get(event)
        if handler is None:
            return failed("unknown_event", f"There is no event {event[:64]!r} on {NAMESPACE}.")
        session = await self.get_session(sid)
        user = session.get("user") if isinstance(session, dict) else None
        if not isinstance(user, SocketUser):
            return failed("not_authenticated", "Connect with a token or a session first.")
        try:
            return await handler(sid, user, data)
        except EventError as exc:
            return failed(exc.code, exc.message)
        except AppError as exc:
            return failed(exc.code, exc.message)
        except Exception as exc:
            if is_database_unavailable(exc):
                log.warning("chat_event_database_unavailable", socket_event=event)
                return failed("unavailable", "The database is not answering; try again soon.")
            log.exception("chat_event_failed", socket_event=event, user_id=user.id)
            return failed("internal_error", "Something went wrong on the server; try again.")

    async def _work(self, work: Callable[[Session], Any], *, read_only: bool = False) -> Any:
        return await in_transaction(self.context.sessionmaker, work, read_only=read_only)

    async def _limit(self, limit: RateLimit, user: SocketUser) -> None:
        allowed(await rate_limiter(self.context.settings).hit_async(limit, user.id))

    # -- connect ---------------------------------------------------------------------------

    async def connect(self, sid: str, environ: Mapping[str, Any], auth: Any) -> None:
        token = auth.get("token") if isinstance(auth, Mapping) else None
        if token is not None and (not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH):
            raise _refuse("not_authenticated", "auth.token must be a string.")
        cookie = None if token else _cookie(environ)
        if not token and not cookie:
            raise _refuse(
                "not_authenticated", "Connect with auth: {token} or a signed-in session cookie."
            )
        if cookie and not origin_allowed(self.context.settings, environ):
            raise _refuse(
                "origin_not_allowed",
                "A session cookie is accepted only from this site's own pages (Origin).",
            )
        settings = self.context.settings

        def authenticate(session: Session) -> SocketUser:
            if token:
                principal = accounts.authenticate_bearer(session, settings, token)
            else:
                principal = accounts.authenticate_cookie(session, cookie or "")
            return _socket_user(principal.user)

        try:
            user = await self._work(authenticate)
        except Unauthorized as exc:
            raise _refuse(exc.code, exc.message) from None
        except Exception as exc:
            # Never an unhandled error in the server's connect path: a refusal that says so.
            if not is_database_unavailable(exc):
                log.exception("chat_connect_failed")
            raise _refuse("unavailable", "The server cannot sign you in now; try again.") from None
        await self.save_session(sid, {"user": user})
        await self.enter_room(sid, user_room(user.id))
        self.connections[sid] = Connection(user=user, token=token or None, cookie=cookie)
        # After this handler returns the server sends the connect ack; an event emitted in here
        # (presence reaches the user's own connections too) would go out before it, which the
        # Socket.IO protocol does not allow and strict clients refuse. So: just after.
        task = asyncio.ensure_future(self._announce_connected(sid, user))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _announce_connected(self, sid: str, user: SocketUser) -> None:
        await asyncio.sleep(0)
        if sid in self.connections:
            await self._set_presence(sid, user, Presence.ONLINE)

    async def disconnected(self, sid: str) -> None:
        connection = self.connections.pop(sid, None)
        if connection is None:
            return
        user = connection.user
        await self._change_presence(user, lambda: self.presence.drop(user.id, sid))

    # -- events ----------------------------------------------------------------------------

    async def room_join(self, sid: str, user: SocketUser, data: Any) -> Ack:
        await self._limit(EVENT_LIMIT, user)
        payload = _parse(RoomEvent, data)
        settings = self.context.settings

        def join(session: Session) -> Ack:
            conversation, member = service.join_room(session, settings, user, payload.room_id)
            unread = service.unread_counts(session, user.id, [conversation.id])
            mentions = service.mention_counts(session, user.id, [conversation.id])
            return ok(
                room_id=conversation.id,
                last_seq=conversation.next_seq,
                last_read_seq=member.last_read_seq,
                unread=unread.get(conversation.id, 0),
                mentions=mentions.get(conversation.id, 0),
            )

        answer: Ack = await self._work(join)
        await self.enter_room(sid, conversation_room(payload.room_id))
        return answer

    async def room_leave(self, sid: str, user: SocketUser, data: Any) -> Ack:
        await self._limit(EVENT_LIMIT, user)
        payload = _parse(RoomEvent, data)
        # Stops the live events on this connection; membership is left over REST.
        await self.leave_room(sid, conversation_room(payload.room_id))
        return ok(room_id=payload.room_id)

    async def message_send(self, sid: str, user: SocketUser, data: Any) -> Ack:
        payload = _parse(SendEvent, data)
        settings = self.context.settings
        limit = service.send_limit(settings)
        limiter = rate_limiter(settings)

        def send(session: Session) -> tuple[dict[str, Any], bool]:
            # Here, in the worker thread: in distributed mode the limiter is a Redis call.
            allowed(limiter.hit(limit, user.id))
            sent = service.send_message(
                session,
                user,
                payload.room_id,
                client_id=payload.client_id,
                body=payload.body,
                reply_to=payload.reply_to,
                attachment_ids=payload.attachment_ids,
            )
            author = UserRef(id=user.id, username=user.username, display_name=user.display_name)
            answer = sent_message_out(session, sent, author=author)
            return answer.model_dump(mode="json"), sent.created

        message, created = await self._work(send)
        if created:
            # Committed: the ack goes out when this returns, the broadcast after it.
            self.message_created(message, user.id)
        return ok(id=message["id"], seq=message["seq"], duplicate=not created, message=message)

    def message_created(self, message: dict[str, Any], author_id: str | None) -> None:
        """A new message has committed (a socket or REST send): `message:new` to the
        conversation, then the members' `unread` counts."""
        room_id = str(message["room_id"])
        self.broadcasts.push(conversation_room(room_id), "message:new", message)
        self.unread.note(room_id, author_id, int(message["seq"]))

    async def _emit_to_room(self, room: str, event: str, payload: dict[str, Any]) -> None:
        await self.context.hub.server.emit(event, payload, to=room, namespace=NAMESPACE)

    async def message_edit(self, sid: str, user: SocketUser, data: Any) -> Ack:
        await self._limit(EVENT_LIMIT, user)
        payload = _parse(EditEvent, data)

        def edit(session: Session) -> dict[str, Any]:
            message = service.edit_message(session, user, payload.id, payload.body)
            return message_out(session, message).model_dump(mode="json")

        message = await self._work(edit)
        self.broadcasts.push(conversation_room(message["room_id"]), "message:edited", message)
        return ok(id=message["id"], seq=message["seq"], message=message)

    async def message_delete(self, sid: str, user: SocketUser, data: Any) -> Ack:
        await self._limit(EVENT_LIMIT, user)
        payload = _parse(DeleteEvent, data)

        def delete(session: Session) -> dict[str, Any]:
            message = service.delete_message(session, user, payload.id)
            return message_out(session, message).model_dump(mode="json")

        message = await self._work(delete)
        self.broadcasts.push(conversation_room(message["room_id"]), "message:deleted", message)
        return ok(id=message["id"], seq=message["seq"])

    async def typing(self, sid: str, user: SocketUser, data: Any) -> Ack:
        payload = _parse(RoomEvent, data)
        await self._limit(service.typing_limit(self.context.settings), user)

        def check(session: Session) -> None:
            service.require_member(session, user, payload.room_id)

        await self._work(check)
        await self.emit(
            "typing",
            {"room_id": payload.room_id, "user": {"id": user.id, "username": user.username}},
            room=conversation_room(payload.room_id),
            skip_sid=sid,
        )
        return ok()

    async def read(self, sid: str, user: SocketUser, data: Any) -> Ack:
        await self._limit(EVENT_LIMIT, user)
        payload = _parse(ReadEvent, data)

        def mark(session: Session) -> dict[str, Any]:
            unread = service.mark_read(session, user, payload.room_id, payload.seq)
            member = service.active_member(session, payload.room_id, user.id)
            mentions = service.mention_count(session, payload.room_id, [user.id])
            return {
                "room_id": payload.room_id,
                "unread": unread,
                "mentions": mentions.get(user.id, 0),
                "last_read_seq": member.last_read_seq if member is not None else 0,
            }

        state = await self._work(mark)
        # The user's other tabs and devices.
        await self.emit("unread", state, room=user_room(user.id), skip_sid=sid)
        return ok(**state)

    async def sync(self, sid: str, user: SocketUser, data: Any) -> Ack:
        await self._limit(EVENT_LIMIT, user)
        payload = _parse(SyncEvent, data)

        def catch_up(session: Session) -> tuple[list[dict[str, Any]], bool]:
            rows, more = service.sync(session, user, payload.room_id, payload.after_seq)
            return [m.model_dump(mode="json") for m in messages_out(session, rows)], more

        messages, more = await self._work(catch_up, read_only=True)
        return ok(room_id=payload.room_id, messages=messages, more=more)

    async def reaction_toggle(self, sid: str, user: SocketUser, data: Any) -> Ack:
        await self._limit(REACTION_LIMIT, user)
        payload = _parse(ReactionEvent, data)

        def toggle(session: Session) -> dict[str, Any]:
            toggled = service.toggle_reaction(session, user, payload.id, payload.emoji)
            return reaction_payload(session, toggled, user, payload.emoji)

        event = await self._work(toggle)
        self.broadcasts.push(conversation_room(event["room_id"]), "reaction", event)
        return ok(id=event["id"], reactions=event["reactions"])

    # -- presence ----------------------------------------------------------------------------

    async def presence_event(self, sid: str, user: SocketUser, data: Any) -> Ack:
        await self._limit(PRESENCE_LIMIT, user)
        payload = _parse(PresenceEvent, data)
        await self._set_presence(sid, user, Presence(payload.status))
        return ok()

    async def _set_presence(self, sid: str, user: SocketUser, status: Presence) -> None:
        connection = self.connections.get(sid)
        if connection is not None:
            connection.status = status
        await self._change_presence(user, lambda: self.presence.touch(user.id, sid, status))

    async def _change_presence(self, user: SocketUser, change: Callable[[], Presence]) -> None:
        """Apply `change` to the store (in a thread) and announce the user's new presence when
        it differs. Presence is best effort: a Redis blink costs an announcement, never the
        connection or the event."""

        def run() -> tuple[Presence, Presence]:
            before = self.presence.statuses([user.id]).get(user.id, Presence.OFFLINE)
            return before, change()

        try:
            before, after = await asyncio.to_thread(run)
            if after != before:
                await self._announce(user.id, user.username, after)
        except Exception:
            log.warning("chat_presence_failed", user_id=user.id, exc_info=True)

    async def _announce(self, user_id: str, username: str, status: Presence) -> None:
        """`presence` to the connections of everybody who shares a conversation with them."""

        def audience(session: Session) -> list[str]:
            return sharing_user_ids(session, user_id)

        people = await self._work(audience)
        rooms = [user_room(uid) for uid in {*people, user_id}]
        await self.context.hub.server.emit(
            "presence",
            {"user": {"id": user_id, "username": username}, "status": status.value},
            to=rooms,
            namespace=NAMESPACE,
        )

    # -- live updates ------------------------------------------------------------------------

    async def live_subscribe(self, sid: str, user: SocketUser, data: Any) -> Ack:
        await self._limit(EVENT_LIMIT, user)
        payload = _parse(LiveEvent, data)
        connection = self.connections.get(sid)
        if connection is None:
            raise EventError("not_authenticated", "Connect first.")
        if payload.topic not in connection.topics and len(connection.topics) >= MAX_LIVE_TOPICS:
            raise EventError(
                "too_many_topics", f"A connection follows at most {MAX_LIVE_TOPICS} topics."
            )

        def check(session: Session) -> str:
            return live_topics.authorize(session, user, payload.topic)

        topic = await self._work(check)
        connection.topics.add(topic)
        await self.enter_room(sid, live_room(topic))
        return ok(topic=topic)

    async def live_unsubscribe(self, sid: str, user: SocketUser, data: Any) -> Ack:
        await self._limit(EVENT_LIMIT, user)
        payload = _parse(LiveEvent, data)
        connection = self.connections.get(sid)
        if connection is not None:
            connection.topics.discard(payload.topic)
        await self.leave_room(sid, live_room(payload.topic))
        return ok(topic=payload.topic)

    # -- background work: the live relay, heartbeats ------------------------------------------

    def _start(self, hub: SocketHub) -> Callable[[], None]:
        loop = hub.loop
        if loop is None:
            return lambda: None
        relay = live.LiveRelay(self.context.settings, self._received)
        relay.start()
        heartbeat = asyncio.run_coroutine_threadsafe(self._heartbeat(), loop)

        def stop() -> None:
            heartbeat.cancel()
            relay.stop()

        return stop

    def _received(self, topic: str, event: str, payload: dict[str, Any]) -> None:
        """A live event from any process (the relay's thread)."""
        self.context.hub.submit(lambda: self._deliver(topic, event, payload))

    async def _deliver(self, topic: str, event: str, payload: dict[str, Any]) -> None:
        server = self.context.hub.server
        if topic == CONTROL_TOPIC:
            await self._control(event, payload)
            return
        restricted = bool(payload.pop("restricted", False))
        rooms = [live_room(t) for t in live_topics.delivery_topics(topic, payload)]
        if not restricted:
            # Every process got it from the bus: each serves its own connections only.
            await server.emit(event, payload, to=rooms, namespace=NAMESPACE, ignore_queue=True)
            return
        # A restricted incident: only to the connections whose user may still read it.
        targets = {
            sid: self.connections[sid].user
            for room in rooms
            for sid, _eio in list(server.manager.get_participants(NAMESPACE, room))
            if sid in self.connections
        }
        if not targets:
            return

        def readers(session: Session) -> list[str]:
            allowed: dict[str, bool] = {}  # one check per person, whatever their tabs
            for user in targets.values():
                if user.id not in allowed:
                    allowed[user.id] = live_topics.may_receive(session, user, topic, payload)
            return [sid for sid, user in targets.items() if allowed[user.id]]

        for sid in await self._work(readers):
            await server.emit(event, payload, to=sid, namespace=NAMESPACE, ignore_queue=True)

    async def _control(self, action: str, payload: dict[str, Any]) -> None:
        server = self.context.hub.server
        if action == "evict":
            user_id = str(payload.get("user_id", ""))
            room = conversation_room(str(payload.get("room_id", "")))
            for sid, _eio in list(server.manager.get_participants(NAMESPACE, user_room(user_id))):
                await server.leave_room(sid, room, namespace=NAMESPACE)
        elif action == "unread":
            # A push's counts, published once for every process (UnreadPushes): each emits to
            # its own connections.
            await emit_unread(server, payload.get("groups"), ignore_queue=True)

    async def _heartbeat(self) -> None:
        interval = self.context.settings.chat_presence_ttl_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self._beat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_database_unavailable(exc):
                    log.exception("chat_heartbeat_failed")

    async def _beat(self) -> None:
        """Refresh this process's presence entries, announce who went offline (a dead process's
        people), and sign every connection in again (a revoked token or ended session is
        disconnected)."""
        connections = dict(self.connections)

        def refresh() -> list[str]:
            self.presence.refresh(
                (connection.user.id, sid, connection.status)
                for sid, connection in connections.items()
            )
            return self.presence.sweep()

        try:
            for user_id in await asyncio.to_thread(refresh):
                await self._announce(user_id, await self._username(user_id), Presence.OFFLINE)
        except Exception:
            # Presence waits for the next beat; signing in again must not.
            log.warning("chat_presence_heartbeat_failed", exc_info=True)
        # Each credential is checked once, whatever the number of connections using it (a
        # person's tabs, a client's reconnects), in short transactions (embedded: SQLite's
        # write lock is not held for all of them at once).
        by_credential: dict[tuple[str | None, str | None], list[str]] = {}
        for sid, connection in connections.items():
            by_credential.setdefault((connection.token, connection.cookie), []).append(sid)
        credentials = list(by_credential)
        for start in range(0, len(credentials), SIGN_IN_CHUNK):
            chunk = credentials[start : start + SIGN_IN_CHUNK]
            checked = await self._work(functools.partial(self._sign_in, credentials=chunk))
            for credential, user in checked.items():
                for sid in by_credential[credential]:
                    if user is None:
                        log.info("chat_connection_signed_out", sid=sid)
                        await self.context.hub.server.disconnect(
                            sid, namespace=NAMESPACE, ignore_queue=True
                        )
                    else:
                        await self._renamed(sid, user)

    def _sign_in(
        self, session: Session, credentials: list[tuple[str | None, str | None]]
    ) -> dict[tuple[str | None, str | None], SocketUser | None]:
        """Each credential's user now, or None when it no longer signs in. A refusal is raised
        before the credential writes anything, so no savepoint is needed around each."""
        settings = self.context.settings
        result: dict[tuple[str | None, str | None], SocketUser | None] = {}
        for token, cookie in credentials:
            try:
                if token:
                    principal = accounts.authenticate_bearer(session, settings, token)
                else:
                    principal = accounts.authenticate_cookie(session, cookie or "")
            except Unauthorized:
                result[(token, cookie)] = None
                continue
            result[(token, cookie)] = _socket_user(principal.user)
        return result

    async def _renamed(self, sid: str, user: SocketUser) -> None:
        """The connection's user as they are now (a new display name, a changed role)."""
        connection = self.connections.get(sid)
        if connection is None or connection.user == user:
            return
        connection.user = user
        await self.save_session(sid, {"user": user})

    async def _username(self, user_id: str) -> str:
        def name(session: Session) -> str:
            users = accounts.users_by_id(session, {user_id})
            return users[user_id].username if user_id in users else ""

        result: str = await self._work(name)
        return result


# -- shared by events and REST routes ---------------------------------------------------------


def reaction_payload(
    session: Session, toggled: service.Toggled, user: Any, emoji: str
) -> dict[str, Any]:
    """The `reaction` event: who toggled what, and the message's reactions after it."""
    message = toggled.message
    summaries = service.reactions_for(session, [message.id]).get(message.id, [])
    return {
        "room_id": message.conversation_id,
        "id": message.id,
        "seq": message.seq,
        "emoji": emoji,
        "user": {"id": user.id, "username": user.username},
        "added": toggled.added,
        "reactions": [
            {"emoji": r.emoji, "count": r.count, "user_ids": r.user_ids} for r in summaries
        ],
    }


class RoomBroadcasts:
    """Each conversation's events, emitted one at a time in the order they were handed over:
    a send's `message:new` leaves after its ack (the handler returns first), and an edit never
    overtakes the message it edits. `push` is called on the event loop and returns at once."""

    def __init__(self, emit: Callable[[str, str, dict[str, Any]], Awaitable[None]]) -> None:
        self._emit = emit
        self._queues: dict[str, deque[tuple[str, dict[str, Any]]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def push(self, room: str, event: str, payload: dict[str, Any]) -> None:
        waiting = self._queues.get(room)
        if waiting is not None:
            waiting.append((event, payload))
            return
        self._queues[room] = deque([(event, payload)])
        task = asyncio.ensure_future(self._drain(room))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, room: str) -> None:
        waiting = self._queues[room]
        try:
            while waiting:
                event, payload = waiting.popleft()
                try:
                    await self._emit(room, event, payload)
                except Exception:
                    log.warning("chat_broadcast_failed", socket_event=event, exc_info=True)
        finally:
            del self._queues[room]


@dataclass
class _Noted:
    senders: set[str]
    last_seq: int


class UnreadPushes:
    """The `unread` pushes after new messages, per conversation: the first new message starts
    a delay (UNREAD_DELAY_SECONDS); at its end every member's state is read once and pushed,
    one emit per distinct payload, so a busy conversation costs a few pushes a second, not one
    per member per message. A sender is left out when nothing after their own message came in
    the meantime (their state did not change). Best effort, like presence: a failed read
    waits for the next message.

    With Redis (`settings` not embedded), a push is one message on the live bus (chat's
    control topic) holding every group, and each web process emits to its own connections:
    python-socketio's Redis manager would publish one message per distinct payload, and in a
    room whose members' read pointers all differ that is one per member."""

    def __init__(
        self,
        server: socketio.AsyncServer,
        factory: sessionmaker[Session],
        *,
        delay: float = UNREAD_DELAY_SECONDS,
        settings: Settings | None = None,
    ) -> None:
        self.server = server
        self.factory = factory
        self.delay = delay
        self.bus = settings if settings is not None and not settings.embedded else None
        self._noted: dict[str, _Noted] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def note(self, room_id: str, sender_id: str | None, seq: int) -> None:
        noted = self._noted.get(room_id)
        if noted is None:
            self._noted[room_id] = _Noted({sender_id} if sender_id else set(), seq)
            task = asyncio.ensure_future(self._later(room_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        if sender_id:
            noted.senders.add(sender_id)
        noted.last_seq = max(noted.last_seq, seq)

    async def _later(self, room_id: str) -> None:
        await asyncio.sleep(self.delay)
        await self.flush(room_id)

    async def flush(self, room_id: str) -> None:
        noted = self._noted.pop(room_id, None)
        if noted is None:
            return

        bus = self.bus

        def read(session: Session) -> list[dict[str, Any]]:
            groups = unread_groups(
                state
                for state in unread_for_members(session, room_id)
                if state.user_id not in noted.senders or state.last_read_seq < noted.last_seq
            )
            if bus is not None and groups:
                # Here, in the worker thread: a Redis round trip.
                live.publish(CONTROL_TOPIC, "unread", {"groups": groups}, settings=bus)
                return []
            return groups

        try:
            groups = await in_transaction(self.factory, read, read_only=True)
            await emit_unread(self.server, groups)
        except Exception as exc:
            if not is_database_unavailable(exc):
                log.warning("chat_unread_push_failed", room_id=room_id, exc_info=True)


def unread_groups(states: Iterable[UnreadState]) -> list[dict[str, Any]]:
    """The `unread` payloads of these states, each with the users it goes to: one emit (one
    packet encoded) for all the users whose payload is the same."""
    groups: dict[tuple[tuple[str, object], ...], list[str]] = {}
    for state in states:
        groups.setdefault(tuple(state.payload().items()), []).append(state.user_id)
    return [{"counts": dict(key), "user_ids": user_ids} for key, user_ids in groups.items()]


async def emit_unread(
    server: socketio.AsyncServer, groups: Any, *, ignore_queue: bool = False
) -> None:
    """`unread` to each group's users (`unread_groups`; from the bus, checked: a bad entry is
    skipped)."""
    for group in groups if isinstance(groups, list) else ():
        counts = group.get("counts") if isinstance(group, dict) else None
        user_ids = group.get("user_ids") if isinstance(group, dict) else None
        if not isinstance(counts, dict) or not isinstance(user_ids, list):
            continue
        await server.emit(
            "unread",
            counts,
            to=[user_room(str(user_id)) for user_id in user_ids],
            namespace=NAMESPACE,
            ignore_queue=ignore_queue,
        )


# -- from REST routes ------------------------------------------------------------------------


def publish(hub: SocketHub, event: str, message: Mapping[str, Any]) -> None:
    """Emit a message event (`message:edited`, `message:deleted`) to its conversation's clients
    from a sync route, in order with the conversation's other events (call it after the
    commit: `core.db.after_commit`)."""
    room = conversation_room(str(message["room_id"]))
    payload = dict(message)

    async def run() -> None:
        chat = _chat_namespace(hub)
        if chat is None:
            await hub.server.emit(event, payload, to=room, namespace=NAMESPACE)
        else:
            chat.broadcasts.push(room, event, payload)

    hub.submit(run)


def publish_new(hub: SocketHub, message: Mapping[str, Any], author_id: str | None) -> None:
    """A message sent over REST has committed: `message:new` to the conversation's clients,
    then the members' `unread` counts, as for a socket send (call it after the commit)."""
    payload = dict(message)

    async def run() -> None:
        chat = _chat_namespace(hub)
        if chat is not None:
            chat.message_created(payload, author_id)

    hub.submit(run)


def publish_reaction(hub: SocketHub, event: Mapping[str, Any]) -> None:
    publish(hub, "reaction", event)


def evict(hub: SocketHub, conversation_id: str, user_id: str) -> None:
    """Stop a user's connections receiving a conversation they were removed from, on every
    web process (through the live bus), and tell their clients (`room:removed`)."""
    live.publish(
        CONTROL_TOPIC,
        "evict",
        {"room_id": conversation_id, "user_id": user_id},
        settings=_settings_of(hub),
    )

    async def run() -> None:
        server = hub.server
        room = conversation_room(conversation_id)
        # This process's connections at once (the bus takes a moment).
        for sid, _eio_sid in list(server.manager.get_participants(NAMESPACE, user_room(user_id))):
            await server.leave_room(sid, room, namespace=NAMESPACE)
        await server.emit(
            "room:removed", {"room_id": conversation_id}, to=user_room(user_id), namespace=NAMESPACE
        )

    hub.submit(run)


def _chat_namespace(hub: SocketHub) -> ChatNamespace | None:
    for namespace in hub.server.namespace_handlers.values():
        if isinstance(namespace, ChatNamespace):
            return namespace
    return None


def _settings_of(hub: SocketHub) -> Any:
    chat = _chat_namespace(hub)
    return chat.context.settings if chat is not None else None


def namespaces(context: SocketContext) -> list[ChatNamespace]:
    return [ChatNamespace(context)]
