"""The products CSV of an image batch: what is accepted, and for every bad input the status,
the code and each detail the user reads to fix the file."""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsdeck.core.errors import AppError, UnsupportedMediaType, ValidationFailed, error_body
from opsdeck.images.csv_input import (
    _PLAIN_URL,
    _PLAIN_URL_LIST,
    MAX_SERIAL_NUMBER_LENGTH,
    MAX_URL_LENGTH,
    ProductRow,
    _all_plain_urls,
    _diagnose_url,
    detect_delimiter,
    normalise_column_name,
    parse_products,
    validate_image_url,
)

HEADER = "S. No.,Product Name,Input Image Urls"
A = "https://example.com/a.jpg"
B = "https://example.com/b.jpg"
C = "https://cdn.example.org/c.png"
DETAIL_KEYS = {"row", "column", "value", "message"}

# No example database on disk and no per-example deadline: a slow machine must not fail a test.
PROPERTY = settings(
    database=None, deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow]
)


def csv_file(*lines: str, newline: str = "\n", bom: bool = False) -> bytes:
    text = newline.join(lines) + newline
    return (codecs.BOM_UTF8 if bom else b"") + text.encode()


def refused(data: bytes, **limits: int) -> AppError:
    with pytest.raises(AppError) as caught:
        parse_products(data, **limits)
    error = caught.value
    # Binary input is the only 415; everything else a person can fix in the file is a 422.
    if error.code == "csv_not_text":
        assert (type(error), error.status_code) == (UnsupportedMediaType, 415)
    else:
        assert (type(error), error.status_code) == (ValidationFailed, 422)
    for detail in error.details:
        assert set(detail) == DETAIL_KEYS
    # The error must survive the trip to the JSON error body.
    json.dumps(error_body(error.code, error.message, error.details))
    return error


def invalid(data: bytes, **limits: int) -> ValidationFailed:
    error = refused(data, **limits)
    assert isinstance(error, ValidationFailed)
    assert error.status_code == 422
    assert error.code == "csv_invalid"
    return error


# -- accepted files ---------------------------------------------------------------------------


def test_the_issue_example_parses() -> None:
    rows = parse_products(csv_file(HEADER, f'1,SKU1,"{A},{B}"', f"2,SKU2,{C}"))

    assert rows == [
        ProductRow("1", "SKU1", [A, B], 2, ("1", "SKU1", f"{A},{B}"), tuple(HEADER.split(","))),
        ProductRow("2", "SKU2", [C], 3, ("2", "SKU2", C), tuple(HEADER.split(","))),
    ]


def test_a_byte_order_mark_is_not_part_of_the_first_column() -> None:
    rows = parse_products(csv_file(HEADER, f"1,SKU1,{A}", bom=True))

    assert rows[0].serial_number == "1"
    assert rows[0].header[0] == "S. No."


@pytest.mark.parametrize("newline", ["\r\n", "\n", "\r"])
def test_any_line_ending_is_read_and_lines_are_counted(newline: str) -> None:
    data = csv_file(HEADER, f"1,SKU1,{A}", "", f'2,SKU2,"{B},{C}"', newline=newline)

    rows = parse_products(data)

    assert [(row.serial_number, row.urls, row.line) for row in rows] == [
        ("1", [A], 2),
        ("2", [B, C], 4),
    ]


def test_urls_are_trimmed_and_blank_entries_skipped() -> None:
    rows = parse_products(csv_file(HEADER, f'1,SKU1,"  {A} ,\t{B},, {C} ,"'))

    assert rows[0].urls == [A, B, C]


def test_serial_number_and_product_name_are_trimmed_and_cells_kept_as_written() -> None:
    rows = parse_products(csv_file(HEADER, f"  7 ,  Blue mug  , {A} "))

    assert (rows[0].serial_number, rows[0].product_name, rows[0].urls) == ("7", "Blue mug", [A])
    assert rows[0].cells == ("  7 ", "  Blue mug  ", f" {A} ")


def test_bidirectional_controls_are_taken_out_of_product_names() -> None:
    rows = parse_products(csv_file(HEADER, f"1,\u202eBlue\u2066 mug\u2069\u200e,{A}"))

    assert rows[0].product_name == "Blue mug"


