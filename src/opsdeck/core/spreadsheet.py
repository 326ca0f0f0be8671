"""CSV files people open in spreadsheets: cells neutralised against formula injection, and
streamed as UTF-8 chunks.

- Every cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`
  (OWASP's advice against CSV injection): a spreadsheet shows it as text instead of evaluating
  it. A cell such as "-5% off" therefore reads "'-5% off"; that is the accepted price.
- UTF-8 with a byte order mark by default (Excel reads a CSV without one in the machine's legacy
  code page), CRLF line ends and minimal quoting, as RFC 4180 and Excel expect.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence

from opsdeck.core.control_chars import strip_bidi_controls

# OWASP CSV injection: characters a spreadsheet may read as the start of a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
DEFAULT_CHUNK_SIZE = 64 * 1024
BOM = "\ufeff"


def neutralise_cell(value: str) -> str:
    """The cell as a spreadsheet shows it as text rather than evaluating it as a formula, and
    without bidirectional formatting characters, which could disguise its text (or hide a
    formula's first character behind an override: they are taken out first)."""
    value = strip_bidi_controls(value)
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def iter_csv(
    rows: Iterable[Sequence[str]], *, bom: bool = True, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Iterator[bytes]:
    """`rows` (the header first) as UTF-8 chunks of about `chunk_size` bytes, each ending at a
    record boundary, every cell neutralised; rows are read as the chunks are taken."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if bom:
        buffer.write(BOM)
    for row in rows:
        writer.writerow([neutralise_cell(cell) for cell in row])
        if buffer.tell() >= chunk_size:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()
