"""`/incidents/{number}/postmortem` and the admins' `/incidents/postmortem-templates`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status
from sqlalchemy.orm import Session

from opsdeck.accounts.dependencies import AdminUser, CurrentUser
from opsdeck.core.deps import SessionDep
from opsdeck.core.errors import error_responses
from opsdeck.core.http import API_PREFIX
from opsdeck.core.pagination import MAX_QUERY_INT
from opsdeck.incidents.models import Postmortem
from opsdeck.incidents.presenters import People
from opsdeck.incidents.schemas import (
    PostmortemCreate,
    PostmortemOut,
    PostmortemTemplateIn,
    PostmortemTemplateOut,
    PostmortemTemplateUpdate,
    PostmortemTransitionIn,
    PostmortemUpdate,
)
from opsdeck.incidents.service import postmortems as service
from opsdeck.incidents.service.access import Actor, incident_label

router = APIRouter(prefix=f"{API_PREFIX}/incidents", tags=["incidents"])

Number = Annotated[int, Path(ge=1, le=MAX_QUERY_INT, description="The incident's number.")]
TemplateId = Annotated[str, Path(max_length=32)]


def _postmortem_out(session: Session, actor: Actor, postmortem: Postmortem) -> PostmortemOut:
    can_edit, allowed = service.postmortem_permissions(session, actor, postmortem)
    author = People(session, [postmortem.author_id]).ref(postmortem.author_id)
    return PostmortemOut(
        incident_number=postmortem.incident_number,
        key=incident_label(postmortem.incident_number),
        status=postmortem.status,
        body=postmortem.body,
        body_html=postmortem.body_html,
        author=author,
        created_at=postmortem.created_at,
        updated_at=postmortem.updated_at,
        published_at=postmortem.published_at,
        allowed_transitions=list(allowed),
        can_edit=can_edit,
    )


# -- templates (static paths: this router is mounted before the one with /{number}) -------


@router.get(
    "/postmortem-templates",
    name="incidents-list-postmortem-templates",
    response_model=list[PostmortemTemplateOut],
    responses=error_responses(401),
)
def list_templates(session: SessionDep, _user: CurrentUser) -> list[PostmortemTemplateOut]:
    """Every template, the default first. Anybody signed in reads them (to pick one when
    starting a postmortem); admins change them."""
    return [PostmortemTemplateOut.model_validate(t) for t in service.list_templates(session)]


@router.post(
    "/postmortem-templates",
    name="incidents-create-postmortem-template",
    response_model=PostmortemTemplateOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(401, 403, 409, 422),
)
def create_template(
    body: PostmortemTemplateIn, session: SessionDep, admin: AdminUser
) -> PostmortemTemplateOut:
    template = service.create_template(
        session, admin, name=body.name, body=body.body, is_default=body.is_default
    )
    return PostmortemTemplateOut.model_validate(template)


@router.put(
    "/postmortem-templates/{template_id}",
    name="incidents-update-postmortem-template",
    response_model=PostmortemTemplateOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def update_template(
    template_id: TemplateId, body: PostmortemTemplateUpdate, session: SessionDep, admin: AdminUser
) -> PostmortemTemplateOut:
    template = service.update_template(
        session, admin, template_id, name=body.name, body=body.body, is_default=body.is_default
    )
    return PostmortemTemplateOut.model_validate(template)


@router.delete(
    "/postmortem-templates/{template_id}",
    name="incidents-delete-postmortem-template",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 422),
)
def delete_template(template_id: TemplateId, session: SessionDep, admin: AdminUser) -> None:
    service.delete_template(session, admin, template_id)


# -- an incident's postmortem --------------------------------------------------------------


@router.get(
    "/{number}/postmortem",
    name="incidents-get-postmortem",
    response_model=PostmortemOut,
    responses=error_responses(401, 404, 422),
)
def get_postmortem(number: Number, session: SessionDep, user: CurrentUser) -> PostmortemOut:
    """404 until somebody starts it (and for an incident the caller may not see)."""
    return _postmortem_out(session, user, service.get_postmortem(session, user, number))


@router.post(
    "/{number}/postmortem",
    name="incidents-create-postmortem",
    response_model=PostmortemOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(401, 403, 404, 409, 422),
)
def create_postmortem(
    number: Number, session: SessionDep, user: CurrentUser, body: PostmortemCreate | None = None
) -> PostmortemOut:
    """Start the postmortem as a draft from a template (the default one when no
    `template_id`), its timeline filled from the incident's pinned events."""
    postmortem = service.create_postmortem(
        session, user, number, template_id=body.template_id if body else None
    )
    return _postmortem_out(session, user, postmortem)


@router.put(
    "/{number}/postmortem",
    name="incidents-update-postmortem",
    response_model=PostmortemOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def update_postmortem(
    number: Number, body: PostmortemUpdate, session: SessionDep, user: CurrentUser
) -> PostmortemOut:
    """Replace the Markdown body (draft or in review; a published one is a 409)."""
    postmortem = service.update_postmortem(session, user, number, body.body)
    return _postmortem_out(session, user, postmortem)


@router.post(
    "/{number}/postmortem/transition",
    name="incidents-transition-postmortem",
    response_model=PostmortemOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def transition_postmortem(
    number: Number, body: PostmortemTransitionIn, session: SessionDep, user: CurrentUser
) -> PostmortemOut:
    """draft -> in_review -> published, in_review -> draft; an admin may reopen a published
    one (-> draft). A 409 lists the allowed next states in its details."""
    postmortem = service.transition_postmortem(session, user, number, body.to)
    return _postmortem_out(session, user, postmortem)
