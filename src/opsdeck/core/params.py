"""Parameter types the OpenAPI document describes truthfully.

`datetime` and `date` alone take a number too (pydantic reads `0.5` or `"1700000000"` as Unix
seconds), while the document says `format: date-time` or `date`: a client generated from it,
or a fuzzer checking it, is told numbers are refused. `IsoDateTime` and `IsoDate` refuse them,
with a 422 naming the parameter or field.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, StringConstraints
from starlette.convertors import Convertor, register_url_convertor

_NUMBER = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) or (
        isinstance(value, str) and bool(_NUMBER.fullmatch(value))
    )


def _iso_8601_only(value: Any) -> Any:
    if _is_number(value):
        raise ValueError("Use an ISO 8601 date and time (e.g. 2026-12-01T09:30:00Z), not a number.")
    return value


def _iso_8601_date_only(value: Any) -> Any:
    if _is_number(value):
        raise ValueError("Use an ISO 8601 date (e.g. 2026-12-01), not a number.")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_8601_only)]
# The same for a day: pydantic reads 0 or 1767225600 as a Unix time's date.
IsoDate = Annotated[date, BeforeValidator(_iso_8601_date_only)]


class HexIdConvertor(Convertor[str]):
    """Path segments that are our ids (32 hex digits, core.db.new_id): a route declared with
    `{name:hexid}` does not also match a fixed path beside it (`/integrations/generic` next to
    `/integrations/{integration_id:hexid}`), so a method the fixed path does not take is a 405
    with the right `Allow`, not a 404 from the other route."""

    regex = "[0-9a-f]{32}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("hexid", HexIdConvertor())

# One of our ids anywhere else (a query parameter, a body field): 32 lower-case hex digits, so
# an empty or made-up value is a 422 naming the field rather than being echoed back as if it
# named someone (`/chat/presence?user_id=` once answered an item whose `user_id` was empty).
HexId = Annotated[str, StringConstraints(pattern=f"^{HexIdConvertor.regex}$")]


def _trim_not_blank(value: str) -> str:
    trimmed = value.strip()
    if not trimmed:
        raise ValueError("must not be blank")
    return trimmed


# Text whose surrounding white space is dropped, checked against its bounds as sent: with
# `Field(min_length=1, max_length=N)` before it, what the document says (maxLength N) is what
# the server enforces, and all-blank text is refused. (pydantic's strip_whitespace=True checks
# the length after stripping, so 300 spaces around a 200-character title were accepted.)
Trimmed = AfterValidator(_trim_not_blank)
