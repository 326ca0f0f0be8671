"""Users: creating them, looking them up, an administrator's changes, a user's own profile
and password."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BindParameter, CompoundSelect, Select, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opsdeck.accounts.models import ROLES, Role, User
from opsdeck.accounts.policy import (
    clean_display_name,
    normalise_email,
    normalise_username,
    password_problem,
)
from opsdeck.accounts.service.api_tokens import revoke_all_api_tokens
from opsdeck.accounts.service.sign_in import Principal, revoke_sessions
from opsdeck.accounts.service.two_factor import reauthenticate
from opsdeck.audit.service import record
from opsdeck.core.db import utcnow
from opsdeck.core.deps import ClientContext
from opsdeck.core.errors import Conflict, ErrorDetail, NotFound, ValidationFailed
from opsdeck.core.pagination import Paged, PageParams, SortOrders, paginate
from opsdeck.core.security import Passwords
from opsdeck.settings import Settings

MAX_DISPLAY_NAME_LENGTH = 100

# The actor of work no person started (`opsdeck images process` run by an operator): a user
# row, so what it owns has an owner and the audit log names it, that can never sign in: it is
# inactive, its password hash is no argon2 hash (nothing verifies against it), and an
# administrator cannot change it. Nobody may take its name.
SYSTEM_USERNAME = "system"
SYSTEM_EMAIL = "system@opsdeck.invalid"
# Not a secret: a marker no password verifies against (it is no argon2 hash).
SYSTEM_PASSWORD_HASH = "!system: this account cannot sign in"  # noqa: S105  # nosec B105
RESERVED_USERNAMES = frozenset({SYSTEM_USERNAME})


@dataclass(frozen=True)
class UserQuery:
    q: str | None = None
    role: str | None = None
    is_active: bool | None = None


def create_user(
    session: Session,
    passwords: Passwords,
    *,
    username: str,
    email: str,
    password: str,
    display_name: str = "",
    role: str = "member",
    actor: User | None = None,
    actor_name: str | None = None,
    client: ClientContext | None = None,
) -> User:
    username = _normalised(normalise_username, username, "body.username")
    if username in RESERVED_USERNAMES:
        message = f"The username {username!r} is reserved for OpsDeck itself."
        raise ValidationFailed(
            message,
            details=[ErrorDetail(field="body.username", message=message, type="reserved")],
        )
    email = _normalised(normalise_email, email, "body.email")
    display_name = _valid_display_name(display_name)
    _check_role(role)
    check_password(password, username=username, email=email, field="body.password")
    _ensure_unique(session, username=username, email=email)
    user = User(
        username=username,
        email=email,
        display_name=display_name,
        role=role,
        is_active=True,
        password_hash=passwords.hash(password),
    )
    _save_unique(session, user)
    record(
        session,
        "user.created",
        actor=actor,
        actor_name=actor_name,
        target_type="user",
        target_id=user.id,
        details={"username": user.username, "role": user.role},
        client=client,
    )
    return user


def check_password(password: str, *, username: str, email: str, field: str) -> None:
    problem = password_problem(password, username=username, email=email)
    if problem is not None:
        raise ValidationFailed(
            f"The password is too weak: {problem}",
            code="weak_password",
            details=[ErrorDetail(field=field, message=problem, type="weak_password")],
        )


def get_user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"No user with id {user_id!r}.")
    return user


def get_active_user_by_username(session: Session, username: str) -> User | None:
    """For other modules' commands (`--as USER`): the active user of that name, or None."""
    return session.scalar(
        select(User).where(User.username == username.lower(), User.is_active.is_(True))
    )


def active_users_named(names: BindParameter[Any]) -> Select[tuple[str, str]]:
    """`username, id` of the active users whose usernames (lower case) the expanding bound
    parameter `names` lists: for another module folding them into a statement of its own (a
    message's @mentions, all in one query). A Core select, as `user_refs_of`."""
    users = User.__table__.c
    return select(users.username, users.id).where(
        users.username.in_(names), users.is_active.is_(True)
    )


def users_by_id(session: Session, user_ids: Iterable[str]) -> dict[str, User]:
    """For other modules showing people (an incident's commander, a comment's author): the
    users with these ids, inactive ones included, in one query."""
    wanted = {user_id for user_id in user_ids if user_id}
    if not wanted:
        return {}
    return {user.id: user for user in session.scalars(select(User).where(User.id.in_(wanted)))}


def user_refs_of(
    ids: Select[Any] | CompoundSelect[Any] | BindParameter[Any],
) -> Select[tuple[str, str, str]]:
    """`id, username, display_name` of the users whose ids `ids` (a one-column select, or an
    expanding bound parameter) names, inactive ones included: for another module folding the
    people it shows into a statement of its own (users_by_id without a statement of its own
    or User objects). A Core select (no ORM entity): the caller may union it or select from
    it."""
    users = User.__table__.c
    return select(users.id, users.username, users.display_name).where(users.id.in_(ids))