@pytest.mark.parametrize(
    "header",
    [
        "s. no.,product name,input image urls",
        "S.No.,PRODUCT NAME,Input Image URLs",
        " S No , Product  Name ,InputImageUrls ",
        "Input Image Urls,S. No.,Product Name",
        "product_name,input-image-urls,s.no",
    ],
)
def test_header_names_match_without_case_spaces_punctuation_or_order(header: str) -> None:
    names = [normalise_column_name(name) for name in header.split(",")]
    cells = {"sno": "1", "productname": "SKU1", "inputimageurls": A}

    rows = parse_products(csv_file(header, ",".join(cells[name] for name in names)))

    assert (rows[0].serial_number, rows[0].product_name, rows[0].urls) == ("1", "SKU1", [A])
    assert rows[0].header == tuple(header.split(","))


def test_extra_columns_are_kept_with_the_header_as_written() -> None:
    data = csv_file(f"Brand,{HEADER}, Notes ,", f'Acme,1,SKU1,"{A},{B}", fragile ,')

    rows = parse_products(data)

    assert rows[0].header == ("Brand", "S. No.", "Product Name", "Input Image Urls", " Notes ", "")
    assert rows[0].cells == ("Acme", "1", "SKU1", f"{A},{B}", " fragile ", "")
    assert rows[0].urls == [A, B]


def test_blank_lines_anywhere_are_ignored_but_counted() -> None:
    data = csv_file("", " ", HEADER, ",,", f"1,SKU1,{A}", "", "  ,  , ", f"2,SKU2,{B}", "", ",,")

    rows = parse_products(data)

    assert [(row.serial_number, row.line) for row in rows] == [("1", 5), ("2", 8)]


def test_a_row_is_numbered_by_its_first_line_when_a_cell_spans_lines() -> None:
    data = csv_file(HEADER, f'1,"Mug\nblue\nlarge",{A}', f"2,SKU2,{B}")

    rows = parse_products(data)

    assert [(row.product_name, row.line) for row in rows] == [("Mug\nblue\nlarge", 2), ("SKU2", 5)]


def test_blank_cells_after_the_last_column_are_tolerated() -> None:
    rows = parse_products(csv_file(HEADER, f"1,SKU1,{A},, ", f"2,SKU2,{B}"))

    assert [row.cells for row in rows] == [("1", "SKU1", A), ("2", "SKU2", B)]


def test_formula_looking_cells_are_accepted_as_text() -> None:
    data = csv_file(
        HEADER, f'=1+1,"=HYPERLINK(""http://x"")",{A}', f"+2,@SUM(A1),{B}", f"-3,-x,{C}"
    )

    rows = parse_products(data)

    assert [(row.serial_number, row.product_name) for row in rows] == [
        ("=1+1", '=HYPERLINK("http://x")'),
        ("+2", "@SUM(A1)"),
        ("-3", "-x"),
    ]


def test_non_ascii_text_is_read_as_utf8() -> None:
    rows = parse_products(csv_file(HEADER, f"1,Café crème ☕ 日本,{A}"))

    assert rows[0].product_name == "Café crème ☕ 日本"


def test_a_file_without_a_final_line_break_is_complete() -> None:
    rows = parse_products(f'{HEADER}\n1,SKU1,"{A},{B}"'.encode())

    assert rows[0].urls == [A, B]


def test_the_limits_themselves_are_allowed() -> None:
    lines = [HEADER, *(f'{n},SKU{n},"{A},{B}"' for n in range(1, 4))]

    rows = parse_products(csv_file(*lines), max_rows=3, max_urls_per_row=2)

    assert len(rows) == 3


def test_the_same_url_may_appear_twice() -> None:
    rows = parse_products(csv_file(HEADER, f'1,SKU1,"{A},{A}"', f"2,SKU2,{A}"))

    assert [row.urls for row in rows] == [[A, A], [A]]


