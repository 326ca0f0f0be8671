"""Mail notifications: each user's preferences, and the one-click unsubscribe link every mail
carries (RFC 8058). The unsubscribe routes take no session: the signed token in the link is
the credential (so no cookie is read and no CSRF token is needed); a token that was tampered
with is a 400 `invalid_token`."""

from __future__ import annotations

import html
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, StrictBool

from opsdeck.accounts.dependencies import CurrentUser
from opsdeck.core.deps import SessionDep, SettingsDep
from opsdeck.core.errors import error_responses, json_error_responses
from opsdeck.core.http import API_PREFIX
from opsdeck.incidents.service import notifications

router = APIRouter(prefix=f"{API_PREFIX}/incidents", tags=["incidents"])

Token = Annotated[str, Query(min_length=1, max_length=1024, description="From the e-mail's link.")]
# The pages below carry no script; the form posts back to this same origin.
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


class NotificationPreferences(BaseModel):
    """Which incident e-mails a user gets (all on by default)."""

    assignment: bool
    status_change: bool
    comment: bool
    follow_up_due: bool
    daily_digest: bool
    chat_mentions: bool = Field(
        description="Chat mentions and direct messages left unread, as an e-mail digest."
    )


class NotificationPreferencesUpdate(BaseModel):
    """Only the kinds sent change."""

    model_config = {"extra": "forbid"}

    assignment: StrictBool | None = None
    status_change: StrictBool | None = None
    comment: StrictBool | None = None
    follow_up_due: StrictBool | None = None
    daily_digest: StrictBool | None = None
    chat_mentions: StrictBool | None = None


@router.get(
    "/notification-preferences",
    name="incidents-get-notification-preferences",
    response_model=NotificationPreferences,
    responses=error_responses(401),
)
def get_preferences(session: SessionDep, user: CurrentUser) -> NotificationPreferences:
    return NotificationPreferences(**notifications.preferences(session, user.id))


@router.put(
    "/notification-preferences",
    name="incidents-set-notification-preferences",
    response_model=NotificationPreferences,
    responses=error_responses(401, 403, 422),
)
def set_preferences(
    body: NotificationPreferencesUpdate, session: SessionDep, user: CurrentUser
) -> NotificationPreferences:
    changes = body.model_dump(exclude_none=True)
    return NotificationPreferences(**notifications.set_preferences(session, user, changes))


def _page(title: str, body: str) -> HTMLResponse:
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head>"
        '<body style="font-family: sans-serif; max-width: 36em; margin: 3em auto">'
        f"<h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )
    return HTMLResponse(
        page, headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-store"}
    )


@router.get(
    "/unsubscribe",
    name="incidents-unsubscribe-page",
    response_class=HTMLResponse,
    responses=json_error_responses(400, 422),
    summary="The page an unsubscribe link opens: a button that confirms",
)
def unsubscribe_page(token: Token, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    target = notifications.read_unsubscribe_token(session, settings.secret_bytes(), token)
    what = html.escape(notifications.describe(target.kind))
    action = html.escape(f"{notifications.UNSUBSCRIBE_PATH}?token={token}")
    return _page(
        "Unsubscribe",
        f"<p>Stop receiving {what} from OpsDeck?</p>"
        f'<form method="post" action="{action}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>',
    )


@router.post(
    "/unsubscribe",
    name="incidents-unsubscribe",
    response_class=HTMLResponse,
    responses=json_error_responses(400, 422),
    summary="One-click unsubscribe (RFC 8058: mail clients POST List-Unsubscribe=One-Click)",
)
def unsubscribe(token: Token, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    target = notifications.unsubscribe(session, settings.secret_bytes(), token)
    what = html.escape(notifications.describe(target.kind))
    return _page(
        "Unsubscribed",
        f"<p>You will no longer receive {what}. You can turn them on again in your "
        "notification preferences.</p>",
    )
