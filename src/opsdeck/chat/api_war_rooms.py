"""Chat HTTP API for incidents: opening an incident's war room and pinning a war room's
message to the incident's timeline (docs/chat.md, docs/incidents.md). Thin, like chat.api."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from opsdeck.accounts.dependencies import CurrentUser
from opsdeck.chat import service
from opsdeck.chat.presenters import room_out
from opsdeck.chat.schemas import PinOut, RoomOut
from opsdeck.core.deps import SessionDep, SettingsDep
from opsdeck.core.errors import error_responses
from opsdeck.core.http import API_PREFIX
from opsdeck.core.pagination import MAX_QUERY_INT

router = APIRouter(prefix=API_PREFIX, tags=["chat"])

Number = Annotated[int, Path(ge=1, le=MAX_QUERY_INT, description="The incident's number.")]
MessageId = Annotated[str, Path(min_length=1, max_length=64)]


@router.post(
    "/incidents/{number}/war-room",
    name="chat-open-war-room",
    status_code=status.HTTP_201_CREATED,
    response_model=RoomOut,
    responses={
        200: {"model": RoomOut, "description": "The war room opened before (you are in it)"},
        **error_responses(401, 403, 404, 422),
    },
    summary="Open the incident's war room (201 the first time, 200 after), and join it",
)
def open_war_room(
    number: Number,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
) -> RoomOut:
    opened = service.open_war_room(session, settings, user, number)
    response.headers["Location"] = f"{API_PREFIX}/chat/rooms/{opened.room.id}"
    if not opened.created:
        response.status_code = status.HTTP_200_OK
    return room_out(session, user.id, opened.room)


@router.post(
    "/chat/messages/{message_id}/pin-to-incident",
    name="chat-pin-to-incident",
    status_code=status.HTTP_201_CREATED,
    response_model=PinOut,
    responses={
        200: {"model": PinOut, "description": "Pinned before: the same timeline event"},
        **error_responses(401, 403, 404, 409, 422),
    },
    summary="Pin a war room's message to its incident's timeline (once per message)",
)
def pin_to_incident(
    message_id: MessageId, response: Response, session: SessionDep, user: CurrentUser
) -> PinOut:
    pinned = service.pin_to_incident(session, user, message_id)
    if not pinned.created:
        response.status_code = status.HTTP_200_OK
    return PinOut(number=pinned.number, event_id=pinned.event_id)