@pytest.mark.parametrize("limits", [{"max_rows": 0}, {"max_urls_per_row": 0}, {"max_errors": 0}])
def test_limits_below_one_are_a_programming_error(limits: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        parse_products(csv_file(HEADER, f"1,SKU1,{A}"), **limits)


# -- not a CSV, not UTF-8 ---------------------------------------------------------------------


def _png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def _xlsx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "named"),
    [
        pytest.param(_png(), "a PNG image", id="png"),
        pytest.param(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(32), "a JPEG image", id="jpeg"),
        pytest.param(b"GIF89a\x01\x00\x01\x00\x80\x00\x00", "a GIF image", id="gif"),
        pytest.param(b"RIFF\x24\x00\x00\x00WEBPVP8 ", "a WebP image", id="webp"),
        pytest.param(_xlsx(), "Excel .xlsx", id="xlsx"),
        pytest.param(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "a PDF document", id="pdf"),
        pytest.param(gzip.compress(HEADER.encode()), "a gzip archive", id="gzip"),
        pytest.param(
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64), "Excel .xls workbook", id="xls"
        ),
        pytest.param(csv_file(HEADER, f"1,SKU\x001,{A}"), "a binary file", id="nul-in-text"),
        pytest.param(bytes(range(1, 9)) * 64, "a binary file", id="control-bytes"),
    ],
)
def test_a_binary_file_is_refused_as_unsupported_media(data: bytes, named: str) -> None:
    error = refused(data)

    assert isinstance(error, UnsupportedMediaType)
    assert error.status_code == 415
    assert error.code == "csv_not_text"
    assert named in error.message
    assert "not a CSV" in error.message


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        pytest.param(csv_file(HEADER, f"1,SKU1,{A}").decode().encode("utf-16"), "UTF-16", id="bom"),
        pytest.param(
            csv_file(HEADER, f"1,SKU1,{A}").decode().encode("utf-16-le"), "UTF-16", id="no-bom"
        ),
        pytest.param(csv_file(HEADER, f"1,SKU1,{A}").decode().encode("utf-32"), "UTF-32", id="u32"),
    ],
)
def test_utf16_and_utf32_files_are_told_to_be_saved_as_utf8(data: bytes, encoding: str) -> None:
    error = refused(data)

    assert isinstance(error, ValidationFailed)
    assert error.code == "csv_encoding"
    assert encoding in error.message
    assert "CSV UTF-8" in error.message


def test_latin1_bytes_are_refused_naming_every_line_with_them() -> None:
    data = "\n".join([HEADER, f"1,Café,{A}", f"2,Plain,{B}", f"3,Crème brûlée,{C}", ""]).encode(
        "latin-1"
    )

    error = refused(data)

    assert isinstance(error, ValidationFailed)
    assert error.code == "csv_encoding"
    assert "not UTF-8" in error.message
    assert "2 lines" in error.message
    assert error.details == [
        {
            "row": 2,
            "column": None,
            "value": f"1,Caf\ufffd,{A}",
            "message": "Line 2: byte 0xE9 at character 6 is not UTF-8; the file looks saved in "
            "another encoding, such as Windows-1252.",
        },
        {
            "row": 4,
            "column": None,
            "value": f"3,Cr\ufffdme br\ufffdl\ufffde,{C}",
            "message": "Line 4: byte 0xE8 at character 5 is not UTF-8; the file looks saved in "
            "another encoding, such as Windows-1252.",
        },
    ]


def test_encoding_errors_beyond_the_cap_are_counted() -> None:
    lines = [HEADER, *(f"{n},Caf\xe9,{A}" for n in range(1, 8))]

    error = refused("\r\n".join(lines).encode("latin-1"), max_errors=3)

    assert [detail["row"] for detail in error.details] == [2, 3, 4]
    assert "7 lines" in error.message
    assert "and 4 more" in error.message


# -- empty, header, columns -------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", codecs.BOM_UTF8, b"\n\n\n", b"\r\n  \r\n", b",,\n , ,\n", codecs.BOM_UTF8 + b"\r\n"],
    ids=["nothing", "bom-only", "newlines", "spaces", "blank-cells", "bom-newline"],
)
def test_an_empty_file_is_refused(data: bytes) -> None:
    error = refused(data)

    assert isinstance(error, ValidationFailed)
    assert error.code == "csv_empty"
    assert "empty" in error.message
    assert "S. No., Product Name, Input Image Urls" in error.message


@pytest.mark.parametrize(
    "data", [HEADER.encode(), csv_file(HEADER), csv_file("", HEADER, "", ",,")]
)
def test_a_header_without_rows_is_refused(data: bytes) -> None:
    error = refused(data)

    assert isinstance(error, ValidationFailed)
    assert error.code == "csv_empty"
    assert "no product rows" in error.message


def test_missing_and_misnamed_columns_are_named_with_the_columns_found() -> None:
    error = refused(csv_file("S. No.,Name,Input Image URL,Brand", f"1,SKU1,{A},Acme"))

    assert isinstance(error, ValidationFailed)
    assert error.code == "csv_missing_columns"
    assert "'Product Name', 'Input Image Urls'" in error.message
    assert "'S. No.', 'Name', 'Input Image URL', 'Brand'" in error.message
    assert error.details == [
        {
            "row": 1,
            "column": "Product Name",
            "value": None,
            "message": "Column 'Product Name' is missing.",
        },
        {
            "row": 1,
            "column": "Input Image Urls",
            "value": None,
            "message": "Column 'Input Image Urls' is missing; is 'Input Image URL' meant to be it?",
        },
    ]


