"""Chat HTTP API: thin routers over chat.service (docs/chat.md). What changes a conversation
is also pushed to its Socket.IO clients once the request's transaction has committed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from opsdeck.accounts.dependencies import CurrentUser
from opsdeck.chat import events, service
from opsdeck.chat.models import ConversationKind
from opsdeck.chat.presenters import (
    members_out,
    message_out,
    messages_out,
    room_out,
    rooms_out,
    sent_message_out,
)
from opsdeck.chat.schemas import (
    DmCreate,
    MemberIn,
    MemberOut,
    MessageCreate,
    MessageEditIn,
    MessageOut,
    MessagePage,
    MessageVersionOut,
    PresenceItem,
    PresenceList,
    ReactionIn,
    ReadIn,
    ReadOut,
    RoleIn,
    RoomCreate,
    RoomOut,
    RoomPage,
    ThreadOut,
    UserRef,
)
from opsdeck.core.db import after_commit
from opsdeck.core.deps import SessionDep, SettingsDep
from opsdeck.core.errors import error_responses
from opsdeck.core.http import API_PREFIX
from opsdeck.core.pagination import MAX_CURSOR_LENGTH, MAX_QUERY_INT, PageParams, page_params
from opsdeck.core.params import HexId
from opsdeck.core.sockets import SocketHub

router = APIRouter(prefix=f"{API_PREFIX}/chat", tags=["chat"])

RoomId = Annotated[str, Path(min_length=1, max_length=64, description="A conversation's id.")]
UserId = Annotated[str, Path(min_length=1, max_length=64)]
MessageId = Annotated[str, Path(min_length=1, max_length=64)]
RoomPageParams = Annotated[
    PageParams, Depends(page_params(service.ROOM_SORTS, default_limit=50, max_limit=200))
]
AUTH = (401, 403)


def get_hub(request: Request) -> SocketHub:
    hub: SocketHub = request.app.state.sockets
    return hub


HubDep = Annotated[SocketHub, Depends(get_hub)]


# -- rooms ---------------------------------------------------------------------------------


@router.post(
    "/rooms",
    name="chat-create-room",
    status_code=status.HTTP_201_CREATED,
    response_model=RoomOut,
    responses=error_responses(*AUTH, 409, 422),
    summary="Create a room (you become its owner)",
)
def create_room(
    body: RoomCreate,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
) -> RoomOut:
    room = service.create_room(
        session,
        settings,
        user,
        name=body.name,
        visibility=body.visibility,
        topic=body.topic,
        description=body.description,
    )
    response.headers["Location"] = f"{API_PREFIX}/chat/rooms/{room.id}"
    return room_out(session, user.id, room)


@router.get(
    "/rooms",
    name="chat-list-rooms",
    response_model=RoomPage,
    responses=error_responses(*AUTH, 422),
    summary="The conversations you may see, with unread counts",
)
def list_rooms(
    session: SessionDep,
    user: CurrentUser,
    page: RoomPageParams,
    kind: Annotated[ConversationKind | None, Query(description="room or dm")] = None,
    joined: Annotated[
        bool | None, Query(description="true: yours only; false: public rooms you are not in")
    ] = None,
    archived: Annotated[
        bool | None, Query(description="false (default): active; true: archived; empty: both")
    ] = False,
) -> RoomPage:
    filters = service.RoomFilter(kind=kind, joined=joined, archived=archived)
    result = service.list_conversations(session, user, filters, page)
    return RoomPage(items=rooms_out(session, user.id, result.items), next_cursor=result.next_cursor)


@router.post(
    "/dms",
    name="chat-open-dm",
    response_model=RoomOut,
    responses=error_responses(*AUTH, 404, 422),
    summary="The direct message with these people (the same people: the same conversation)",
)
def open_dm(body: DmCreate, session: SessionDep, user: CurrentUser) -> RoomOut:
    return room_out(session, user.id, service.open_dm(session, user, body.user_ids))


@router.get(
    "/rooms/{room_id}",
    name="chat-get-room",
    response_model=RoomOut,
    responses=error_responses(*AUTH, 404, 422),
    summary="One conversation",
)
def get_room(room_id: RoomId, session: SessionDep, user: CurrentUser) -> RoomOut:
    return room_out(session, user.id, service.get_room(session, user, room_id))


@router.post(
    "/rooms/{room_id}/join",
    name="chat-join-room",
    response_model=RoomOut,
    responses=error_responses(*AUTH, 404, 409, 422),
    summary="Join a public room",
)
def join_room(
    room_id: RoomId, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> RoomOut:
    conversation, _member = service.join_room(session, settings, user, room_id)
    return room_out(session, user.id, conversation)


@router.post(
    "/rooms/{room_id}/leave",
    name="chat-leave-room",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(*AUTH, 404, 409, 422),
    summary="Leave a room (or a group direct message)",
)
def leave_room(room_id: RoomId, session: SessionDep, user: CurrentUser, hub: HubDep) -> None:
    service.leave_room(session, user, room_id)
    after_commit(session, lambda: events.evict(hub, room_id, user.id))


@router.post(
    "/rooms/{room_id}/archive",
    name="chat-archive-room",
    response_model=RoomOut,
    responses=error_responses(*AUTH, 404, 409, 422),
    summary="Archive a room: read-only from now on (its owner, or an admin)",
)
def archive_room(room_id: RoomId, session: SessionDep, user: CurrentUser) -> RoomOut:
    return room_out(session, user.id, service.archive(session, user, room_id))


@router.post(
    "/rooms/{room_id}/read",
    name="chat-mark-read",
    response_model=ReadOut,
    responses=error_responses(*AUTH, 404, 422),
    summary="Move your read pointer forward",
)
def mark_read(room_id: RoomId, body: ReadIn, session: SessionDep, user: CurrentUser) -> ReadOut:
    unread = service.mark_read(session, user, room_id, body.seq)
    member = service.active_member(session, room_id, user.id)
    return ReadOut(
        room_id=room_id,
        last_read_seq=member.last_read_seq if member is not None else 0,
        unread=unread,
        mentions=service.mention_counts(session, user.id, [room_id]).get(room_id, 0),
    )


# -- members -----------------------------------------------------------------------------------


@router.get(
    "/rooms/{room_id}/members",
    name="chat-list-members",
    response_model=list[MemberOut],
    responses=error_responses(*AUTH, 404, 422),
    summary="Who is in a room (the first 1,000)",
)
def list_members(
    room_id: RoomId, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> list[MemberOut]:
    members = service.list_members(session, user, room_id)
    presence = service.presence_of(settings, [member.user_id for member in members])
    return members_out(session, members, presence)


@router.post(
    "/rooms/{room_id}/members",
    name="chat-invite",
    status_code=status.HTTP_201_CREATED,
    response_model=MemberOut,
    responses=error_responses(*AUTH, 404, 409, 422),
    summary="Add someone to a room (its moderators and owners)",
)
def invite(
    room_id: RoomId,
    body: MemberIn,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
) -> MemberOut:
    member = service.invite(session, settings, user, room_id, body.user_id)
    return members_out(session, [member])[0]


@router.delete(
    "/rooms/{room_id}/members/{user_id:hexid}",
    name="chat-kick",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(*AUTH, 404, 409, 422),
    summary="Remove someone from a room (moderators; audited)",
)
def kick(
    room_id: RoomId, user_id: UserId, session: SessionDep, user: CurrentUser, hub: HubDep
) -> None:
    service.kick(session, user, room_id, user_id)
    after_commit(session, lambda: events.evict(hub, room_id, user_id))


@router.put(
    "/rooms/{room_id}/members/{user_id:hexid}/role",
    name="chat-set-role",
    response_model=MemberOut,
    responses=error_responses(*AUTH, 404, 409, 422),
    summary="Make someone owner, moderator or member (the owner; audited)",
)
def set_role(
    room_id: RoomId, user_id: UserId, body: RoleIn, session: SessionDep, user: CurrentUser
) -> MemberOut:
    member = service.set_role(session, user, room_id, user_id, body.role)
    return members_out(session, [member])[0]


@router.post(
    "/rooms/{room_id}/bans",
    name="chat-ban",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(*AUTH, 404, 409, 422),
    summary="Ban someone from a room: out, and unable to join again (moderators; audited)",
)
def ban(
    room_id: RoomId, body: MemberIn, session: SessionDep, user: CurrentUser, hub: HubDep
) -> None:
    service.ban(session, user, room_id, body.user_id)
    after_commit(session, lambda: events.evict(hub, room_id, body.user_id))


@router.delete(
    "/rooms/{room_id}/bans/{user_id:hexid}",
    name="chat-unban",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(*AUTH, 404, 409, 422),
    summary="Lift a ban (moderators; audited)",
)
def unban(room_id: RoomId, user_id: UserId, session: SessionDep, user: CurrentUser) -> None:
    service.unban(session, user, room_id, user_id)


# -- messages ----------------------------------------------------------------------------------


@router.get(
    "/rooms/{room_id}/messages",
    name="chat-list-messages",
    response_model=MessagePage,
    responses=error_responses(*AUTH, 404, 422),
    summary="Messages in sequence order: after after_seq (forward), before before_seq, or "
    "around around_seq (jump to a message)",
)
def list_messages(
    room_id: RoomId,
    session: SessionDep,
    user: CurrentUser,
    after_seq: Annotated[int | None, Query(ge=0, le=MAX_QUERY_INT)] = None,
    before_seq: Annotated[int | None, Query(ge=1, le=MAX_QUERY_INT)] = None,
    cursor: Annotated[
        str | None,
        Query(max_length=MAX_CURSOR_LENGTH, description="`next_cursor` of the previous page."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    around_seq: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_QUERY_INT,
            description="The `limit` messages around this one (it included); next_cursor null.",
        ),
    ] = None,
) -> MessagePage:
    query = service.HistoryQuery(
        after_seq=after_seq,
        before_seq=before_seq,
        cursor=cursor,
        limit=limit,
        around_seq=around_seq,
    )
    result = service.history(session, user, room_id, query)
    return MessagePage(items=messages_out(session, result.items), next_cursor=result.next_cursor)


@router.post(
    "/rooms/{room_id}/messages",
    name="chat-send-message",
    status_code=status.HTTP_201_CREATED,
    response_model=MessageOut,
    responses={
        200: {"model": MessageOut, "description": "A resend: the message this client_id sent"},
        **error_responses(*AUTH, 404, 409, 422, 429),
    },
    summary="Send a message (the same client_id again answers the same message, 200)",
)
def send_message(
    room_id: RoomId,
    body: MessageCreate,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    hub: HubDep,
) -> MessageOut:
    service.check_rate(settings, service.send_limit(settings), user.id)
    sent = service.send_message(
        session,
        user,
        room_id,
        client_id=body.client_id,
        body=body.body,
        reply_to=body.reply_to,
        attachment_ids=body.attachment_ids,
    )
    author = UserRef(id=user.id, username=user.username, display_name=user.display_name)
    out = sent_message_out(session, sent, author=author)
    if sent.created:
        payload = out.model_dump(mode="json")
        after_commit(session, lambda: events.publish_new(hub, payload, user.id))
    else:
        response.status_code = status.HTTP_200_OK
    return out


@router.patch(
    "/messages/{message_id}",
    name="chat-edit-message",
    response_model=MessageOut,
    responses=error_responses(*AUTH, 404, 409, 422),
    summary="Edit your message (the previous text is kept)",
)
def edit_message(
    message_id: MessageId,
    body: MessageEditIn,
    session: SessionDep,
    user: CurrentUser,
    hub: HubDep,
) -> MessageOut:
    out = message_out(session, service.edit_message(session, user, message_id, body.body))
    payload = out.model_dump(mode="json")
    after_commit(session, lambda: events.publish(hub, "message:edited", payload))
    return out


@router.delete(
    "/messages/{message_id}",
    name="chat-delete-message",
    response_model=MessageOut,
    responses=error_responses(*AUTH, 404, 422),
    summary="Delete a message (its author, the room's moderators): a tombstone stays",
)
def delete_message(
    message_id: MessageId, session: SessionDep, user: CurrentUser, hub: HubDep
) -> MessageOut:
    out = message_out(session, service.delete_message(session, user, message_id))
    payload = out.model_dump(mode="json")
    after_commit(session, lambda: events.publish(hub, "message:deleted", payload))
    return out


@router.get(
    "/messages/{message_id}/edits",
    name="chat-message-edits",
    response_model=list[MessageVersionOut],
    responses=error_responses(*AUTH, 404, 422),
    summary="The previous versions of an edited message, oldest first",
)
def message_edits(
    message_id: MessageId, session: SessionDep, user: CurrentUser
) -> list[MessageVersionOut]:
    return [
        MessageVersionOut(body=edit.body, edited_at=edit.edited_at)
        for edit in service.edits_of(session, user, message_id)
    ]


@router.post(
    "/messages/{message_id}/reactions",
    name="chat-toggle-reaction",
    response_model=MessageOut,
    responses=error_responses(*AUTH, 404, 409, 422, 429),
    summary="Add your emoji to a message, or take it back (a toggle)",
)
def toggle_reaction(
    message_id: MessageId,
    body: ReactionIn,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    hub: HubDep,
) -> MessageOut:
    service.check_rate(settings, events.REACTION_LIMIT, user.id)
    toggled = service.toggle_reaction(session, user, message_id, body.emoji)
    event = events.reaction_payload(session, toggled, user, body.emoji)
    after_commit(session, lambda: events.publish_reaction(hub, event))
    return message_out(session, toggled.message)


@router.get(
    "/messages/{message_id}/thread",
    name="chat-thread",
    response_model=ThreadOut,
    responses=error_responses(*AUTH, 404, 422),
    summary="A thread: its root and its replies in sequence order",
)
def get_thread(
    message_id: MessageId,
    session: SessionDep,
    user: CurrentUser,
    cursor: Annotated[
        str | None,
        Query(max_length=MAX_CURSOR_LENGTH, description="`next_cursor` of the previous page."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ThreadOut:
    found = service.thread(session, user, message_id, limit=limit, cursor=cursor)
    return ThreadOut(
        root=message_out(session, found.root),
        items=messages_out(session, found.replies.items),
        next_cursor=found.replies.next_cursor,
    )


@router.get(
    "/presence",
    name="chat-presence",
    response_model=PresenceList,
    responses=error_responses(*AUTH, 422),
    summary="Whether these people are online, away or offline",
)
def presence(
    settings: SettingsDep,
    user: CurrentUser,
    user_id: Annotated[
        list[HexId], Query(min_length=1, max_length=200, description="Up to 200 user ids.")
    ],
) -> PresenceList:
    ids = list(user_id)
    statuses = service.presence_of(settings, ids)
    return PresenceList(
        items=[PresenceItem(user_id=uid, status=statuses[uid]) for uid in dict.fromkeys(ids)]
    )
