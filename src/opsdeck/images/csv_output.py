"""The output CSV of an image batch: the input's columns as uploaded, then `Output Image Urls`
(one position per input URL, in input order, empty where the image failed) and `Errors`
(`<position>: <reason>` per failed image, joined with `; `).

Decisions a reader may look for:
- Every cell, header included, that starts with `=`, `+`, `-`, `@`, a tab or a carriage return
  gets a leading `'` (OWASP's advice against formula injection, `core.spreadsheet`): product
  names and extra columns come from the uploader and the file is opened in spreadsheets. A
  cell such as "-5% off" therefore reads "'-5% off"; that is the accepted price of the rule.
- UTF-8 with a byte order mark by default: the file's readers are people with Excel, which
  reads a CSV without a BOM in the machine's legacy code page and garbles non-ASCII names.
  `bom=False` gives plain UTF-8 for programs (the input parser accepts both).
- CRLF line ends and minimal quoting, as RFC 4180 and Excel expect.
- Input columns are reproduced even when one is already named `Output Image Urls` or `Errors`
  (an output CSV uploaded again): nothing the user sent is dropped, and the new columns are
  always the last two.
- Bidirectional formatting characters (U+202E and friends) are taken out of every cell: they
  can make a cell show text other than what it holds (core.control_chars).
- A comma inside an output URL is written `%2C`, so the list keeps one position per input.
- An image with an error is a failure even if it has an output URL; one with neither (still
  pending) leaves its position empty without an error. Reasons are put on one line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from opsdeck.core.spreadsheet import BOM as _BOM
from opsdeck.core.spreadsheet import DEFAULT_CHUNK_SIZE
from opsdeck.core.spreadsheet import FORMULA_PREFIXES as FORMULA_PREFIXES
from opsdeck.core.spreadsheet import neutralise_cell as neutralise_cell

OUTPUT_URLS_COLUMN = "Output Image Urls"
ERRORS_COLUMN = "Errors"


@dataclass(frozen=True, slots=True)
class OutputImage:
    """One input image's outcome: an output URL when it succeeded, an error when it failed,
    neither while it is still pending (its position stays empty, with no error)."""

    output_url: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class OutputRow:
    """A product: its input cells (one per header column, as uploaded) and its images in
    input order."""

    cells: Sequence[str]
    images: Sequence[OutputImage]


def output_urls_cell(images: Sequence[OutputImage]) -> str:
    return ",".join(
        ""
        if image.error is not None or not image.output_url
        else image.output_url.replace(",", "%2C")
        for image in images
    )


def errors_cell(images: Sequence[OutputImage]) -> str:
    # Reasons are collapsed to one line: the cell is read by people, not parsed.
    return "; ".join(
        f"{position}: {' '.join(image.error.split()) or 'failed'}"
        for position, image in enumerate(images, start=1)
        if image.error is not None
    )


def iter_output_csv(
    header: Sequence[str],
    rows: Iterable[OutputRow],
    *,
    bom: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Iterator[bytes]:
    """The output CSV as UTF-8 chunks of about `chunk_size` bytes, each ending at a record
    boundary, for a streaming response: rows are read from `rows` as the chunks are taken.

    Raises ValueError when a row's cells do not match the header."""
    width = len(header)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if bom:
        buffer.write(_BOM)
    writer.writerow([*map(neutralise_cell, header), OUTPUT_URLS_COLUMN, ERRORS_COLUMN])
    for number, row in enumerate(rows, start=1):
        if len(row.cells) != width:
            raise ValueError(
                f"output row {number} has {len(row.cells)} cells for {width} header columns"
            )
        writer.writerow(
            [
                *map(neutralise_cell, row.cells),
                neutralise_cell(output_urls_cell(row.images)),
                neutralise_cell(errors_cell(row.images)),
            ]
        )
        if buffer.tell() >= chunk_size:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


def write_output_csv(
    header: Sequence[str], rows: Iterable[OutputRow], *, bom: bool = True
) -> bytes:
    """The whole output CSV as UTF-8 bytes (see `iter_output_csv`)."""
    return b"".join(iter_output_csv(header, rows, bom=bom))