def test_a_file_without_a_header_line_names_all_three_columns() -> None:
    error = refused(csv_file(f"1,SKU1,{A}", f"2,SKU2,{B}"))

    assert error.code == "csv_missing_columns"
    assert [detail["column"] for detail in error.details] == [
        "S. No.",
        "Product Name",
        "Input Image Urls",
    ]
    assert f"'1', 'SKU1', '{A}'" in error.message
    assert "The first line must name the columns" in error.message


def test_the_header_is_the_first_non_blank_line() -> None:
    error = refused(csv_file("", "", "Serial,Product Name,Input Image Urls", f"1,SKU1,{A}"))

    assert error.code == "csv_missing_columns"
    assert error.details == [
        {"row": 3, "column": "S. No.", "value": None, "message": "Column 'S. No.' is missing."}
    ]


FILES = Path(__file__).parent / "files"


def test_a_semicolon_file_saved_by_a_european_spreadsheet_parses() -> None:
    # UTF-8 with a byte order mark, CRLF, ";" between cells, a ";" inside a quoted cell, commas
    # inside cells (a product name, the URL list) and a blank ";;" line.
    products = parse_products((FILES / "products-semicolon.csv").read_bytes())

    assert [(p.serial_number, p.product_name, p.urls) for p in products] == [
        (
            "1",
            "Café crème, 250 g",
            ["https://cdn.example.com/a.jpg", "https://cdn.example.com/b.jpg"],
        ),
        ("2", "Tasse; bleu", ["https://cdn.example.com/c.png"]),
        ("3", "Thé vert", ["https://cdn.example.com/d.webp"]),
    ]
    assert [p.line for p in products] == [2, 3, 5]


def test_a_tab_separated_file_parses_with_its_extra_columns() -> None:
    products = parse_products((FILES / "products-tab.tsv").read_bytes())

    assert [p.urls for p in products] == [
        ["https://cdn.example.com/a.jpg", "https://cdn.example.com/b.jpg"],
        ["https://cdn.example.com/c.png"],
    ]
    assert products[0].header == ("S. No.", "Product Name", "Input Image Urls", "Notes")
    assert products[0].cells[3] == "first, batch"


def test_the_separator_is_the_headers_and_a_semicolon_file_names_its_bad_cells() -> None:
    assert detect_delimiter("S. No.;Product Name;Input Image Urls\n1;a,b;c\n") == ";"
    assert detect_delimiter("\n\n,,\nS. No.\tProduct Name\tInput Image Urls\n") == "\t"
    assert detect_delimiter("S. No.,Product Name,Input Image Urls\n1;2;3\n") == ","
    assert detect_delimiter("Serial;Product Name;Urls\n") == ";"
    assert detect_delimiter("") == ","

    error = invalid(csv_file("S. No.;Product Name;Input Image Urls", f"1;SKU1;{A};x"))
    assert error.details[0]["value"] == f"1;SKU1;{A};x"
    assert "double quotes" not in error.details[0]["message"]
    missing = refused(csv_file("Serial;Product Name;Input Image Urls", f"1;SKU1;{A}"))
    assert missing.code == "csv_missing_columns"
    assert "'Serial', 'Product Name', 'Input Image Urls'" in missing.message


def test_a_file_separated_by_bars_is_refused_naming_the_separator() -> None:
    error = refused((FILES / "products-bars.csv").read_bytes())

    assert error.code == "csv_missing_columns"
    assert "separated by bars (|), which OpsDeck does not read as a separator" in error.message
    assert "commas, semicolons or tabs" in error.message


def test_a_single_column_header_gets_no_separator_hint() -> None:
    error = refused(csv_file("Products", "SKU1"))

    assert error.code == "csv_missing_columns"
    assert "separated by" not in error.message


def test_a_wide_header_is_listed_up_to_twenty_columns() -> None:
    header = ",".join(f"Column {n}" for n in range(1, 26))

    error = refused(csv_file(header, ",".join("x" * 25)))

    assert "'Column 20' and 5 more" in error.message
    assert "'Column 21'" not in error.message


def test_a_required_column_twice_is_refused() -> None:
    error = refused(csv_file(f"{HEADER},product name", f"1,SKU1,{A},SKU1"))

    assert isinstance(error, ValidationFailed)
    assert error.code == "csv_duplicate_columns"
    assert error.details == [
        {
            "row": 1,
            "column": "Product Name",
            "value": None,
            "message": "Column 'Product Name' appears as 'Product Name', 'product name'.",
        }
    ]


