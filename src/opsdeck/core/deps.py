"""FastAPI dependencies shared by every module."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from opsdeck.core.db import unit_of_work
from opsdeck.core.observability import current_request_id
from opsdeck.core.security import Passwords
from opsdeck.settings import Settings


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request, committed before the response is sent; rolled back when
    the request fails, keeping what a refusal asked to keep (`core.db.keep_on_refusal`)."""
    session: Session = request.app.state.sessionmaker()
    with unit_of_work(session):
        yield session


def get_passwords(request: Request) -> Passwords:
    passwords: Passwords = request.app.state.passwords
    return passwords


@dataclass(frozen=True)
class ClientContext:
    """Who is calling from where: recorded on sessions and audit entries."""

    ip: str | None
    user_agent: str | None
    request_id: str | None


def get_client(request: Request) -> ClientContext:
    agent = request.headers.get("user-agent")
    return ClientContext(
        ip=request.client.host if request.client else None,
        user_agent=agent[:255] if agent else None,
        request_id=current_request_id(),
    )


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
PasswordsDep = Annotated[Passwords, Depends(get_passwords)]
ClientDep = Annotated[ClientContext, Depends(get_client)]
