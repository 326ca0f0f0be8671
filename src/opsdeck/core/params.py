"""Parameter types the OpenAPI document describes truthfully.

`datetime` alone takes a number too (pydantic reads `0.5` or `"1700000000"` as Unix seconds),
while the document says `format: date-time`: a client generated from it, or a fuzzer checking
it, is told numbers are refused. `IsoDateTime` refuses them, with a 422 naming the parameter.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator

_NUMBER = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*")


def _iso_8601_only(value: Any) -> Any:
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("Use an ISO 8601 date and time (e.g. 2026-12-01T09:30:00Z), not a number.")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_8601_only)]