# -- bad rows ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["", "  ", '" , ,, "', '""'])
def test_a_row_without_urls_is_named(cell: str) -> None:
    error = invalid(csv_file(HEADER, f"1,SKU1,{A}", f"2,SKU2,{cell}"))

    assert len(error.details) == 1
    assert error.details[0]["row"] == 3
    assert error.details[0]["column"] == "Input Image Urls"
    assert error.details[0]["message"] == "Line 3: there are no image URLs."


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/a.jpg", "uses ftp://; only http:// and https:// are allowed"),
        ("file:///etc/passwd", "uses file://; only http:// and https:// are allowed"),
        ("javascript:alert(1)", "must start with http:// or https://"),
        ("example.com/a.jpg", "must start with http:// or https://"),
        ("www.example.com:8080/a.jpg", "must start with http:// or https://"),
        ("//example.com/a.jpg", "must start with http:// or https://"),
        ("http:/example.com/a.jpg", "must start with http:// or https://"),
        ("https:///a.jpg", "has no host name"),
        ("https://", "has no host name"),
        ("https://user:secret@example.com/a.jpg", "contains a user name or password"),
        ("https://user@example.com/a.jpg", "contains a user name or password"),
        ("https://example.com/my image.jpg", "contains a space"),
        ("https://example.com/a\u00a0b.jpg", "contains a whitespace character (U+00A0)"),
        ("https://example.com/a\u200b.jpg", "contains an invisible or control character (U+200B)"),
        ("https://example.com/a\x07.jpg", "contains an invisible or control character (U+0007)"),
        ("https://example.com\\@evil.com/a.jpg", "contains a backslash"),
        ("https://example.com:99999/a.jpg", "is not a valid URL"),
        ("https://example.com:http/a.jpg", "is not a valid URL"),
        ("https://example.com:0/a.jpg", "has an invalid port"),
        ("https://[::1/a.jpg", "is not a valid URL"),
        ("https://[fe80::1%25eth0]/a.jpg", "zone identifier"),
        ("https://[v1.future]/a.jpg", "has an invalid IPv6 address"),
        ("https://exa$mple.com/a.jpg", "has an invalid host name 'exa$mple.com'"),
        ("https://-example.com/a.jpg", "has an invalid host name"),
        ("https://example..com/a.jpg", "has an invalid host name"),
        ("https://" + "a" * 64 + ".com/a.jpg", "has an invalid host name"),
        ("https://example.com/" + "a" * MAX_URL_LENGTH, "characters long; the limit is 2,048"),
        ('"https://example.com/a.jpg"', "must start with http:// or https://"),
    ],
)
def test_an_invalid_url_is_named_with_its_row_and_reason(url: str, reason: str) -> None:
    cell = '"' + url.replace('"', '""') + '"' if '"' in url else url

    error = invalid(csv_file(HEADER, f"1,SKU1,{A}", f"2,SKU2,{cell}"))

    assert len(error.details) == 1
    detail = error.details[0]
    assert (detail["row"], detail["column"]) == (3, "Input Image Urls")
    assert detail["value"] == (url if len(url) <= 300 else url[:299] + "…")
    assert detail["message"].startswith("Line 3: image URL 1 ")
    assert reason in detail["message"]
    if len(url) <= 100:
        assert repr(url) in detail["message"]


def test_each_invalid_url_of_a_row_is_named_with_its_position() -> None:
    error = invalid(csv_file(HEADER, f'1,SKU1,"{A}, ftp://x/b.jpg ,{B},notaurl"'))

    assert [(d["row"], d["value"]) for d in error.details] == [
        (2, "ftp://x/b.jpg"),
        (2, "notaurl"),
    ]
    assert error.details[0]["message"] == (
        "Line 2: image URL 2 'ftp://x/b.jpg' uses ftp://; only http:// and https:// are allowed."
    )
    assert error.details[1]["message"] == (
        "Line 2: image URL 4 'notaurl' must start with http:// or https://."
    )


def test_duplicate_serial_numbers_name_both_lines() -> None:
    data = csv_file(HEADER, f"1,SKU1,{A}", f"2,SKU2,{B}", f" 1 ,SKU3,{C}", f"1,SKU4,{A}")

    error = invalid(data)

    assert error.details == [
        {
            "row": 4,
            "column": "S. No.",
            "value": "1",
            "message": "Line 4: serial number '1' is already used on line 2; serial numbers "
            "must be unique.",
        },
        {
            "row": 5,
            "column": "S. No.",
            "value": "1",
            "message": "Line 5: serial number '1' is already used on line 2; serial numbers "
            "must be unique.",
        },
    ]