def first_active_admin(session: Session) -> User | None:
    """The oldest active admin, or None (a command's default owner)."""
    return session.scalars(
        select(User)
        .where(User.role == Role.ADMIN, User.is_active.is_(True))
        .order_by(User.created_at)
        .limit(1)
    ).first()


def system_user(session: Session, *, on_behalf_of: str = "opsdeck") -> User:
    """The system actor, created on first use (its creation is audited with `on_behalf_of`,
    e.g. the command that needed it). Refuses (409) when a person already holds the name from
    before it was reserved, rather than handing their account out."""
    user = session.scalar(select(User).where(User.username == SYSTEM_USERNAME))
    if user is not None:
        if not is_system_user(user):
            raise Conflict(
                f"A person's account is named {SYSTEM_USERNAME!r}; rename it, or name the "
                "owner of this work explicitly.",
                code="system_user_taken",
            )
        return user
    user = User(
        username=SYSTEM_USERNAME,
        email=SYSTEM_EMAIL,
        display_name="OpsDeck (system)",
        role=Role.MEMBER,
        is_active=False,
        password_hash=SYSTEM_PASSWORD_HASH,
    )
    _save_unique(session, user)
    record(
        session,
        "user.created",
        actor_name=on_behalf_of[:64],
        target_type="user",
        target_id=user.id,
        details={"username": user.username, "role": user.role, "system": True},
    )
    return user


def is_system_user(user: User) -> bool:
    return user.username == SYSTEM_USERNAME and user.password_hash == SYSTEM_PASSWORD_HASH


USER_SORTS = SortOrders(
    name="UserSort",
    id_column=User.id,
    keys={"username": User.username, "created_at": User.created_at},
    default="username",
)


def _matching(statement: Select[Any], q: str | None, *, email: bool) -> Select[Any]:
    """`statement` narrowed to the users whose username or display name (and, for the admins'
    list, e-mail) contains `q`, without case, wildcards matched literally."""
    needle = (q or "").strip().lower()
    if not needle:
        return statement
    fields = [User.username, func.lower(User.display_name), *([User.email] if email else [])]
    return statement.where(or_(*(field.contains(needle, autoescape=True) for field in fields)))


def list_users(session: Session, query: UserQuery, page: PageParams) -> Paged[User]:
    statement = _matching(select(User), query.q, email=True)
    if query.role is not None:
        statement = statement.where(User.role == query.role)
    if query.is_active is not None:
        statement = statement.where(User.is_active.is_(query.is_active))
    return paginate(session, statement, page)


def user_directory(session: Session, q: str | None, page: PageParams) -> Paged[User]:
    """The people anyone signed in may find (to invite to a room, to pick an assignee): active
    accounts, matched on username or display name (never on e-mail, which stays the admins'),
    sorted like the admins' list. The system account is inactive, so it is never offered."""
    statement = _matching(select(User).where(User.is_active.is_(True)), q, email=False)
    return paginate(session, statement, page)


def update_user(
    session: Session,
    user_id: str,
    *,
    role: str | None = None,
    is_active: bool | None = None,
    display_name: str | None = None,
    actor: User,
    client: ClientContext | None = None,
) -> User:
    """An administrator's change to another account (or their own). None leaves a field as is."""
    user = get_user(session, user_id)
    if is_system_user(user):
        raise Conflict(
            "The system account is OpsDeck's own and cannot be changed.", code="system_user"
        )
    if role is not None:
        _check_role(role)
    if display_name is not None:
        display_name = _valid_display_name(display_name)
    deactivate = is_active is False and user.is_active
    if user.is_admin and user.is_active and (deactivate or role not in (None, "admin")):
        _ensure_another_active_admin(session, user)
    if deactivate and user.id == actor.id:
        # Signing oneself out everywhere by mistake leaves nobody to undo it on a small team.
        raise Conflict(
            "You cannot deactivate your own account; ask another administrator to do it.",
            code="cannot_deactivate_self",
        )

    changes: list[tuple[str, dict[str, Any]]] = []
    if display_name is not None and display_name != user.display_name:
        user.display_name = display_name
        changes.append(("user.updated", {"fields": ["display_name"]}))
    if role is not None and role != user.role:
        changes.append(("user.role_changed", {"from": user.role, "to": role}))
        user.role = role
    if deactivate:
        user.is_active = False
        revoked = _sign_out_everywhere(session, user, reason="deactivated")
        changes.append(("user.deactivated", revoked))
    elif is_active is True and not user.is_active:
        user.is_active = True
        changes.append(("user.reactivated", {}))
    for action, details in changes:
        record(
            session,
            action,
            actor=actor,
            target_type="user",
            target_id=user.id,
            details=details,
            client=client,
        )
    session.flush()
    return user


