"""What one image costs in `opsdeck.images.processing`: peak memory and raw throughput.

    .venv/bin/python bench/images_processing.py [--seconds 10] [--keep-files DIR]

Generates photographic JPEGs (gradients with grain, quality 90) and prints, for each case, the
peak RSS of a fresh process that imports the library, reads the file and processes it once
(the figure a worker adds per image), and the single-core throughput of a 2K JPEG -> 512 px
thumbnail through `process` and through bare pyvips calls doing the same work, with their ratio.
It asserts nothing. Each case runs in its own process, pinned to one core with
VIPS_CONCURRENCY=1 for the throughput figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyvips

from opsdeck.images.processing import Operations, configure_libvips, libvips_version, process

SIZES = {"50mp": (8660, 5773), "24mp": (6000, 4000), "2k": (2048, 1365)}
RSS_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("50mp", "default {quality: 50}", {}),
    ("50mp", "512 px thumbnail", {"max_width": 512, "max_height": 512}),
    ("50mp_rot6", "default, EXIF orientation 6", {}),
    ("24mp", "default {quality: 50}", {}),
    ("50mp", "format png", {"format": "png"}),
    ("50mp", "format webp", {"format": "webp"}),
    ("50mp", "format avif", {"format": "avif"}),
    ("24mp", "format webp", {"format": "webp"}),
    ("24mp", "format avif", {"format": "avif"}),
    ("2k", "default {quality: 50}", {}),
]
THUMBNAIL = {"max_width": 512, "max_height": 512}


def photo(width: int, height: int) -> Any:
    xyz = pyvips.Image.xyz(width, height)
    x, y = xyz[0], xyz[1]
    image = (x * (255.0 / width)).bandjoin(
        [y * (255.0 / height), (x + y) * (127.0 / (width + height)) + 64]
    )
    grain = pyvips.Image.gaussnoise(width, height, sigma=12, mean=0, seed=7).gaussblur(0.8)
    return (image + grain).cast("uchar").copy(interpretation="srgb")


def make_files(directory: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for name, (width, height) in SIZES.items():
        path = directory / f"{name}.jpg"
        if not path.exists():
            photo(width, height).jpegsave(str(path), Q=90)
        files[name] = path
    rotated = directory / "50mp_rot6.jpg"
    if not rotated.exists():
        image = pyvips.Image.new_from_file(str(files["50mp"])).copy()
        image.set_type(pyvips.GValue.gint_type, "orientation", 6)
        image.jpegsave(str(rotated), Q=90)
    files["50mp_rot6"] = rotated
    return files


def peak_rss_mib() -> float:
    """VmHWM: this process's own high-water mark (ru_maxrss would include the parent's at fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child_rss(path: str, ops: dict[str, Any]) -> dict[str, Any]:
    configure_libvips()
    before = peak_rss_mib()
    data = Path(path).read_bytes()
    started = time.perf_counter()
    result = process(data, Operations(**ops))
    return {
        "seconds": time.perf_counter() - started,
        "baseline_mib": before,
        "peak_mib": peak_rss_mib(),
        "input_mib": len(data) / 2**20,
        "output_mib": result.bytes_out / 2**20,
        "size": f"{result.width}x{result.height}",
    }


def child_throughput(path: str, seconds: float) -> dict[str, Any]:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    configure_libvips(concurrency=1)
    data = Path(path).read_bytes()
    ops = Operations(**THUMBNAIL)

    def through_library() -> None:
        process(data, ops)

    def bare_pyvips() -> None:
        image = pyvips.Image.thumbnail_buffer(data, 512, height=512, size="down")
        image.jpegsave_buffer(Q=50, keep=0, optimize_coding=True)

    # Alternate the two so that a noisy neighbour on the machine hits both alike; keep the best.
    library, raw = 0.0, 0.0
    for _ in range(2):
        library = max(library, _rate(through_library, seconds / 2))
        raw = max(raw, _rate(bare_pyvips, seconds / 2))
    default = _rate(lambda: process(data), seconds / 2)
    return {"library": library, "raw": raw, "default": default}


def _rate(call: Any, seconds: float) -> float:
    for _ in range(3):
        call()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds and count < 100_000:
        call()
        count += 1
    return count / (time.perf_counter() - started)


def run_child(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per throughput figure")
    parser.add_argument("--keep-files", type=Path, help="generate (or reuse) the images here")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, path, extra = args.child
        if kind == "rss":
            print(json.dumps(child_rss(path, json.loads(extra))))
        else:
            print(json.dumps(child_throughput(path, float(extra))))
        return

    with tempfile.TemporaryDirectory(prefix="opsdeck-bench-") as scratch:
        directory = args.keep_files or Path(scratch)
        directory.mkdir(parents=True, exist_ok=True)
        files = make_files(directory)
        print(
            f"libvips {libvips_version()}, pyvips {pyvips.__version__}, Python "
            f"{platform.python_version()}, {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores; photographic JPEGs at quality 90"
        )
        print("\nPeak RSS (VmHWM) of a fresh process processing one image, default libvips threads")
        for name, label, ops in RSS_CASES:
            figures = run_child("rss", str(files[name]), json.dumps(ops))
            print(
                f"  {name:10s} {label:28s} peak {figures['peak_mib']:6.0f} MiB "
                f"(after import {figures['baseline_mib']:.0f} MiB, input "
                f"{figures['input_mib']:.1f} MiB, output {figures['output_mib']:.1f} MiB, "
                f"{figures['size']}, {figures['seconds']:.2f} s)"
            )
        print(f"\nThroughput, one core, VIPS_CONCURRENCY=1, {args.seconds:.0f} s per figure")
        rates = run_child(
            "rate", str(files["2k"]), str(args.seconds), env={"VIPS_CONCURRENCY": "1"}
        )
        print(f"  2K JPEG -> 512 px thumbnail via process(): {rates['library']:6.1f} images/s")
        print(f"  2K JPEG -> 512 px thumbnail, bare pyvips:  {rates['raw']:6.1f} images/s")
        print(f"  ratio process() / bare pyvips: {rates['library'] / rates['raw']:.2f}")
        print(
            f"  2K JPEG -> default {{quality: 50}} via process(): {rates['default']:6.1f} images/s"
        )


if __name__ == "__main__":
    main()