def test_serial_numbers_are_compared_as_written() -> None:
    rows = parse_products(csv_file(HEADER, f"1,SKU1,{A}", f"01,SKU2,{B}", f"1.0,SKU3,{C}"))

    assert [row.serial_number for row in rows] == ["1", "01", "1.0"]


@pytest.mark.parametrize(
    ("row", "column", "message"),
    [
        (f",SKU1,{A}", "S. No.", "Line 2: the serial number is empty."),
        (f"  ,SKU1,{A}", "S. No.", "Line 2: the serial number is empty."),
        (f"1,,{A}", "Product Name", "Line 2: the product name is empty."),
        (f'1," \t ",{A}', "Product Name", "Line 2: the product name is empty."),
    ],
)
def test_an_empty_serial_number_or_product_name_is_named(
    row: str, column: str, message: str
) -> None:
    error = invalid(csv_file(HEADER, row))

    assert [(d["row"], d["column"], d["message"]) for d in error.details] == [(2, column, message)]


def test_a_serial_number_longer_than_the_column_is_named() -> None:
    serial = "9" * (MAX_SERIAL_NUMBER_LENGTH + 1)

    error = invalid(csv_file(HEADER, f"{serial},SKU1,{A}"))

    assert error.details[0]["message"] == (
        "Line 2: the serial number is 256 characters long; the limit is 255."
    )


def test_more_urls_than_the_limit_in_a_row_are_refused() -> None:
    error = invalid(
        csv_file(HEADER, f'1,SKU1,"{A},{B}"', f'2,SKU2,"{A},{B},{C}"'), max_urls_per_row=2
    )

    assert error.details == [
        {
            "row": 3,
            "column": "Input Image Urls",
            "value": f"{A},{B},{C}",
            "message": "Line 3: 3 image URLs; the limit is 2 per row.",
        }
    ]


def test_a_row_with_too_many_cells_suggests_quoting_the_url_list() -> None:
    error = invalid(csv_file(HEADER, f"1,SKU1,{A},{B}"))

    assert error.details[0]["row"] == 2
    assert error.details[0]["column"] is None
    assert error.details[0]["value"] == f"1,SKU1,{A},{B}"
    assert error.details[0]["message"].startswith("Line 2: 4 cells, but the header has 3.")
    assert "put the whole list in double quotes" in error.details[0]["message"]


def test_a_row_with_too_few_cells_is_named() -> None:
    error = invalid(csv_file(HEADER, f"1,SKU1,{A}", "2,SKU2"))

    assert error.details == [
        {
            "row": 3,
            "column": None,
            "value": "2,SKU2",
            "message": "Line 3: 2 cells, but the header has 3.",
        }
    ]


def test_a_quote_left_open_at_the_end_is_named_at_the_line_it_opens() -> None:
    data = csv_file(HEADER, f"1,,{A}", f'2,SKU2,"{A},{B}', f"3,SKU3,{C}", f"4,SKU4,{A}")

    error = invalid(data)

    assert [(d["row"], d["column"]) for d in error.details] == [
        (2, "Product Name"),
        (3, "Input Image Urls"),
    ]
    assert error.details[1]["value"] == f"{A},{B}\n3,SKU3,{C}\n4,SKU4,{A}\n"
    assert error.details[1]["message"] == (
        "Line 3: a quoted cell starts here and is never closed (a double quote is missing), "
        "so the rest of the file was read into it."
    )


def test_a_quote_left_open_on_the_last_line_without_a_line_break() -> None:
    error = invalid(f'{HEADER}\n1,SKU1,"{A}'.encode())

    assert [(d["row"], d["column"], d["value"]) for d in error.details] == [
        (2, "Input Image Urls", A)
    ]


def test_a_quote_left_open_in_the_header_is_named() -> None:
    error = refused(csv_file('S. No.,"Product Name,Input Image Urls', f"1,SKU1,{A}"))

    assert error.code == "csv_invalid"
    assert error.details[0]["row"] == 1
    assert "never closed" in error.message


