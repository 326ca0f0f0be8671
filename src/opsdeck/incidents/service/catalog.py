"""Categories and tags: admins manage them; incidents name them."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import QueryableAttribute, Session

from opsdeck.core.errors import Conflict, NotFound, ValidationFailed
from opsdeck.incidents.models import Category, IncidentTag, Tag
from opsdeck.incidents.service.access import Actor, require_admin


def _key(name: str) -> str:
    return name.strip().lower()


def same_name(column: QueryableAttribute[str], name: str) -> ColumnElement[bool]:
    """Names (categories, templates, integrations) compare without case. lower() folds ASCII
    only on SQLite and on a PostgreSQL with the C locale, so the name as written is matched
    too: "Überlast" always finds "Überlast", and taking an existing non-ASCII name is a 409,
    never the unique constraint's 500."""
    return or_(func.lower(column) == _key(name), column == name.strip())


def named(name: str) -> ColumnElement[bool]:
    return same_name(Category.name, name)


def list_categories(session: Session) -> Sequence[Category]:
    return session.scalars(select(Category).order_by(func.lower(Category.name))).all()


def category_by_name(session: Session, name: str, *, field: str = "category") -> Category:
    category = session.scalar(select(Category).where(named(name)))
    if category is None:
        raise ValidationFailed(
            f"There is no category {name!r}; an admin creates categories.",
            details=[{"field": field, "message": "no such category", "type": "unknown"}],
        )
    return category


def _ensure_free_category_name(session: Session, name: str, exclude: str | None = None) -> None:
    query = select(Category.id).where(named(name))
    if exclude is not None:
        query = query.where(Category.id != exclude)
    if session.scalar(query) is not None:
        raise Conflict(
            f"A category named {name!r} exists already.",
            details=[{"field": "name", "message": "taken", "type": "duplicate"}],
        )


def create_category(session: Session, actor: Actor, name: str, description: str) -> Category:
    require_admin(actor)
    _ensure_free_category_name(session, name)
    category = Category(name=name.strip(), description=description)
    session.add(category)
    session.flush()
    return category


def get_category(session: Session, category_id: str) -> Category:
    category = session.get(Category, category_id)
    if category is None:
        raise NotFound("There is no such category.")
    return category


def update_category(
    session: Session, actor: Actor, category_id: str, name: str | None, description: str | None
) -> Category:
    require_admin(actor)
    category = get_category(session, category_id)
    if name is not None:
        _ensure_free_category_name(session, name, exclude=category.id)
        category.name = name.strip()
    if description is not None:
        category.description = description
    session.flush()
    return category


def delete_category(session: Session, actor: Actor, category_id: str) -> None:
    """Incidents of a deleted category keep existing, with no category."""
    require_admin(actor)
    session.delete(get_category(session, category_id))
    session.flush()


def list_tags(session: Session) -> Sequence[Tag]:
    return session.scalars(select(Tag).order_by(Tag.name)).all()


def create_tag(session: Session, actor: Actor, name: str) -> Tag:
    require_admin(actor)
    key = _key(name)
    if session.scalar(select(Tag.id).where(Tag.name == key)) is not None:
        raise Conflict(
            f"The tag {key!r} exists already.",
            details=[{"field": "name", "message": "taken", "type": "duplicate"}],
        )
    tag = Tag(name=key)
    session.add(tag)
    session.flush()
    return tag


def delete_tag(session: Session, actor: Actor, tag_id: str) -> None:
    require_admin(actor)
    tag = session.get(Tag, tag_id)
    if tag is None:
        raise NotFound("There is no such tag.")
    session.delete(tag)
    session.flush()


def tags_by_name(session: Session, names: Sequence[str], *, field: str = "tags") -> list[Tag]:
    """The tags named, in order, duplicates dropped; an unknown one is a 422 naming its index."""
    keys = list(dict.fromkeys(_key(name) for name in names))
    found = {tag.name: tag for tag in session.scalars(select(Tag).where(Tag.name.in_(keys)))}
    missing = [
        {"field": f"{field}.{index}", "message": f"no such tag {name!r}", "type": "unknown"}
        for index, name in enumerate(_key(n) for n in names)
        if name not in found
    ]
    if missing:
        raise ValidationFailed("Some tags do not exist; an admin creates tags.", details=missing)
    return [found[key] for key in keys]


def tag_names(session: Session, numbers: Sequence[int]) -> dict[int, list[str]]:
    """Each incident's tag names, for a page of incidents, in one query."""
    result: dict[int, list[str]] = {number: [] for number in numbers}
    if not numbers:
        return result
    rows = session.execute(
        select(IncidentTag.incident_number, Tag.name)
        .join(Tag, Tag.id == IncidentTag.tag_id)
        .where(IncidentTag.incident_number.in_(numbers))
        .order_by(Tag.name)
    )
    for number, name in rows:
        result[number].append(name)
    return result


def category_names(session: Session, ids: Sequence[str | None]) -> dict[str, str]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    rows = session.execute(select(Category.id, Category.name).where(Category.id.in_(wanted)))
    return {str(category_id): str(name) for category_id, name in rows}
