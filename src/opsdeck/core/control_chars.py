"""Control characters are refused at the edge, before any route or database sees them.

PostgreSQL refuses NUL in text (`DataError: text fields cannot contain NUL`), so a NUL in a
user name, a search or an id used to answer 500 there while SQLite answered 401 or 404: the
same request behaved differently per database, and fuzzing only the embedded stack missed it.
Other C0 controls (escape, bell, backspace...) make no sense in any field of this API either,
and they are how log and terminal injection starts. Tab, line feed and carriage return stay
allowed in bodies (Markdown, multi-line text); the path and the query take none at all.

Checked here: the path, the query string, JSON and form-urlencoded bodies (every key and
string value, at any depth), by the middleware, before any route runs; and the text fields of
multipart bodies (every part without a file name, and every part's name), by an app-wide
dependency (`refuse_controls_in_multipart`) that reads the form the route parses anyway: the
middleware would have to hold a whole upload in memory, while the form parser spools files to
disk. Files themselves are binary and not looked into. Either way the answer is the same 422.

Bidirectional formatting characters (U+202E RIGHT-TO-LEFT OVERRIDE and friends) are valid
text, so they are not refused here; but in a name they can make "invoice_exe.pdf" show as
something else, or hide what a spreadsheet cell starts with. Modules strip them with
`strip_bidi_controls` where text is shown or exported: display names, product names,
the output CSV.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsdeck.core.errors import ErrorDetail, ValidationFailed, error_body

# Any C0 control or DEL; in bodies, tab, LF and CR are allowed.
_ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BODY_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A JSON body can hold a control only as an escape (raw ones are invalid JSON, refused by the
# parser): bodies without one of these are passed on without being parsed here.
_JSON_CONTROL_ESCAPE = re.compile(rb"\\u00[01][0-9a-fA-F]|\\u007[fF]")
_FORM_CONTROL_ESCAPE = re.compile(rb"%[01][0-9a-fA-F]|%7[fF]")
_CHECKED_BODIES = ("application/json", "application/x-www-form-urlencoded")
MESSAGE = "Control characters (such as NUL) are not allowed here."

# The bidirectional formatting characters: the embeddings and overrides (U+202A-U+202E), the
# isolates (U+2066-U+2069), the left-to-right and right-to-left marks (U+200E, U+200F) and
# the Arabic letter mark (U+061C). Unicode Technical Report #36 and CVE-2021-42574
# ("Trojan Source") describe what they can disguise.
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_BIDI_CONTROL = re.compile("[" + "".join(sorted(BIDI_CONTROLS)) + "]")


def strip_bidi_controls(text: str) -> str:
    """`text` without its bidirectional formatting characters, so it shows as it is stored."""
    return _BIDI_CONTROL.sub("", text)


class ControlCharacterMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _ANY_CONTROL.search(scope.get("path", "")):
            await _refuse(send, ["path"])
            return
        query = scope.get("query_string", b"").decode("latin-1")
        fields = [f"query.{name}" for name in _controls_in_pairs(query, _ANY_CONTROL)]
        if fields:
            await _refuse(send, fields)
            return
        content_type = _content_type(scope)
        if content_type not in _CHECKED_BODIES:
            await self.app(scope, receive, send)
            return
        body, more = await _read_body(receive)
        fields = _controls_in_body(content_type, body)
        if fields:
            await _refuse(send, fields)
            return
        await self.app(scope, _replay(body, more, receive), send)


def _content_type(scope: Scope) -> str:
    for name, value in scope.get("headers") or []:
        if name == b"content-type":
            return str(value.decode("latin-1")).split(";", 1)[0].strip().lower()
    return ""


async def _read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    """The whole body (BodySizeLimitMiddleware, outside this one, has bounded it) and any
    message after it (a disconnect) to hand on."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(parts), [message]
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts), []


def _replay(body: bytes, more: list[Message], receive: Receive) -> Receive:
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}, *more]

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


def _controls_in_body(content_type: str, body: bytes) -> list[str]:
    if content_type == "application/json":
        if not _JSON_CONTROL_ESCAPE.search(body):
            return []
        try:
            document = json.loads(body)
        except ValueError:
            return []  # the route's parser answers with its own 422
        return [f"body{path}" for path in _controls_in_json(document, "")]
    if not _FORM_CONTROL_ESCAPE.search(body) and not _BODY_CONTROL.search(body.decode("latin-1")):
        return []
    return [f"body.{name}" for name in _controls_in_pairs(body.decode("latin-1"), _BODY_CONTROL)]


def _controls_in_pairs(encoded: str, pattern: re.Pattern[str]) -> list[str]:
    found = []
    for name, value in parse_qsl(encoded, keep_blank_values=True, errors="replace"):
        if pattern.search(name) or pattern.search(value):
            found.append(_ANY_CONTROL.sub("?", name))
    return found


def _controls_in_json(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, str):
        if _BODY_CONTROL.search(value):
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{_ANY_CONTROL.sub('?', key)}"
            if _BODY_CONTROL.search(key):
                yield where
            else:
                yield from _controls_in_json(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _controls_in_json(item, f"{path}[{index}]")


async def refuse_controls_in_multipart(request: Request) -> None:
    """The app-wide dependency that refuses a multipart body whose text fields (or part
    names) hold a control character, with the middleware's 422 naming each field. Runs before
    the route's own dependencies (authentication included), like the middleware does. A form
    that does not parse is left to the route, which answers it as before."""
    if _content_type(request.scope) != "multipart/form-data":
        return
    try:
        form = await request.form()
    except MultiPartException:
        return
    fields: list[str] = []
    for name, value in form.multi_items():
        text = "" if isinstance(value, UploadFile) else value
        if _BODY_CONTROL.search(name) or _BODY_CONTROL.search(text):
            field = f"body.{_ANY_CONTROL.sub('?', name)}"
            if field not in fields:
                fields.append(field)
    if fields:
        raise ValidationFailed(
            _summary(fields),
            details=[
                ErrorDetail(field=field, message=MESSAGE, type="control_character")
                for field in fields
            ],
        )


def _summary(fields: list[str]) -> str:
    return f"Invalid request: check {', '.join(fields[:5])}."


async def _refuse(send: Send, fields: list[str]) -> None:
    details = [
        {"field": field, "message": MESSAGE, "type": "control_character"} for field in fields
    ]
    body = json.dumps(error_body("validation_error", _summary(fields), details)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
