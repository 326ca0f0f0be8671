"""What parsing a products CSV costs, and writing the output CSV back.

    .venv/bin/python bench/csv_parse.py [--rows 1000 10000] [--urls-per-row 3] [--repeats 20]

Prints the figures and the conditions they were taken in; it asserts nothing. Each case runs
`--repeats` times on the same bytes; the median and the best run are shown. "valid" is a clean
file (the `POST /api/v1/images/batches` path); "every row bad" has an invalid URL in every row,
so every URL takes the slow, explaining check and every row adds an error; "output" writes the
output CSV of the same products (all images succeeded but the last of each row). "size" is the
size of the CSV read or written.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from opsdeck.core.errors import ValidationFailed
from opsdeck.images.csv_input import parse_products
from opsdeck.images.csv_output import OutputImage, OutputRow, write_output_csv
from opsdeck.settings import usable_cores

HEADER = "S. No.,Product Name,Input Image Urls,Brand"


def products_csv(rows: int, urls_per_row: int, *, bad: bool) -> bytes:
    lines = [HEADER]
    for number in range(1, rows + 1):
        urls = [
            f"https://cdn{n % 3}.example.com/products/{number}/view-{n}.jpg?w=1200"
            for n in range(urls_per_row)
        ]
        if bad:
            urls[-1] = f"ftp://files.example.com/{number}.jpg"
        lines.append(f'{number},"Product {number}, blue","{",".join(urls)}",Acme')
    return ("\r\n".join(lines) + "\r\n").encode()


def output_rows(data: bytes) -> tuple[list[str], list[OutputRow]]:
    products = parse_products(data, max_rows=len(data))
    rows = [
        OutputRow(
            product.cells,
            [
                OutputImage(f"https://ops.example.net/media/{product.serial_number}-{n}.jpg")
                for n in range(len(product.urls) - 1)
            ]
            + [OutputImage(error="HTTP 404 from cdn.example.com")],
        )
        for product in products
    ]
    return list(products[0].header), rows


def timed(action: Callable[[], object], repeats: int) -> list[float]:
    action()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return samples


def parse_expecting_errors(data: bytes, rows: int) -> None:
    try:
        parse_products(data, max_rows=rows)
    except ValidationFailed:
        return
    raise AssertionError("the bad file was accepted")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def conditions(args: argparse.Namespace) -> list[str]:
    usable = usable_cores()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return [
        f"CPU           {cpu_model()}",
        f"cores         {os.cpu_count()} online, {usable} usable; the parse uses one",
        f"load average  {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1/5/15 min, at start)"
        if load
        else "load average  unknown",
        f"Python        {platform.python_version()} ({platform.python_implementation()})",
        f"input         {args.urls_per_row} URLs per row (~75 characters each), 4 columns, CRLF",
        f"repeats       {args.repeats} per case, after one warm-up run",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--urls-per-row", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    print("Products CSV parse and output CSV write")
    for line in conditions(args):
        print(f"  {line}")
    print()
    print(f"  {'case':<16}{'rows':>8}{'size':>10}{'median':>12}{'best':>12}{'rows/s':>14}")
    for rows in args.rows:
        valid = products_csv(rows, args.urls_per_row, bad=False)
        bad = products_csv(rows, args.urls_per_row, bad=True)
        header, out_rows = output_rows(valid)
        cases: list[tuple[str, bytes, Callable[[], object]]] = [
            ("valid", valid, partial(parse_products, valid, max_rows=rows)),
            ("every row bad", bad, partial(parse_expecting_errors, bad, rows)),
            (
                "output",
                write_output_csv(header, out_rows),
                partial(write_output_csv, header, out_rows),
            ),
        ]
        for name, data, action in cases:
            samples = timed(action, args.repeats)
            median = statistics.median(samples)
            print(
                f"  {name:<16}{rows:>8,}{len(data) / 1024:>8.0f} KiB"
                f"{median * 1000:>9.2f} ms{min(samples) * 1000:>9.2f} ms{rows / median:>14,.0f}"
            )


if __name__ == "__main__":
    main()