def update_profile(
    session: Session,
    user: User,
    *,
    display_name: str | None = None,
    email: str | None = None,
    client: ClientContext | None = None,
) -> User:
    """The signed-in user's own change to their name or e-mail address."""
    changed: list[str] = []
    if display_name is not None:
        display_name = _valid_display_name(display_name)
        if display_name != user.display_name:
            user.display_name = display_name
            changed.append("display_name")
    if email is not None:
        email = _normalised(normalise_email, email, "body.email")
        if email != user.email:
            _ensure_unique(session, email=email, exclude_id=user.id)
            user.email = email
            changed.append("email")
    if changed:
        _save_unique(session, user)
        record(
            session,
            "user.updated",
            actor=user,
            target_type="user",
            target_id=user.id,
            details={"fields": changed},
            client=client,
        )
    return user


def change_password(
    session: Session,
    passwords: Passwords,
    settings: Settings,
    principal: Principal,
    *,
    current_password: str,
    new_password: str,
    client: ClientContext | None = None,
) -> None:
    """Set a new password and sign out every other session of the user."""
    user = principal.user
    check_password(
        new_password, username=user.username, email=user.email, field="body.new_password"
    )
    reauthenticate(
        session,
        passwords,
        settings,
        user,
        password=current_password,
        reauth_field="body.current_password",
        purpose="password_change",
        client=client,
    )
    user.password_hash = passwords.hash(new_password)
    user.password_changed_at = utcnow()
    keep = principal.auth_session.id if principal.auth_session else None
    revoked = revoke_sessions(session, user, reason="password_changed", keep_session_id=keep)
    record(
        session,
        "auth.password.changed",
        actor=user,
        target_type="user",
        target_id=user.id,
        details={"other_sessions_revoked": revoked},
        client=client,
    )


def _normalised(normalise: Callable[[str], str], value: str, field: str) -> str:
    try:
        return normalise(value)
    except ValueError as exc:
        name = field.rsplit(".", 1)[-1]
        raise ValidationFailed(
            f"Invalid {name}: {exc}",
            details=[ErrorDetail(field=field, message=str(exc), type="value_error")],
        ) from exc


def _valid_display_name(value: str) -> str:
    value = clean_display_name(value)
    if len(value) > MAX_DISPLAY_NAME_LENGTH:
        message = f"Use at most {MAX_DISPLAY_NAME_LENGTH} characters."
        raise ValidationFailed(
            f"Invalid display_name: {message}",
            details=[
                ErrorDetail(field="body.display_name", message=message, type="string_too_long")
            ],
        )
    return value


def _check_role(role: str) -> None:
    if role not in ROLES:
        message = f"Use one of: {', '.join(ROLES)}."
        raise ValidationFailed(
            f"Invalid role: {message}",
            details=[ErrorDetail(field="body.role", message=message, type="literal_error")],
        )


def _ensure_unique(
    session: Session,
    *,
    username: str | None = None,
    email: str | None = None,
    exclude_id: str | None = None,
) -> None:
    others = select(User.id)
    if exclude_id is not None:
        others = others.where(User.id != exclude_id)
    if username is not None and session.scalar(others.where(User.username == username)):
        message = f"The username {username!r} is already taken."
        raise Conflict(
            message, details=[ErrorDetail(field="body.username", message=message, type="conflict")]
        )
    if email is not None and session.scalar(others.where(User.email == email)):
        message = f"Another account already uses the e-mail address {email}."
        raise Conflict(
            message, details=[ErrorDetail(field="body.email", message=message, type="conflict")]
        )


def _save_unique(session: Session, user: User) -> None:
    """Flush inside a savepoint: if a concurrent request took the name or address between the
    check and now, answer 409 and leave the rest of the transaction usable."""
    try:
        with session.begin_nested():
            session.add(user)
    except IntegrityError as exc:
        raise Conflict("Another account already uses that username or e-mail address.") from exc


def _ensure_another_active_admin(session: Session, user: User) -> None:
    # Locking the admin rows serialises two admins demoting each other at the same moment.
    admins = session.scalars(
        select(User.id).where(User.role == "admin", User.is_active.is_(True)).with_for_update()
    ).all()
    if not any(admin_id != user.id for admin_id in admins):
        raise Conflict(
            f"{user.username} is the last active administrator; make another user an "
            "administrator first."
        )


def _sign_out_everywhere(session: Session, user: User, *, reason: str) -> dict[str, int]:
    sessions = revoke_sessions(session, user, reason=reason)
    tokens = revoke_all_api_tokens(session, user)
    return {"sessions_revoked": sessions, "api_tokens_revoked": tokens}