def test_a_cell_over_the_csv_field_limit_is_refused_with_its_line() -> None:
    huge = "x" * (csv.field_size_limit() + 10)

    error = invalid(csv_file(HEADER, f"1,SKU1,{A}", f'2,"{huge}",{B}', f"3,SKU3,{C}"))

    assert [d["row"] for d in error.details] == [3]
    assert error.details[0]["message"].startswith("Line 3: a cell cannot be read (field larger ")
    assert "a double quote that is never closed is the usual cause" in error.details[0]["message"]


def test_every_bad_row_is_named_in_file_order() -> None:
    data = csv_file(
        HEADER,
        f"1,SKU1,{A}",
        f"2,,{B}",
        f"3,SKU3,{A}",
        "1,SKU4,http://",
        f"5,SKU5,{B}",
        "6,SKU6,",
        f"7,SKU7,{A},{B}",
        f"8,SKU8,{C}",
    )

    error = invalid(data)

    assert [(d["row"], d["column"]) for d in error.details] == [
        (3, "Product Name"),
        (5, "S. No."),
        (5, "Input Image Urls"),
        (7, "Input Image Urls"),
        (8, None),
    ]
    assert error.message == (
        "The CSV has 5 problems in 4 rows. Nothing was stored: fix the rows listed and upload "
        "the file again."
    )


def test_errors_beyond_the_cap_are_counted_as_more() -> None:
    lines = [HEADER, *(f"{n},SKU{n},notaurl" for n in range(1, 61))]

    error = invalid(csv_file(*lines))

    assert len(error.details) == 50
    assert error.details[-1]["row"] == 51
    assert "The CSV has 60 problems in 60 rows; the first 50 are listed, and 10 more." in (
        error.message
    )


def test_a_long_value_is_shortened_in_the_details() -> None:
    url = "ftp://example.com/" + "x" * 1000

    error = invalid(csv_file(HEADER, f"1,SKU1,{url}"))

    assert error.details[0]["value"] == url[:299] + "…"
    assert len(error.details[0]["message"]) < 300


def test_more_rows_than_the_limit_stops_at_the_first_row_too_many() -> None:
    # Line 7 is the fourth product; the broken lines after it are never read.
    data = csv_file(
        HEADER,
        f"1,SKU1,{A}",
        "",
        f"2,SKU2,{B}",
        ",,",
        f"3,SKU3,{C}",
        f"4,SKU4,{A}",
        "5,,notaurl",
        '6,"never closed',
    )

    error = refused(data, max_rows=3)

    assert isinstance(error, ValidationFailed)
    assert error.code == "csv_too_many_rows"
    assert "more than 3 product rows" in error.message
    assert error.details == [
        {
            "row": 7,
            "column": None,
            "value": None,
            "message": "Line 7: product row 4 is over the limit of 3.",
        }
    ]


def test_the_default_row_limit_is_ten_thousand() -> None:
    lines = [HEADER, *(f"{n},SKU{n},{A}" for n in range(1, 10_002))]

    error = refused(csv_file(*lines))

    assert error.code == "csv_too_many_rows"
    assert "more than 10,000 product rows" in error.message
    assert error.details[0]["row"] == 10_002


# -- validate_image_url -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        A,
        "http://example.com",
        "HTTPS://Example.COM/A.JPG",
        "https://example.com:8443/a.jpg?size=large&v=2#top",
        "https://example.com./a.jpg",
        "https://my_bucket.s3.amazonaws.com/a.jpg",
        "https://192.0.2.10/a.jpg",
        "https://[2001:db8::1]:8080/a.jpg",
        "https://bücher.example/bild.jpg",
        "https://example.com/caf%C3%A9.jpg",
        "https://example.com/päth/ß.jpg",
        "https://example.com/a.jpg?u=user@example.com",
        "https://example.com/" + "a" * (MAX_URL_LENGTH - len("https://example.com/")),
    ],
)
def test_valid_urls_pass(url: str) -> None:
    assert validate_image_url(url) is None


def test_an_empty_url_is_named() -> None:
    assert validate_image_url("") == "is empty"


_URLISH = st.text(
    alphabet=st.sampled_from("hHtTpPsS:/.[]@%-_~?#=&,0123456789abcxyzé \\\t\u200b"),
    max_size=40,
)
_URL_CANDIDATE = st.one_of(
    st.from_regex(_PLAIN_URL, fullmatch=True),
    _URLISH.map(lambda s: "https://" + s),
    st.builds(
        "http{}://{}{}{}".format,
        st.sampled_from(["", "s", "S"]),
        st.lists(st.from_regex(r"[a-z0-9_-]{0,64}", fullmatch=True), min_size=1, max_size=5).map(
            ".".join
        ),
        st.sampled_from(
            ["", ".", ":0", ":80", ":8443", ":34691", ":65535", ":65536", ":70000", ":99999", ":x"]
        ),
        st.sampled_from(["", "/", "/a.jpg", "/a b.jpg", "/a\\b", "?q=1#f", "/é"]),
    ),
)


