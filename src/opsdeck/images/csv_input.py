"""The products CSV of an image batch, parsed and checked before anything is stored.

    S. No.,Product Name,Input Image Urls
    1,SKU1,"https://example.com/a.jpg,https://example.com/b.jpg"

Every problem in the file is collected in one pass, so the error names every bad row (up to
`max_errors`, then how many more) and the user fixes the file in one go. A file that is not text
at all is refused with `UnsupportedMediaType` (415); everything else with `ValidationFailed`
(422), whose `details` entries are `{"row", "column", "value", "message"}` with `row` the line
number in the file (the first line of a record whose quoted cell spans lines).

Decisions a reader may look for:
- Text is UTF-8, with or without a byte order mark. Nothing else is guessed: a Windows-1252
  file that happens to decode as something would silently corrupt product names. UTF-16 and
  UTF-32 files (by their byte order mark, or NUL every other byte) get a 422 telling the user
  to save as UTF-8; known binary signatures (images, PDF, ZIP/.xlsx, .xls, gzip), any NUL
  byte, or control bytes in over 2% of the first 8 KiB get a 415.
- Lines end with LF, CRLF or CR, as the csv module reads them; line numbers count the same way.
- Cells are separated by commas, semicolons (what spreadsheets save as "CSV" in locales whose
  decimal mark is a comma) or tabs: the separator is the one that finds the most required
  columns in the header line (commas first on a tie), and the whole file is read with it. A
  header split by anything else (`|`) is refused with a message naming that separator.
- Header names match without regard to case, spaces or punctuation ("S.No", "s no" and
  "S. No." are the same column; "Serial Number" is not). A required column found twice is an
  error rather than a guess. Extra columns are kept, in order, for the output CSV.
- The first non-blank line is the header. A line whose cells are all blank (Excel writes `,,`)
  is skipped wherever it is.
- The URL cell is split on commas; blank entries (`a,,b`, a trailing comma) are skipped, so a
  comma inside a URL must be written `%2C`. Only the URL's syntax is checked here; the outbound
  guard decides at fetch time where a URL may lead.
- Trailing cells beyond the header that are blank are tolerated; any other cell count mismatch
  is an error, since the columns would no longer line up.
- Serial numbers are compared after trimming, as written ("1" and "01" differ).
- Over `max_rows` rows the parse stops at the first row too many and reports only that: the
  file has to be split anyway, and errors from part of the file would not be "every bad row".
- A value echoed in `details` is cut at 300 characters.
- Cells longer than the csv module's field limit (131,072 characters) are refused rather than
  raising that process-wide limit; a legal row (100 URLs of 2,048 characters at most) stays far
  below it in practice, and such a cell nearly always comes from a quote left open.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import ipaddress
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from opsdeck.core.control_chars import strip_bidi_controls
from opsdeck.core.errors import UnsupportedMediaType, ValidationFailed

SERIAL_NUMBER_COLUMN = "S. No."
PRODUCT_NAME_COLUMN = "Product Name"
INPUT_URLS_COLUMN = "Input Image Urls"
REQUIRED_COLUMNS = (SERIAL_NUMBER_COLUMN, PRODUCT_NAME_COLUMN, INPUT_URLS_COLUMN)

DEFAULT_MAX_ROWS = 10_000
DEFAULT_MAX_URLS_PER_ROW = 100
DEFAULT_MAX_ERRORS = 50
MAX_URL_LENGTH = 2048
# image_products.serial_number is VARCHAR(255).
MAX_SERIAL_NUMBER_LENGTH = 255

# Appended after the file's last line. A lone surrogate cannot come out of strict UTF-8
# decoding, so it never collides with data; if it ends up inside a cell rather than in a row of
# its own, a quoted cell was still open at the end of the file.
_END = "\ud800"
_SHOWN_VALUE = 300
_SHOWN_IN_MESSAGE = 120
_SHOWN_COLUMNS = 20

_SAVE_AS_UTF8 = "Save it as CSV UTF-8 (Excel: File > Save As > CSV UTF-8) and upload it again."

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook is one)"),
    (b"PK\x05\x06", "a ZIP archive (an Excel .xlsx workbook is one)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel .xls workbook or another Office file"),
    (b"\x1f\x8b", "a gzip archive"),
)
# Bytes that do not occur in CSV text: C0 controls except tab, LF, FF and CR, and DEL.
_CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F])
_NOT_CONTROL_BYTES = bytes(b for b in range(256) if b not in _CONTROL_BYTES)
_SNIFF_BYTES = 8192

_BAD_URL_CHARACTER = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060\ufeff\\]")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_HOST_LABEL = re.compile(r"(?!-)[\w-]{1,63}(?<!-)")
# The shape nearly every image URL has: http(s), an ASCII host name, a small port, then
# printable ASCII but for the comma and the backslash. A URL of this shape passes every check
# in `_diagnose_url`, so those only run for the others, and a cell that is a list of such URLs
# is checked by one match. Tests hold both fast paths to the full check. Quantifiers are
# possessive: nothing to backtrack into, so a miss costs no more than a hit.
_PLAIN_HOST = (
    r"(?=[A-Za-z0-9_.-]{1,253}+\.?+(?![A-Za-z0-9_.-]))"
    r"(?!-)[A-Za-z0-9_-]{1,63}+(?<!-)(?:\.(?!-)[A-Za-z0-9_-]{1,63}+(?<!-))*+\.?+"
)
# A TCP port, 1 to 65535, without leading zeros (longest forms first: the group is atomic).
_PLAIN_PORT = (
    r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
)
_PLAIN_URL_PATTERN = rf"(?i:https?)://{_PLAIN_HOST}(?::{_PLAIN_PORT})?+(?:[/?#][!-+\--\[\]-~]*+)?+"
_PLAIN_URL = re.compile(_PLAIN_URL_PATTERN)
_PLAIN_URL_ITEM = rf"[ \t]*+(?:{_PLAIN_URL_PATTERN})?+[ \t]*+"
_PLAIN_URL_LIST = re.compile(rf"{_PLAIN_URL_ITEM}(?:,{_PLAIN_URL_ITEM})*+")


# Not frozen: a frozen dataclass costs a microsecond a row to build, a tenth of the parse.
@dataclass(slots=True)
class ProductRow:
    """One product of the CSV. `urls` are trimmed, in file order, blanks dropped; `cells` is
    the whole row as written (untrimmed, one per column of `header`), for the output CSV."""

    serial_number: str
    product_name: str
    urls: list[str]
    line: int
    cells: tuple[str, ...] = ()
    # The file's header row as written; the same tuple object is shared by every row.
    header: tuple[str, ...] = ()


def normalise_column_name(name: str) -> str:
    """The key a header name is matched by: letters and digits only, case-folded."""
    return "".join(ch for ch in name.casefold() if ch.isalnum())


def validate_image_url(url: str) -> str | None:
    """Check the syntax of an image URL: None when it is acceptable, else what is wrong with
    it, phrased to follow the URL ("'example.com/a.jpg' " + "must start with http:// or
    https://").

    Syntax only: http or https, a host, no credentials, no spaces or invisible characters,
    at most 2,048 characters. Where the URL may lead is decided at fetch time by the outbound
    guard, after DNS resolution."""
    if len(url) <= MAX_URL_LENGTH and _PLAIN_URL.fullmatch(url):
        return None
    return _diagnose_url(url)


def _diagnose_url(url: str) -> str | None:
    if not url:
        return "is empty"
    if len(url) > MAX_URL_LENGTH:
        return f"is {len(url):,} characters long; the limit is {MAX_URL_LENGTH:,}"
    bad = _BAD_URL_CHARACTER.search(url)
    if bad:
        char = bad.group()
        if char == "\\":
            return "contains a backslash; use / or write it as %5C"
        if char == " ":
            return "contains a space; write spaces as %20 and separate URLs with commas"
        if char.isspace():
            return f"contains a whitespace character (U+{ord(char):04X}); separate URLs with commas"
        return f"contains an invisible or control character (U+{ord(char):04X})"
    if not url[:8].lower().startswith(("http://", "https://")):
        scheme, separator, _ = url.partition("://")
        if separator and _SCHEME.fullmatch(scheme):
            return f"uses {scheme.lower()}://; only http:// and https:// are allowed"
        return "must start with http:// or https://"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a valid URL (check the host and port)"
    if "@" in parts.netloc:
        return "contains a user name or password; remove them"
    host = parts.hostname
    if not host:
        return "has no host name"
    if port == 0:
        return "has an invalid port"
    if parts.netloc.startswith("["):
        if "%" in host:
            return "has an IPv6 zone identifier, which is not allowed"
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return "has an invalid IPv6 address"
        return None
    if not _is_host_name(host):
        return f"has an invalid host name {_shorten(host, 80)!r}"
    return None


def _is_host_name(host: str) -> bool:
    name = host[:-1] if host.endswith(".") else host
    return len(name) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in name.split("."))


def parse_products(
    data: bytes,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_urls_per_row: int = DEFAULT_MAX_URLS_PER_ROW,
    max_errors: int = DEFAULT_MAX_ERRORS,
) -> list[ProductRow]:
    """Parse a products CSV, or raise naming every problem in it.

    Raises `UnsupportedMediaType` (code `csv_not_text`) for a binary file, and
    `ValidationFailed` with code `csv_encoding`, `csv_empty`, `csv_missing_columns`,
    `csv_duplicate_columns`, `csv_too_many_rows` or, for problems in rows, `csv_invalid`."""
    if max_rows < 1 or max_urls_per_row < 1 or max_errors < 1:
        raise ValueError("max_rows, max_urls_per_row and max_errors must be at least 1")
    text = _decode(data, max_errors)
    delimiter = detect_delimiter(text)
    records = _records(text, delimiter)
    header, header_line = _read_header(records)
    serial_at, name_at, urls_at = _locate_columns(header, header_line)
    header_cells = tuple(header)
    width = len(header)
    serial_column = header[serial_at]
    name_column = header[name_at]
    urls_column = header[urls_at]

    problems = _Problems(max_errors)
    products: list[ProductRow] = []
    first_line_of_serial: dict[str, int] = {}
    rows = 0
    for line, row in records:
        if isinstance(row, _Broken):
            problems.add(line, row.column_of(header), row.value, f"Line {line}: {row.message}")
            continue
        if not "".join(row).strip():
            continue
        rows += 1
        if rows > max_rows:
            raise _too_many_rows(line, max_rows)
        if len(row) != width:
            if len(row) > width and not "".join(row[width:]).strip():
                row = row[:width]
            else:
                problems.add(
                    line,
                    None,
                    delimiter.join(row),
                    _cell_count_message(line, row, width, delimiter),
                )
                continue

        serial = row[serial_at].strip()
        _check_serial_number(serial, line, serial_column, first_line_of_serial, problems)
        # Shown in the web app: without bidirectional controls that could disguise it.
        product_name = strip_bidi_controls(row[name_at]).strip()
        if not product_name:
            problems.add(line, name_column, "", f"Line {line}: the product name is empty.")
        cell = row[urls_at]
        urls = [url for url in map(str.strip, cell.split(",")) if url]
        if not (urls and len(urls) <= max_urls_per_row and _all_plain_urls(cell, urls)):
            _check_urls(urls, cell, line, urls_column, max_urls_per_row, problems)

        if not problems.total:
            products.append(ProductRow(serial, product_name, urls, line, tuple(row), header_cells))

    if problems.total:
        raise problems.error()
    if not rows:
        raise ValidationFailed(
            f"The file has a header (line {header_line}) but no product rows.",
            code="csv_empty",
        )
    return products


def _check_serial_number(
    serial: str, line: int, column: str, first_line_of: dict[str, int], problems: _Problems
) -> None:
    if not serial:
        problems.add(line, column, "", f"Line {line}: the serial number is empty.")
    elif len(serial) > MAX_SERIAL_NUMBER_LENGTH:
        problems.add(
            line,
            column,
            serial,
            f"Line {line}: the serial number is {len(serial):,} characters long; "
            f"the limit is {MAX_SERIAL_NUMBER_LENGTH}.",
        )
    else:
        first_line = first_line_of.setdefault(serial, line)
        if first_line != line:
            problems.add(
                line,
                column,
                serial,
                f"Line {line}: serial number {_shorten(serial, _SHOWN_IN_MESSAGE)!r} is "
                f"already used on line {first_line}; serial numbers must be unique.",
            )


def _all_plain_urls(cell: str, urls: list[str]) -> bool:
    """Whether the cell is a list of plain URLs, each one then valid."""
    return _PLAIN_URL_LIST.fullmatch(cell) is not None and max(map(len, urls)) <= MAX_URL_LENGTH


def _check_urls(
    urls: list[str], cell: str, line: int, column: str, max_urls: int, problems: _Problems
) -> None:
    if not urls:
        problems.add(line, column, cell, f"Line {line}: there are no image URLs.")
    elif len(urls) > max_urls:
        problems.add(
            line,
            column,
            cell,
            f"Line {line}: {len(urls):,} image URLs; the limit is {max_urls:,} per row.",
        )
    for position, url in enumerate(urls, start=1):
        reason = validate_image_url(url)
        if reason is not None:
            problems.add(
                line,
                column,
                url,
                f"Line {line}: image URL {position} {_shorten(url, _SHOWN_IN_MESSAGE)!r} {reason}.",
            )


@dataclass(frozen=True, slots=True)
class _Broken:
    """A record the csv module could not delimit; nothing after it can be trusted."""

    message: str
    cell_index: int | None = None
    value: str | None = None

    def column_of(self, header: Sequence[str]) -> str | None:
        if self.cell_index is None or self.cell_index >= len(header):
            return None
        return header[self.cell_index]


DELIMITERS = (",", ";", "\t")


def detect_delimiter(text: str) -> str:
    """The separator of the file's cells, judged by its header (the first line holding
    anything but separators and spaces): of `DELIMITERS`, the one whose cells hold the most of
    the required columns, then the most cells; commas when the header tells nothing."""
    header = next((line for line in text.splitlines() if line.strip(" " + "".join(DELIMITERS))), "")
    best, best_score = ",", (-1, -1)
    for delimiter in DELIMITERS:
        cells = next(csv.reader([header], delimiter=delimiter), [])
        names = {normalise_column_name(cell) for cell in cells}
        found = sum(normalise_column_name(column) in names for column in REQUIRED_COLUMNS)
        score = (found, len(cells))
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _records(text: str, delimiter: str = ",") -> Iterator[tuple[int, list[str] | _Broken]]:
    """(first line, cells) for each record up to the end of the file; blank lines give [].
    A record that cannot be delimited comes as a `_Broken`, and last."""
    reader = csv.reader(
        itertools.chain(io.StringIO(text, newline=""), (_END,)), delimiter=delimiter
    )
    while True:
        line = reader.line_num + 1
        try:
            row: list[str] = next(reader)
        except csv.Error as exc:
            # In lenient mode the csv module only stops at a cell over its size limit.
            message = f"a cell cannot be read ({exc}); a double quote that is never closed is "
            yield line, _Broken(message + "the usual cause.")
            return
        if row == [_END]:
            return
        if row and row[-1].endswith(_END):
            cell = row[-1].removesuffix(_END)
            yield (
                line,
                _Broken(
                    "a quoted cell starts here and is never closed (a double quote is "
                    "missing), so the rest of the file was read into it.",
                    cell_index=len(row) - 1,
                    value=_shorten(cell, _SHOWN_VALUE),
                ),
            )
            return
        yield line, row


def _decode(data: bytes, max_errors: int) -> str:
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise _wrong_encoding("UTF-32")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise _wrong_encoding("UTF-16")
    for signature, what in _SIGNATURES:
        if data.startswith(signature):
            raise _not_text(what)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        raise _not_text("a WebP image")
    if _looks_like_utf16(data):
        raise _wrong_encoding("UTF-16")
    sample = data[:_SNIFF_BYTES]
    controls = len(sample.translate(None, _NOT_CONTROL_BYTES))
    if b"\x00" in data or controls > 2 + len(sample) // 50:
        raise _not_text("a binary file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _not_utf8(data, max_errors) from None


def _looks_like_utf16(data: bytes) -> bool:
    """ASCII text in UTF-16 without a byte order mark: every other byte is NUL."""
    sample = data[:512]
    half = len(sample) // 2
    if half < 4:
        return False
    return max(sample[0::2].count(0), sample[1::2].count(0)) >= half * 0.9


def _not_text(what: str) -> UnsupportedMediaType:
    return UnsupportedMediaType(
        f"The file is {what}, not a CSV. Upload the products as a CSV file "
        "(Excel: File > Save As > CSV UTF-8).",
        code="csv_not_text",
    )


def _wrong_encoding(encoding: str) -> ValidationFailed:
    return ValidationFailed(
        f"The file is {encoding} text; OpsDeck reads CSV files in UTF-8. {_SAVE_AS_UTF8}",
        code="csv_encoding",
    )


def _not_utf8(data: bytes, max_errors: int) -> ValidationFailed:
    problems = _Problems(max_errors)
    # Line breaks are ASCII and never part of a UTF-8 sequence, so line by line finds each one.
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            character = len(raw[: exc.start].decode("utf-8")) + 1
            problems.add(
                number,
                None,
                _shorten(raw.decode("utf-8", errors="replace"), _SHOWN_VALUE),
                f"Line {number}: byte 0x{raw[exc.start]:02X} at character {character} is not "
                "UTF-8; the file looks saved in another encoding, such as Windows-1252.",
            )
    return ValidationFailed(
        f"The file is not UTF-8 text ({_count(problems.total, 'line')} with other "
        f"characters){problems.more_suffix()}. {_SAVE_AS_UTF8}",
        code="csv_encoding",
        details=problems.details,
    )


def _read_header(records: Iterator[tuple[int, list[str] | _Broken]]) -> tuple[list[str], int]:
    for line, row in records:
        if isinstance(row, _Broken):
            raise ValidationFailed(
                f"The header (line {line}) cannot be read: {row.message}",
                code="csv_invalid",
                details=[_detail(line, None, row.value, f"Line {line}: {row.message}")],
            )
        if "".join(row).strip():
            return row, line
    raise ValidationFailed(
        "The file is empty: it needs a header line "
        f"({', '.join(REQUIRED_COLUMNS)}) and one line per product.",
        code="csv_empty",
    )


def _locate_columns(header: list[str], line: int) -> tuple[int, int, int]:
    positions: dict[str, list[int]] = {}
    for index, name in enumerate(header):
        positions.setdefault(normalise_column_name(name), []).append(index)
    wanted = {column: normalise_column_name(column) for column in REQUIRED_COLUMNS}
    found = ", ".join(repr(_shorten(name, 60)) for name in header[:_SHOWN_COLUMNS])
    if len(header) > _SHOWN_COLUMNS:
        found += f" and {len(header) - _SHOWN_COLUMNS} more"

    missing = [column for column, key in wanted.items() if key not in positions]
    if missing:
        unmatched = {
            normalise_column_name(name): name
            for name in header
            if normalise_column_name(name) not in wanted.values()
        }
        details = []
        for column in missing:
            close = difflib.get_close_matches(wanted[column], list(unmatched), n=1)
            hint = f"; is {unmatched[close[0]]!r} meant to be it?" if close else "."
            details.append(_detail(line, column, None, f"Column {column!r} is missing{hint}"))
        raise ValidationFailed(
            f"The header (line {line}) lacks the column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(column) for column in missing)}; the columns found are: {found}. "
            f"The first line must name the columns {', '.join(REQUIRED_COLUMNS)} "
            f"(in any order, any case).{_separator_hint(header)}",
            code="csv_missing_columns",
            details=details,
        )

    duplicated = [column for column, key in wanted.items() if len(positions[key]) > 1]
    if duplicated:
        raise ValidationFailed(
            f"The header (line {line}) has more than one column for "
            f"{', '.join(repr(column) for column in duplicated)}; the columns found are: "
            f"{found}. Keep one of each.",
            code="csv_duplicate_columns",
            details=[
                _detail(
                    line,
                    column,
                    None,
                    f"Column {column!r} appears as "
                    + ", ".join(repr(header[index]) for index in positions[wanted[column]])
                    + ".",
                )
                for column in duplicated
            ],
        )
    return (
        positions[wanted[SERIAL_NUMBER_COLUMN]][0],
        positions[wanted[PRODUCT_NAME_COLUMN]][0],
        positions[wanted[INPUT_URLS_COLUMN]][0],
    )


def _separator_hint(header: list[str]) -> str:
    # Commas, semicolons and tabs are read (detect_delimiter); anything else is named.
    if len(header) == 1 and "|" in header[0]:
        return (
            " The columns seem to be separated by bars (|), which OpsDeck does not read as a "
            "separator; save the file with commas, semicolons or tabs between the columns."
        )
    return ""


def _cell_count_message(line: int, row: list[str], width: int, delimiter: str = ",") -> str:
    message = f"Line {line}: {_count(len(row), 'cell')}, but the header has {width}."
    if len(row) > width and delimiter == ",":
        message += (
            " If a cell holds several URLs separated by commas, put the whole list in double "
            'quotes: "https://a.example/1.jpg,https://a.example/2.jpg".'
        )
    return message


def _too_many_rows(line: int, max_rows: int) -> ValidationFailed:
    message = (
        f"The file has more than {max_rows:,} product rows, the limit for one batch; "
        "split it into smaller files."
    )
    return ValidationFailed(
        message,
        code="csv_too_many_rows",
        details=[
            _detail(
                line,
                None,
                None,
                f"Line {line}: product row {max_rows + 1:,} is over the limit of {max_rows:,}.",
            )
        ],
    )


class _Problems:
    """Every problem is counted; the first `limit` are kept as details."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.details: list[dict[str, Any]] = []
        self.total = 0
        self.lines: set[int] = set()

    def add(self, line: int, column: str | None, value: str | None, message: str) -> None:
        self.total += 1
        self.lines.add(line)
        if len(self.details) < self.limit:
            shown = None if value is None else _shorten(value, _SHOWN_VALUE)
            self.details.append(_detail(line, column, shown, message))

    def more_suffix(self) -> str:
        left_off = self.total - len(self.details)
        if not left_off:
            return ""
        return f"; the first {len(self.details)} are listed, and {left_off:,} more"

    def error(self) -> ValidationFailed:
        return ValidationFailed(
            f"The CSV has {_count(self.total, 'problem')} in "
            f"{_count(len(self.lines), 'row')}{self.more_suffix()}. Nothing was stored: fix "
            "the rows listed and upload the file again.",
            code="csv_invalid",
            details=self.details,
        )


def _detail(line: int, column: str | None, value: str | None, message: str) -> dict[str, Any]:
    return {"row": line, "column": column, "value": value, "message": message}


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
