"""The output CSV of an image batch: input columns reproduced, output URLs in input order with
empty positions for failures, the errors column, formula neutralisation, and well-formed CSV."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsdeck.images.csv_input import parse_products
from opsdeck.images.csv_output import (
    ERRORS_COLUMN,
    FORMULA_PREFIXES,
    OUTPUT_URLS_COLUMN,
    OutputImage,
    OutputRow,
    errors_cell,
    iter_output_csv,
    neutralise_cell,
    output_urls_cell,
    write_output_csv,
)

HEADER = ["S. No.", "Product Name", "Input Image Urls"]
IN_A = "https://example.com/a.jpg"
IN_B = "https://example.com/b.jpg"
IN_C = "https://example.com/c.jpg"
OUT_A = "https://ops.example.net/media/AAAA.jpg"
OUT_C = "https://ops.example.net/media/CCCC.jpg"

PROPERTY = settings(database=None, deadline=None, max_examples=200)


def read_back(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def ok(url: str) -> OutputImage:
    return OutputImage(output_url=url)


def failed(reason: str) -> OutputImage:
    return OutputImage(error=reason)


# -- columns, order, empties ------------------------------------------------------------------


def test_input_columns_then_output_urls_then_errors() -> None:
    rows = [
        OutputRow(
            ["1", "SKU1", f"{IN_A},{IN_B},{IN_C}"], [ok(OUT_A), failed("HTTP 404"), ok(OUT_C)]
        ),
        OutputRow(["2", "SKU2", IN_A], [ok(OUT_A)]),
    ]

    assert read_back(write_output_csv(HEADER, rows)) == [
        [*HEADER, OUTPUT_URLS_COLUMN, ERRORS_COLUMN],
        ["1", "SKU1", f"{IN_A},{IN_B},{IN_C}", f"{OUT_A},,{OUT_C}", "2: HTTP 404"],
        ["2", "SKU2", IN_A, OUT_A, ""],
    ]


@pytest.mark.parametrize(
    ("images", "urls", "errors"),
    [
        ([ok(OUT_A)], OUT_A, ""),
        ([failed("timeout")], "", "1: timeout"),
        ([failed("a"), failed("b"), failed("c")], ",,", "1: a; 2: b; 3: c"),
        ([failed("not an image"), ok(OUT_A)], f",{OUT_A}", "1: not an image"),
        ([ok(OUT_A), ok(OUT_C), failed("too large")], f"{OUT_A},{OUT_C},", "3: too large"),
        ([ok(OUT_A), OutputImage(), ok(OUT_C)], f"{OUT_A},,{OUT_C}", ""),
    ],
    ids=["one-ok", "one-failed", "all-failed", "first-failed", "last-failed", "pending"],
)
def test_output_urls_keep_one_position_per_input_and_failures_list_their_position(
    images: list[OutputImage], urls: str, errors: str
) -> None:
    assert output_urls_cell(images) == urls
    assert errors_cell(images) == errors
    assert len(output_urls_cell(images).split(",")) == len(images)


def test_a_failed_image_leaves_its_position_empty_even_with_an_output_url() -> None:
    images = [OutputImage(output_url=OUT_A, error="stored, then failed")]

    assert (output_urls_cell(images), errors_cell(images)) == ("", "1: stored, then failed")


def test_a_reason_is_one_line_and_never_empty() -> None:
    images = [failed("HTTP 500\r\nInternal   Server\tError"), failed("")]

    assert errors_cell(images) == "1: HTTP 500 Internal Server Error; 2: failed"


def test_a_comma_in_an_output_url_cannot_shift_the_positions() -> None:
    images = [ok("https://ops.example.net/m/a,b.jpg"), ok(OUT_C)]

    assert output_urls_cell(images) == f"https://ops.example.net/m/a%2Cb.jpg,{OUT_C}"


def test_extra_columns_and_cells_are_reproduced_as_uploaded() -> None:
    header = ["Brand", "S. No.", "Product Name", "Input Image Urls", " Notes ", ""]
    cells = ["Acme", " 1 ", "Mug, blue", f"{IN_A} , {IN_B}", 'say "hi"\nline two', ""]

    rows = read_back(write_output_csv(header, [OutputRow(cells, [ok(OUT_A), ok(OUT_C)])]))

    assert rows[0] == [*header, OUTPUT_URLS_COLUMN, ERRORS_COLUMN]
    assert rows[1] == [*cells, f"{OUT_A},{OUT_C}", ""]


def test_existing_output_columns_of_a_reuploaded_file_are_kept() -> None:
    header = [*HEADER, OUTPUT_URLS_COLUMN, ERRORS_COLUMN]
    cells = ["1", "SKU1", IN_A, "https://old.example/x.jpg", ""]

    rows = read_back(write_output_csv(header, [OutputRow(cells, [ok(OUT_A)])]))

    assert rows[0] == [*header, OUTPUT_URLS_COLUMN, ERRORS_COLUMN]
    assert rows[1] == [*cells, OUT_A, ""]


def test_no_rows_gives_the_header_alone() -> None:
    assert read_back(write_output_csv(HEADER, [])) == [[*HEADER, OUTPUT_URLS_COLUMN, ERRORS_COLUMN]]


def test_a_row_that_does_not_match_the_header_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="output row 2 has 2 cells for 3 header columns"):
        write_output_csv(HEADER, [OutputRow(["1", "a", IN_A], []), OutputRow(["2", "b"], [])])


# -- formula injection ------------------------------------------------------------------------


def test_bidirectional_controls_are_taken_out_of_every_cell() -> None:
    row = OutputRow(
        ["1", "\u202eBlue mug\u202c", f"\u2067{IN_A}"], [OutputImage(error="\u200fbad")]
    )

    [header, back] = read_back(write_output_csv(["S. No.\u061c", *HEADER[1:]], [row]))

    assert header[0] == "S. No."
    assert back == ["1", "Blue mug", IN_A, "", "1: bad"]
    # An override in front of a formula does not hide it from the neutralisation.
    assert neutralise_cell("\u202e=HYPERLINK()") == "'=HYPERLINK()"


@pytest.mark.parametrize("prefix", FORMULA_PREFIXES)
def test_each_formula_prefix_is_neutralised(prefix: str) -> None:
    assert neutralise_cell(f"{prefix}cmd|' /C calc'!A0") == f"'{prefix}cmd|' /C calc'!A0"


@pytest.mark.parametrize("value", ["", "SKU1", "1", " =1+1", "a=b", "'quoted", "\n=x", "\uff1d1"])
def test_other_cells_are_left_alone(value: str) -> None:
    assert neutralise_cell(value) == value


def test_the_formula_prefixes_are_owasps() -> None:
    assert set(FORMULA_PREFIXES) == {"=", "+", "-", "@", "\t", "\r"}


@pytest.mark.parametrize("prefix", FORMULA_PREFIXES)
def test_every_column_is_neutralised(prefix: str) -> None:
    header = [f"{prefix}Brand", "S. No.", "Product Name", "Input Image Urls"]
    cells = [f"{prefix}HYPERLINK(1)", f"{prefix}1", f"{prefix}SUM(A1:A9)", f"{prefix}{IN_A}"]
    images = [ok(f"{prefix}{OUT_A}"), failed(f"{prefix}1+1")]

    rows = read_back(write_output_csv(header, [OutputRow(cells, images)]))

    assert rows[0] == [f"'{prefix}Brand", *header[1:], OUTPUT_URLS_COLUMN, ERRORS_COLUMN]
    assert rows[1] == [
        f"'{prefix}HYPERLINK(1)",
        f"'{prefix}1",
        f"'{prefix}SUM(A1:A9)",
        f"'{prefix}{IN_A}",
        f"'{prefix}{OUT_A},",
        # The errors cell starts with a position: a reason cannot start a formula.
        f"2: {prefix}1+1" if prefix not in "\t\r" else "2: 1+1",
    ]


def test_the_output_urls_cell_is_neutralised_as_a_whole() -> None:
    rows = read_back(write_output_csv(HEADER, [OutputRow(["1", "a", IN_A], [ok("=x"), ok(OUT_A)])]))

    assert rows[1][3] == f"'=x,{OUT_A}"


# -- encoding, line ends, quoting -------------------------------------------------------------


def test_utf8_with_a_byte_order_mark_by_default() -> None:
    data = write_output_csv(HEADER, [OutputRow(["1", "Café ☕", IN_A], [ok(OUT_A)])])

    assert data.startswith(codecs.BOM_UTF8 + b"S. No.,")
    assert "Café ☕".encode() in data


def test_without_a_byte_order_mark_on_request() -> None:
    data = write_output_csv(HEADER, [OutputRow(["1", "Café", IN_A], [ok(OUT_A)])], bom=False)

    assert data.startswith(b"S. No.,")


def test_records_end_with_crlf_and_cells_are_quoted_only_when_needed() -> None:
    rows = [
        OutputRow(["1", "plain", IN_A], [ok(OUT_A)]),
        OutputRow(["2", 'a "quoted", multi\nline name', IN_A], [failed("x")]),
    ]

    data = write_output_csv(HEADER, rows, bom=False)

    assert data == (
        b"S. No.,Product Name,Input Image Urls,Output Image Urls,Errors\r\n"
        b"1,plain,https://example.com/a.jpg,https://ops.example.net/media/AAAA.jpg,\r\n"
        b'2,"a ""quoted"", multi\nline name",https://example.com/a.jpg,,1: x\r\n'
    )


def test_an_output_csv_is_accepted_again_as_input() -> None:
    rows = [
        OutputRow(["1", "Mug, blue", f"{IN_A},{IN_B}"], [ok(OUT_A), failed("HTTP 404")]),
        OutputRow(["2", "Café", IN_C], [ok(OUT_C)]),
    ]

    products = parse_products(write_output_csv(HEADER, rows))

    assert [(p.serial_number, p.product_name, p.urls) for p in products] == [
        ("1", "Mug, blue", [IN_A, IN_B]),
        ("2", "Café", [IN_C]),
    ]
    assert products[0].header == (*HEADER, OUTPUT_URLS_COLUMN, ERRORS_COLUMN)
    assert products[0].cells[3:] == (f"{OUT_A},", "2: HTTP 404")


# -- streaming --------------------------------------------------------------------------------


def test_streaming_yields_whole_records_and_reads_rows_as_it_goes() -> None:
    taken: list[int] = []

    def rows() -> Iterator[OutputRow]:
        for number in range(1, 201):
            taken.append(number)
            yield OutputRow([str(number), f"SKU{number}", IN_A], [ok(OUT_A)])

    chunks = iter_output_csv(HEADER, rows(), chunk_size=1024)
    first = next(chunks)

    assert first.startswith(codecs.BOM_UTF8)
    assert first.endswith(b"\r\n")
    assert len(taken) < 200
    rest = list(chunks)
    assert len(rest) > 5
    assert all(chunk.endswith(b"\r\n") for chunk in rest)
    whole = first + b"".join(rest)
    expected = [OutputRow([str(n), f"SKU{n}", IN_A], [ok(OUT_A)]) for n in range(1, 201)]
    assert whole == write_output_csv(HEADER, expected)
    assert len(read_back(whole)) == 201


def test_a_chunk_per_record_when_every_record_fills_a_chunk() -> None:
    rows = [OutputRow([str(n), "a", IN_A], [ok(OUT_A)]) for n in range(1, 4)]

    chunks = list(iter_output_csv(HEADER, rows, chunk_size=1))

    # The header travels with the first record.
    assert [chunk.count(b"\r\n") for chunk in chunks] == [2, 1, 1]
    assert b"".join(chunks) == write_output_csv(HEADER, rows)


def test_a_small_batch_is_one_chunk() -> None:
    chunks = list(iter_output_csv(HEADER, [OutputRow(["1", "a", IN_A], [ok(OUT_A)])]))

    assert len(chunks) == 1


# -- property: whatever the cells hold, a CSV reader gets them back ---------------------------

_TEXT = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=15
)
# Reasons without ";" or ":" so that the test can split the errors cell back into positions.
_REASON = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00;:"), max_size=15
)
_IMAGE = st.builds(
    OutputImage,
    output_url=st.none() | st.from_regex(r"https://o\.example/[a-z0-9,]{1,8}\.jpg", fullmatch=True),
    error=st.none() | _REASON,
)


@st.composite
def _table(draw: st.DrawFn) -> tuple[list[str], list[OutputRow]]:
    header = draw(st.lists(_TEXT, min_size=1, max_size=4))
    rows = draw(
        st.lists(
            st.builds(
                OutputRow,
                cells=st.lists(_TEXT, min_size=len(header), max_size=len(header)),
                images=st.lists(_IMAGE, min_size=1, max_size=5),
            ),
            max_size=6,
        )
    )
    return header, rows


@PROPERTY
@given(table=_table(), bom=st.booleans())
def test_any_cells_round_trip_through_a_csv_reader(
    table: tuple[list[str], list[OutputRow]], bom: bool
) -> None:
    header, rows = table

    read = read_back(write_output_csv(header, rows, bom=bom))

    assert read[0] == [*map(neutralise_cell, header), OUTPUT_URLS_COLUMN, ERRORS_COLUMN]
    assert len(read) == len(rows) + 1
    for row, back in zip(rows, read[1:], strict=True):
        assert back[: len(header)] == [neutralise_cell(cell) for cell in row.cells]
        urls = back[len(header)].split(",")
        assert len(urls) == len(row.images)
        for url, image in zip(urls, row.images, strict=True):
            expected = image.output_url if image.error is None and image.output_url else ""
            assert url == expected.replace(",", "%2C")
        failures = [n for n, image in enumerate(row.images, start=1) if image.error is not None]
        errors = back[len(header) + 1]
        assert errors == errors_cell(row.images)
        assert [int(part.split(":", 1)[0]) for part in errors.split("; ") if part] == failures


def test_every_cell_of_the_output_is_safe_from_formulas() -> None:
    header = ["=a", "+b", "-c", "@d", "\te", "\rf"]
    rows = [OutputRow(list(header), [failed("-1"), ok("@x")])]

    for record in read_back(write_output_csv(header, rows)):
        assert not any(cell.startswith(FORMULA_PREFIXES) for cell in record)
