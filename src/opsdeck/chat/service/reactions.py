"""Reactions: one emoji per toggle, per person and message (a second toggle takes it back).

An emoji is one grapheme of Unicode emoji: a pictographic code point, optionally with a
variation selector, a skin tone, keycap or tag characters, or several of those joined by
zero-width joiners (a family), or a pair of regional indicators (a flag). Anything else
(words, two emoji, markup) is refused with `invalid_emoji`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opsdeck.chat.models import Message, Reaction
from opsdeck.chat.service.access import Actor, require_member, require_writable
from opsdeck.core.db import affected_rows, utcnow
from opsdeck.core.errors import NotFound, ValidationFailed

MAX_EMOJI_CODE_POINTS = 16
# Distinct emoji on one message: a flood of different ones is refused.
MAX_EMOJI_PER_MESSAGE = 50

_ZWJ = 0x200D
_VS16 = 0xFE0F
_KEYCAP = 0x20E3
_PICTOGRAPHIC = (
    (0x1F000, 0x1FAFF),
    (0x2600, 0x27BF),
    (0x2300, 0x23FF),
    (0x2B00, 0x2BFF),
    (0x2190, 0x21FF),
    (0x2934, 0x2935),
    (0x3030, 0x3030),
    (0x303D, 0x303D),
    (0x3297, 0x3297),
    (0x3299, 0x3299),
    (0x00A9, 0x00A9),
    (0x00AE, 0x00AE),
    (0x203C, 0x203C),
    (0x2049, 0x2049),
    (0x2122, 0x2122),
    (0x2139, 0x2139),
    (0x24C2, 0x24C2),
    (0x25AA, 0x25FE),
)
_REGIONAL = (0x1F1E6, 0x1F1FF)
_MODIFIERS = (0x1F3FB, 0x1F3FF)
_TAGS = (0xE0020, 0xE007F)


def _within(code: int, bounds: tuple[int, int]) -> bool:
    return bounds[0] <= code <= bounds[1]


def _pictographic(code: int) -> bool:
    return any(_within(code, bounds) for bounds in _PICTOGRAPHIC) and not _within(code, _REGIONAL)


def is_emoji(text: str) -> bool:
    """Whether `text` is one emoji grapheme (see the module's docstring)."""
    codes = [ord(char) for char in text]
    if not codes or len(codes) > MAX_EMOJI_CODE_POINTS:
        return False
    if all(_within(code, _REGIONAL) for code in codes):
        return len(codes) == 2  # a flag
    if len(codes) >= 2 and codes[-1] == _KEYCAP and chr(codes[0]) in "0123456789#*":
        return all(code in (_VS16, _KEYCAP) for code in codes[1:])  # 1️⃣
    expect_base = True
    for code in codes:
        if expect_base:
            if not _pictographic(code):
                return False
            expect_base = False
        elif code == _ZWJ:
            expect_base = True
        elif code == _VS16 or _within(code, _MODIFIERS) or _within(code, _TAGS):
            continue
        else:
            return False  # a second emoji, or text
    return not expect_base


def check_emoji(emoji: str) -> str:
    if not is_emoji(emoji):
        raise ValidationFailed(
            "A reaction is one emoji.",
            details=[{"field": "body.emoji", "message": "not one emoji", "type": "emoji"}],
            code="invalid_emoji",
        )
    return emoji


@dataclass(frozen=True)
class ReactionSummary:
    emoji: str
    count: int
    user_ids: list[str]


@dataclass(frozen=True)
class Toggled:
    message: Message
    added: bool


def toggle_reaction(session: Session, actor: Actor, message_id: str, emoji: str) -> Toggled:
    """Add `actor`'s `emoji` to the message, or take it back when it is there. Members of the
    conversation react; not on a deleted message nor in an archived room."""
    check_emoji(emoji)
    message = session.get(Message, message_id) if len(message_id) <= 32 else None
    if message is None:
        raise NotFound("There is no such message.", code="message_not_found")
    try:
        conversation, _member = require_member(session, actor, message.conversation_id)
    except NotFound:
        raise NotFound("There is no such message.", code="message_not_found") from None
    if message.deleted_at is not None:
        raise NotFound("The message was deleted.", code="message_deleted")
    require_writable(conversation)
    removed = affected_rows(
        session.execute(
            delete(Reaction).where(
                Reaction.message_id == message.id,
                Reaction.user_id == actor.id,
                Reaction.emoji == emoji,
            )
        )
    )
    if removed:
        session.flush()
        return Toggled(message, added=False)
    distinct = set(session.scalars(select(Reaction.emoji).where(Reaction.message_id == message.id)))
    if emoji not in distinct and len(distinct) >= MAX_EMOJI_PER_MESSAGE:
        raise ValidationFailed(
            f"A message has at most {MAX_EMOJI_PER_MESSAGE} different reactions.",
            details=[{"field": "body.emoji", "message": "too many", "type": "too_many"}],
            code="too_many_reactions",
        )
    try:
        with session.begin_nested():
            session.add(
                Reaction(message_id=message.id, user_id=actor.id, emoji=emoji, created_at=utcnow())
            )
    except IntegrityError:
        pass  # the same toggle twice at once: the other one added it
    return Toggled(message, added=True)


def reactions_for(session: Session, message_ids: Sequence[str]) -> dict[str, list[ReactionSummary]]:
    """The reactions of a page of messages in one query: per message, per emoji in the order
    it was first used, with who reacted."""
    if not message_ids:
        return {}
    rows = session.execute(
        select(Reaction.message_id, Reaction.emoji, Reaction.user_id)
        .where(Reaction.message_id.in_(list(message_ids)))
        .order_by(Reaction.message_id, Reaction.created_at, Reaction.user_id)
    )
    grouped: dict[str, dict[str, list[str]]] = {}
    for message_id, emoji, user_id in rows:
        grouped.setdefault(message_id, {}).setdefault(emoji, []).append(user_id)
    return {
        message_id: [
            ReactionSummary(emoji=emoji, count=len(users), user_ids=users)
            for emoji, users in by_emoji.items()
        ]
        for message_id, by_emoji in grouped.items()
    }