@PROPERTY
@given(_URL_CANDIDATE)
def test_the_fast_path_never_accepts_what_the_full_check_refuses(url: str) -> None:
    assert validate_image_url(url) == _diagnose_url(url)


@PROPERTY
@given(
    st.lists(
        st.tuples(_URL_CANDIDATE, st.sampled_from(["", " ", "\t", "  "])), min_size=1, max_size=6
    )
)
def test_a_cell_passes_as_a_whole_only_when_each_url_would(items: list[tuple[str, str]]) -> None:
    cell = ",".join(f"{space}{url}{space}" for url, space in items)
    urls = [url for url in map(str.strip, cell.split(",")) if url]

    if urls and _all_plain_urls(cell, urls):
        assert [_diagnose_url(url) for url in urls] == [None] * len(urls)


def test_a_cell_of_plain_urls_takes_the_fast_path() -> None:
    assert _PLAIN_URL_LIST.fullmatch(f" {A} ,{B},, {C}\t,") is not None
    assert _PLAIN_URL_LIST.fullmatch(f"{A},ftp://x/y") is None
    # Any port from 1 to 65535 is plain; 0, 65536 and up are left to the full check.
    for port in (1, 8080, 34691, 59999, 65535):
        assert _PLAIN_URL.fullmatch(f"http://127.0.0.1:{port}/a.jpg") is not None
    for outside in ("0", "65536", "70000", "99999", "123456"):
        assert _PLAIN_URL.fullmatch(f"http://127.0.0.1:{outside}/a.jpg") is None


# -- property: a CSV written by the csv module parses back to what was written ---------------

_CELL_TEXT = st.text(
    alphabet=st.characters(exclude_categories=["Cs", "Cc"], include_characters="\t\n\r,\"' =+-@"),
    max_size=20,
)
_URL = st.builds(
    "https://{}.example.com/{}.jpg".format,
    st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_~%-]{0,20}", fullmatch=True),
)


@st.composite
def _products(draw: st.DrawFn) -> list[dict[str, Any]]:
    serials = draw(
        st.lists(
            _CELL_TEXT.filter(lambda s: 0 < len(s.strip()) <= MAX_SERIAL_NUMBER_LENGTH),
            min_size=1,
            max_size=8,
            unique_by=str.strip,
        )
    )
    return [
        {
            "serial": serial,
            "name": draw(_CELL_TEXT.filter(lambda s: bool(s.strip()))),
            "urls": draw(st.lists(_URL, min_size=1, max_size=4)),
            "extra": draw(_CELL_TEXT),
            "spaces": draw(st.sampled_from(["", " ", "  "])),
        }
        for serial in serials
    ]


@PROPERTY
@given(
    products=_products(),
    # With "\n" as line end, the csv module leaves a cell holding a bare "\r" unquoted, which
    # no reader can tell from a line break: such files only exist fully quoted.
    dialect=st.sampled_from(
        [("\r\n", csv.QUOTE_MINIMAL), ("\r\n", csv.QUOTE_ALL), ("\n", csv.QUOTE_ALL)]
    ),
    bom=st.booleans(),
)
def test_what_the_csv_module_writes_parses_back(
    products: list[dict[str, Any]], dialect: tuple[str, Literal[0, 1, 2, 3]], bom: bool
) -> None:
    line_end, quoting = dialect
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=line_end, quoting=quoting)
    writer.writerow(["Notes", "S. No.", "Product Name", "Input Image Urls"])
    lines = []
    for product in products:
        lines.append(len(io.StringIO(buffer.getvalue(), newline="").readlines()) + 1)
        joiner = product["spaces"] + "," + product["spaces"]
        writer.writerow(
            [product["extra"], product["serial"], product["name"], joiner.join(product["urls"])]
        )
    data = (codecs.BOM_UTF8 if bom else b"") + buffer.getvalue().encode()

    rows = parse_products(data)

    assert [
        (row.serial_number, row.product_name, row.urls, row.line, row.cells[0]) for row in rows
    ] == [
        (p["serial"].strip(), p["name"].strip(), p["urls"], line, p["extra"])
        for p, line in zip(products, lines, strict=True)
    ]
