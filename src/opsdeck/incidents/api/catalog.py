"""Categories and tags: everybody reads them, admins manage them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from opsdeck.accounts.dependencies import AdminUser, CurrentUser
from opsdeck.core.deps import SessionDep
from opsdeck.core.errors import error_responses
from opsdeck.core.http import API_PREFIX
from opsdeck.incidents.schemas import CategoryIn, CategoryOut, CategoryUpdate, TagIn, TagOut
from opsdeck.incidents.service import catalog

router = APIRouter(prefix=f"{API_PREFIX}/incidents", tags=["incidents"])
Id = Annotated[str, Path(max_length=32)]


@router.get(
    "/categories",
    name="incidents-list-categories",
    response_model=list[CategoryOut],
    responses=error_responses(401),
)
def list_categories(session: SessionDep, _user: CurrentUser) -> list[CategoryOut]:
    return [CategoryOut.model_validate(c) for c in catalog.list_categories(session)]


@router.post(
    "/categories",
    name="incidents-create-category",
    status_code=status.HTTP_201_CREATED,
    response_model=CategoryOut,
    responses=error_responses(401, 403, 409, 422),
)
def create_category(body: CategoryIn, session: SessionDep, admin: AdminUser) -> CategoryOut:
    category = catalog.create_category(session, admin, body.name, body.description)
    return CategoryOut.model_validate(category)


@router.patch(
    "/categories/{category_id}",
    name="incidents-update-category",
    response_model=CategoryOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def update_category(
    category_id: Id, body: CategoryUpdate, session: SessionDep, admin: AdminUser
) -> CategoryOut:
    category = catalog.update_category(session, admin, category_id, body.name, body.description)
    return CategoryOut.model_validate(category)


@router.delete(
    "/categories/{category_id}",
    name="incidents-delete-category",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 422),
)
def delete_category(category_id: Id, session: SessionDep, admin: AdminUser) -> None:
    catalog.delete_category(session, admin, category_id)


@router.get(
    "/tags", name="incidents-list-tags", response_model=list[TagOut], responses=error_responses(401)
)
def list_tags(session: SessionDep, _user: CurrentUser) -> list[TagOut]:
    return [TagOut.model_validate(t) for t in catalog.list_tags(session)]


@router.post(
    "/tags",
    name="incidents-create-tag",
    status_code=status.HTTP_201_CREATED,
    response_model=TagOut,
    responses=error_responses(401, 403, 409, 422),
)
def create_tag(body: TagIn, session: SessionDep, admin: AdminUser) -> TagOut:
    return TagOut.model_validate(catalog.create_tag(session, admin, body.name))


@router.delete(
    "/tags/{tag_id}",
    name="incidents-delete-tag",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 422),
)
def delete_tag(tag_id: Id, session: SessionDep, admin: AdminUser) -> None:
    catalog.delete_tag(session, admin, tag_id)
