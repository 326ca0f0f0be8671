"""opsdeck.images.processing and formats: real images in, real images out, through libvips."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import pyvips
from pydantic import ValidationError

from opsdeck.core.errors import ValidationFailed
from opsdeck.images import processing
from opsdeck.images.formats import content_type_and_extension, format_info, sniff
from opsdeck.images.processing import (
    DEFAULT_MAX_PIXELS,
    ImageError,
    ImageInfo,
    InvalidOperations,
    Operations,
    ProcessedImage,
    inspect,
    parse_operations,
    process,
)
from tests.images.conftest import BLUE, FRAME_COLOURS, RED, ImageFactory

HTML_PAGE = b"<!DOCTYPE html><html><head><title>404</title></head><body>Not found</body></html>"
METADATA_FIELDS = ("exif-data", "xmp-data", "icc-profile-data", "iptc-data", "orientation")


def load(data: bytes, **options: Any) -> Any:
    return pyvips.Image.new_from_buffer(data, "", **options)


def colour_at(image: Any, x: int, y: int) -> list[float]:
    return [float(value) for value in image.getpoint(x, y)[:3]]


def assert_close(actual: list[float], expected: tuple[int, ...], tolerance: float) -> None:
    assert all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True)), (
        f"{actual} is not within {tolerance} of {expected}"
    )


class _Kind:
    """`with _Kind("corrupt") as caught:` checks the ImageError kind and keeps the error."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.error: ImageError | None = None

    def __enter__(self) -> _Kind:
        return self

    def __exit__(self, exc_type: object, exc: object, _tb: object) -> bool:
        assert isinstance(exc, ImageError), f"expected ImageError({self.kind}), got {exc!r}"
        assert exc.kind == self.kind, f"expected {self.kind}, got {exc.kind}: {exc.message}"
        assert exc.message
        assert str(exc) == exc.message
        self.error = exc
        return True

    @property
    def message(self) -> str:
        assert self.error is not None
        return self.error.message


# --- formats ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("maker", "expected"),
    [
        ("jpeg_bytes", "jpeg"),
        ("png_with_alpha_bytes", "png"),
        ("webp_bytes", "webp"),
        ("animated_gif_bytes", "gif"),
        ("avif_bytes", "avif"),
        ("tiff_bytes", "tiff"),
    ],
)
def test_sniff_recognises_real_files(images: ImageFactory, maker: str, expected: str) -> None:
    assert sniff(getattr(images, maker)()) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "heic"),
        (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf", "avif"),
        (b"\x00\x00\x00\x14ftypisom\x00\x00\x02\x00isom", None),
        (b"BM" + b"\x00" * 12 + (40).to_bytes(4, "little") + b"\x00" * 40, "bmp"),
        (b"BMW stands for Bavarian Motor Works, not a bitmap", None),
        (b"\xff\x0a\xfa\x7f", "jxl"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"></svg>', "svg"),
        (b"  <svg width='1'/>", "svg"),
        (HTML_PAGE, None),
        (b"<html><body><svg></svg></body></html>", None),
        (b"S. No.,Product Name,Input Image Urls\n1,SKU1,https://example.com/a.jpg\n", None),
        (b"", None),
        (b"\xff\xd8", None),
    ],
)
def test_sniff_edge_cases(data: bytes, expected: str | None) -> None:
    assert sniff(data) == expected


@pytest.mark.parametrize(
    ("fmt", "content_type", "extension"),
    [
        ("jpeg", "image/jpeg", ".jpg"),
        ("png", "image/png", ".png"),
        ("webp", "image/webp", ".webp"),
        ("avif", "image/avif", ".avif"),
        ("gif", "image/gif", ".gif"),
        ("tiff", "image/tiff", ".tiff"),
    ],
)
def test_content_type_and_extension(fmt: str, content_type: str, extension: str) -> None:
    assert content_type_and_extension(fmt) == (content_type, extension)


def test_content_type_of_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown image format 'exe'"):
        content_type_and_extension("exe")
    assert format_info("svg").label == "SVG"


# --- operations -------------------------------------------------------------------------------


def test_default_operations_keep_format_and_size() -> None:
    ops = Operations()
    assert ops.model_dump() == {
        "quality": 50,
        "format": "keep",
        "max_width": None,
        "max_height": None,
        "animated": False,
    }
    assert not ops.resizes
    assert ops.output_format("png") == "png"
    assert Operations(format="webp").output_format("png") == "webp"


@pytest.mark.parametrize("raw", [None, "", "  \n", b"", "{}", b'{"quality": 50}', {}])
def test_missing_or_empty_operations_mean_the_default(raw: Any) -> None:
    assert parse_operations(raw) == Operations()


def test_operations_parse_from_json_text() -> None:
    ops = parse_operations(
        '{"quality": 80, "format": "WebP", "max_width": 512, "max_height": 400, "animated": true}'
    )
    assert ops == Operations(
        quality=80, format="webp", max_width=512, max_height=400, animated=True
    )
    assert ops.resizes
    assert parse_operations('{"format": " jpg "}').format == "jpeg"


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        (
            '{"quality": 0}',
            "operations.quality",
            "quality must be a whole number from 1 to 100; got 0",
        ),
        ('{"quality": 101}', "operations.quality", "from 1 to 100; got 101"),
        ('{"quality": 50.5}', "operations.quality", "got 50.5"),
        ('{"quality": "high"}', "operations.quality", 'got "high"'),
        ('{"quality": true}', "operations.quality", "got true"),
        ('{"quality": null}', "operations.quality", "got null"),
        ('{"format": "bmp"}', "operations.format", 'keep, jpeg, png, webp, avif; got "bmp"'),
        ('{"format": 5}', "operations.format", "got 5"),
        ('{"max_width": 0}', "operations.max_width", "from 1 to 65500, or null; got 0"),
        ('{"max_height": 100000}', "operations.max_height", "got 100000"),
        ('{"animated": "perhaps"}', "operations.animated", 'true or false; got "perhaps"'),
        ('{"qualty": 50}', "operations.qualty", "'qualty' is not an option; the options are"),
    ],
)
def test_invalid_operations_are_named(raw: str, field: str, words: str) -> None:
    with pytest.raises(InvalidOperations) as caught:
        parse_operations(raw)
    error = caught.value
    assert isinstance(error, ValidationFailed)
    assert error.status_code == 422
    assert error.code == "validation_error"
    assert [detail["field"] for detail in error.details] == [field]
    assert words in error.details[0]["message"]
    assert error.message.startswith("Invalid operations: ")
    assert words in error.message


def test_every_problem_in_the_operations_is_reported_at_once() -> None:
    with pytest.raises(InvalidOperations) as caught:
        parse_operations({"quality": 0, "format": "tiff", "colour": "red"})
    assert [detail["field"] for detail in caught.value.details] == [
        "operations.quality",
        "operations.format",
        "operations.colour",
    ]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ('{"quality": 50', "operations is not valid JSON: Expecting ',' delimiter at line 1"),
        ("quality=50", "operations is not valid JSON: Expecting value at line 1 column 1"),
        (b"\xff\xfe", "operations is not valid JSON: it is not UTF-8 text"),
        ("[50]", "operations must be a JSON object"),
        ("50", "operations must be a JSON object"),
        ('"webp"', "operations must be a JSON object"),
    ],
)
def test_operations_that_are_not_a_json_object(raw: str | bytes, words: str) -> None:
    with pytest.raises(InvalidOperations) as caught:
        parse_operations(raw)
    assert words in caught.value.message
    assert caught.value.details[0]["field"] == "operations"
    assert caught.value.details[0]["message"] == caught.value.message


def test_operations_model_forbids_extra_fields_and_is_frozen() -> None:
    with pytest.raises(ValidationError):
        Operations.model_validate({"quality": 50, "strip": False})
    ops = Operations()
    with pytest.raises(ValidationError):
        ops.quality = 90  # type: ignore[misc]


# --- inspect ----------------------------------------------------------------------------------


def test_inspect_reads_the_header(images: ImageFactory) -> None:
    assert inspect(images.jpeg_bytes(320, 240)) == ImageInfo("jpeg", 320, 240, 1)
    assert inspect(images.animated_gif_bytes(64, 48)) == ImageInfo("gif", 64, 48, 5)
    assert inspect(images.animated_webp_bytes(64, 48)) == ImageInfo("webp", 64, 48, 5)
    assert inspect(images.avif_bytes(160, 120)) == ImageInfo("avif", 160, 120, 1)
    assert inspect(images.tiff_bytes(160, 120)) == ImageInfo("tiff", 160, 120, 1)


def test_a_decompression_bomb_is_refused_by_inspect(images: ImageFactory) -> None:
    bomb = images.png_bomb_bytes(20_000)
    assert len(bomb) < 100_000
    with _Kind("too_many_pixels") as caught:
        inspect(bomb)
    assert caught.message == (
        "The image is 20000x20000 = 400,000,000 pixels; the limit is 50,000,000 (50 megapixels)."
    )
    assert inspect(bomb, max_pixels=400_000_000) == ImageInfo("png", 20_000, 20_000, 1)


def test_a_bomb_is_refused_before_any_pixel_is_decoded(
    images: ImageFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The header claims 10 gigapixels and the pixel data is junk: decoding would say "corrupt".
    with _Kind("too_many_pixels") as caught:
        inspect(images.png_header_bomb_bytes(100_000))
    assert "100000x100000 = 10,000,000,000 pixels" in caught.message

    def no_decoding(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a bomb must not be decoded")

    monkeypatch.setattr(processing, "_decode", no_decoding)
    for ops in (Operations(), Operations(max_width=512), Operations(format="webp")):
        with _Kind("too_many_pixels"):
            process(images.png_bomb_bytes(20_000), ops)
        with _Kind("too_many_pixels"):
            process(images.jpeg_bomb_bytes(60_000, 60_000), ops)


def test_the_pixel_limit_is_configurable_and_inclusive(images: ImageFactory) -> None:
    data = images.jpeg_bytes(100, 50)
    assert inspect(data, max_pixels=5_000).width == 100
    with _Kind("too_many_pixels") as caught:
        inspect(data, max_pixels=4_999)
    assert caught.message == (
        "The image is 100x50 = 5,000 pixels; the limit is 4,999 (0.004999 megapixels)."
    )
    assert DEFAULT_MAX_PIXELS == 50_000_000


def test_animation_frames_count_towards_the_pixel_limit(images: ImageFactory) -> None:
    gif = images.animated_gif_bytes(64, 48)
    limit = 64 * 48 * 3
    assert inspect(gif, max_pixels=limit, animated=False).frames == 5
    with _Kind("too_many_pixels") as caught:
        inspect(gif, max_pixels=limit, animated=True)
    assert "5 frames of 64x48 pixels, 15,360 pixels in all; the limit is 9,216" in caught.message
    assert '"animated": false' in caught.message
    with _Kind("too_many_pixels"):
        process(gif, Operations(animated=True), max_pixels=limit)
    # The first frame alone fits, and so does an animation written to a still format.
    assert process(gif, Operations(), max_pixels=limit).frames == 1
    assert process(gif, Operations(animated=True, format="png"), max_pixels=limit).frames == 1


@pytest.mark.parametrize(
    "data",
    [
        os.urandom(4096),
        b"just some text, nothing to see here\n" * 20,
        HTML_PAGE,
        b"S. No.,Product Name,Input Image Urls\n1,SKU1,https://example.com/a.jpg\n",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
    ],
    ids=["random", "text", "html", "csv", "pdf"],
)
def test_things_that_are_not_images(data: bytes) -> None:
    if sniff(data) is not None:  # 4 KiB of random bytes may start like an image, very rarely
        data = b"\x00" + data
    for call in (lambda: inspect(data), lambda: process(data)):
        with _Kind("not_an_image") as caught:
            call()
        assert caught.message == (
            "The file is not an image: its content is not JPEG, PNG, WebP, GIF, AVIF or TIFF data."
        )


def test_an_empty_file() -> None:
    with _Kind("not_an_image") as caught:
        process(b"")
    assert caught.message == "The file is empty."


@pytest.mark.parametrize(
    ("data", "label"),
    [
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64, "HEIC"),
        (b"BM" + b"\x00" * 12 + (40).to_bytes(4, "little") + b"\x00" * 64, "BMP"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "SVG"),
    ],
)
def test_unsupported_image_formats(data: bytes, label: str) -> None:
    with _Kind("unsupported_format") as caught:
        process(data)
    assert caught.message == (
        f"{label} images are not supported; send JPEG, PNG, WebP, GIF, AVIF or TIFF."
    )


def test_configure_libvips_turns_the_cache_off_and_sets_threads() -> None:
    before = pyvips.concurrency_get()
    try:
        processing.configure_libvips(concurrency=1)
        assert pyvips.concurrency_get() == 1
    finally:
        processing.configure_libvips(concurrency=before)
    assert pyvips.concurrency_get() == before
    assert pyvips.cache_get_max() == 0


def test_libvips_will_not_run_other_loaders() -> None:
    processing.configure_libvips()
    with pytest.raises(pyvips.Error):
        load(b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')


# --- damaged files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("maker", "label"),
    [
        ("jpeg_bytes", "JPEG"),
        ("png_with_alpha_bytes", "PNG"),
        ("webp_bytes", "WebP"),
        ("gif_bytes", "GIF"),
        ("avif_bytes", "AVIF"),
        ("tiff_bytes", "TIFF"),
    ],
)
@pytest.mark.parametrize("ops", [Operations(), Operations(max_width=40)], ids=["keep", "resize"])
def test_a_truncated_file_is_corrupt(
    images: ImageFactory, maker: str, label: str, ops: Operations
) -> None:
    data = getattr(images, maker)()
    with _Kind("corrupt") as caught:
        process(data[: len(data) * 2 // 3], ops)
    assert caught.message.startswith(f"The {label} file is damaged or incomplete")
    assert caught.error is not None
    assert caught.error.detail


@pytest.mark.parametrize("cut", [0.4, 0.7, 0.95])
def test_a_truncated_animation(images: ImageFactory, cut: float) -> None:
    data = images.animated_gif_bytes(64, 48)
    truncated = data[: int(len(data) * cut)]
    # Its first frame is whole, so a still result is right; all frames would end half-drawn.
    first = process(truncated)
    assert (first.frames, first.width, first.height) == (1, 64, 48)
    assert_close(colour_at(load(first.data), 30, 20), FRAME_COLOURS[0], 25)
    for ops in (Operations(animated=True), Operations(animated=True, format="webp", max_width=32)):
        with _Kind("corrupt") as caught:
            process(truncated, ops)
        assert caught.message == "The GIF file is incomplete: it stops before its end marker."


def test_a_jpeg_with_a_damaged_huffman_table_is_corrupt(images: ImageFactory) -> None:
    data = bytearray(images.jpeg_bytes(200, 200))
    table = data.find(b"\xff\xc4")
    data[table + 5 : table + 21] = b"\xff" * 16
    with _Kind("corrupt") as caught:
        process(bytes(data))
    assert caught.message == (
        "The JPEG file is damaged or incomplete: its header cannot be read "
        "(VipsJpeg: Bogus Huffman table definition)."
    )


def test_a_jpeg_with_stray_bytes_between_its_segments_is_corrupt(images: ImageFactory) -> None:
    data = bytearray(images.jpeg_bytes(200, 200))
    table = data.find(b"\xff\xdb")
    data[table + 2 : table + 4] = b"\x00\x02"  # the table's length now excludes its content
    for ops in (Operations(), Operations(max_width=50)):
        with _Kind("corrupt") as caught:
            process(bytes(data), ops)
        assert caught.message.startswith("The JPEG file is damaged or incomplete, so it cannot")
        assert "extraneous bytes" in caught.message


def test_a_file_that_only_starts_like_an_image_is_corrupt() -> None:
    for data in (b"\xff\xd8\xff\xe0" + b"\x00" * 40, b"\x89PNG\r\n\x1a\n" + b"\x00" * 40):
        with _Kind("corrupt") as caught:
            inspect(data)
        assert "its header cannot be read" in caught.message


# --- processing -------------------------------------------------------------------------------


def test_default_operations_recompress_a_jpeg_at_quality_50(images: ImageFactory) -> None:
    data = images.jpeg_bytes(640, 480, quality=95)
    result = process(data)
    assert isinstance(result, ProcessedImage)
    assert (result.format, result.content_type, result.extension) == ("jpeg", "image/jpeg", ".jpg")
    assert (result.width, result.height, result.frames) == (640, 480, 1)
    assert result.bytes_in == len(data)
    assert result.bytes_out == len(result.data)
    assert sniff(result.data) == "jpeg"
    at_95 = process(data, Operations(quality=95))
    assert result.bytes_out < at_95.bytes_out
    assert result.bytes_out < len(data)
    output = load(result.data)
    assert (output.width, output.height, output.bands) == (640, 480, 3)
    assert output.interpretation == "srgb"


def test_quality_changes_webp_and_avif_size(images: ImageFactory) -> None:
    data = images.jpeg_bytes(320, 240, quality=95)
    for fmt in ("webp", "avif"):
        low = process(data, Operations(format=fmt, quality=20))
        high = process(data, Operations(format=fmt, quality=95))
        assert low.bytes_out < high.bytes_out, fmt


@pytest.mark.parametrize("target", ["jpeg", "png", "webp", "avif"])
@pytest.mark.parametrize(
    "source", ["jpeg_bytes", "png_with_alpha_bytes", "webp_bytes", "avif_bytes"]
)
def test_format_conversion(images: ImageFactory, source: str, target: str) -> None:
    data = getattr(images, source)()
    before = inspect(data)
    result = process(data, Operations(format=target))
    assert sniff(result.data) == target
    assert result.format == target
    assert (result.content_type, result.extension) == content_type_and_extension(target)
    assert (result.width, result.height) == (before.width, before.height)
    output = load(result.data)
    assert (output.width, output.height) == (before.width, before.height)
    assert output.interpretation == "srgb"


def test_png_stays_lossless_and_keeps_its_alpha(images: ImageFactory) -> None:
    data = images.png_with_alpha_bytes(200, 150)
    result = process(data)
    assert result.format == "png"
    output, original = load(result.data), load(data)
    assert output.bands == 4
    assert (output - original).abs().max() == 0
    assert process(data, Operations(format="webp")).data[:4] == b"RIFF"
    assert load(process(data, Operations(format="webp")).data).hasalpha()
    assert load(process(data, Operations(format="avif")).data).hasalpha()


@pytest.mark.parametrize("bitdepth", [8, 4, 1])
def test_an_indexed_png_stays_indexed_and_exact(images: ImageFactory, bitdepth: int) -> None:
    data = images.palette_png_bytes(200, 150, bitdepth=bitdepth)
    result = process(data)
    output, original = load(result.data), load(data)
    assert (output - original).abs().max() == 0
    assert output.get("palette") == 1
    assert output.get("bits-per-sample") == bitdepth
    assert result.bytes_out <= len(data) * 1.1
    # Resized, it is written as truecolour: new colours appear between the old ones.
    resized = load(process(data, Operations(max_width=100)).data)
    assert not (resized.get_typeof("palette") and resized.get("palette"))


def test_transparency_becomes_white_in_a_jpeg(images: ImageFactory) -> None:
    output = load(process(images.png_with_alpha_bytes(200, 150), Operations(format="jpeg")).data)
    assert output.bands == 3
    assert_close(colour_at(output, 20, 75), (255, 255, 255), 3)


def test_webp_tiff_and_avif_keep_their_format(images: ImageFactory) -> None:
    assert process(images.webp_bytes()).format == "webp"
    tiff = process(images.tiff_bytes(160, 120))
    assert (tiff.format, sniff(tiff.data), tiff.width, tiff.height) == ("tiff", "tiff", 160, 120)
    avif = process(images.avif_bytes(160, 120))
    assert (avif.format, sniff(avif.data), avif.content_type) == ("avif", "avif", "image/avif")


@pytest.mark.parametrize(
    ("ops", "size"),
    [
        (Operations(max_width=160), (160, 120)),
        (Operations(max_height=60), (80, 60)),
        (Operations(max_width=100, max_height=100), (100, 75)),
        (Operations(max_width=400, max_height=30), (40, 30)),
        (Operations(max_width=5000), (320, 240)),
        (Operations(max_width=320, max_height=240), (320, 240)),
    ],
)
def test_resize_fits_inside_and_never_upscales(
    images: ImageFactory, ops: Operations, size: tuple[int, int]
) -> None:
    result = process(images.jpeg_bytes(320, 240), ops)
    assert (result.width, result.height) == size
    output = load(result.data)
    assert (output.width, output.height) == size


def test_resize_with_conversion(images: ImageFactory) -> None:
    result = process(
        images.png_with_alpha_bytes(400, 300), Operations(format="webp", max_width=100)
    )
    assert (result.format, result.width, result.height) == ("webp", 100, 75)
    assert load(result.data).hasalpha()


@pytest.mark.parametrize("ops", [Operations(), Operations(max_width=60)], ids=["keep", "resize"])
def test_exif_orientation_is_applied_and_dropped(images: ImageFactory, ops: Operations) -> None:
    data = images.rotated_jpeg_bytes(6, 120, 80)
    assert load(data).get("orientation") == 6
    result = process(data, ops)
    expected = (80, 120) if not ops.resizes else (60, 90)
    assert (result.width, result.height) == expected
    output = load(result.data)
    assert (output.width, output.height) == expected
    assert not output.get_typeof("orientation")
    # Orientation 6 turns the picture a quarter clockwise: its left (red) half ends up on top.
    assert_close(colour_at(output, expected[0] // 2, 2), RED, 30)
    assert_close(colour_at(output, expected[0] // 2, expected[1] - 3), BLUE, 30)


def test_a_large_image_is_turned_upright_through_a_scratch_file(
    images: ImageFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = images.rotated_jpeg_bytes(6, 120, 80)
    in_memory = process(data)
    monkeypatch.setattr(processing, "IN_MEMORY_ORIENT_MAX_PIXELS", 0)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    on_disk = process(data)
    assert on_disk.data == in_memory.data
    assert (on_disk.width, on_disk.height) == (80, 120)
    with _Kind("corrupt"):
        process(data[: len(data) // 2])
    assert list(tmp_path.iterdir()) == []  # the scratch files are gone, after an error too


def test_the_resize_box_applies_to_the_upright_image(images: ImageFactory) -> None:
    data = images.rotated_jpeg_bytes(6, 120, 80)
    result = process(data, Operations(max_height=60))
    assert (result.width, result.height) == (40, 60)
    result = process(data, Operations(max_width=100, max_height=100))
    assert (result.width, result.height) == (67, 100)
    output = load(result.data)
    assert_close(colour_at(output, 33, 2), RED, 30)


@pytest.mark.parametrize("orientation", [2, 3, 4, 5, 7, 8])
def test_every_exif_orientation_is_handled(images: ImageFactory, orientation: int) -> None:
    result = process(images.rotated_jpeg_bytes(orientation, 120, 80))
    assert (result.width, result.height) == ((80, 120) if orientation >= 5 else (120, 80))
    assert not load(result.data).get_typeof("orientation")


@pytest.mark.parametrize("target", ["jpeg", "png", "webp", "avif"])
def test_metadata_is_stripped(images: ImageFactory, target: str) -> None:
    data = images.jpeg_with_metadata_bytes()
    original = load(data)
    assert original.get_typeof("exif-data")
    assert original.get_typeof("xmp-data")
    assert original.get_typeof("icc-profile-data")
    result = process(data, Operations(format=target))
    output = load(result.data)
    for field in METADATA_FIELDS:
        assert not output.get_typeof(field), f"{field} survived in {target}"
    for marker in (b"Exif\x00\x00", b"OpsDeckCam", b"secret-person", b"ICC_PROFILE", b"xmpmeta"):
        assert marker not in result.data, f"{marker!r} survived in {target}"


def test_a_display_p3_photo_is_converted_to_srgb(images: ImageFactory) -> None:
    data = images.display_p3_jpeg_bytes()
    stored = colour_at(load(data), 10, 10)
    assert abs(stored[0] - RED[0]) > 10  # the file's own numbers are not the sRGB colour
    for ops in (Operations(), Operations(max_width=48), Operations(format="png")):
        output = load(process(data, ops).data)
        assert output.interpretation == "srgb"
        assert_close(colour_at(output, 10, 10), RED, 8)


@pytest.mark.parametrize("with_profile", [True, False], ids=["icc-profile", "no-profile"])
@pytest.mark.parametrize("ops", [Operations(), Operations(max_width=48)], ids=["keep", "resize"])
def test_a_cmyk_jpeg_comes_out_srgb(
    images: ImageFactory, with_profile: bool, ops: Operations
) -> None:
    data = images.cmyk_jpeg_bytes(with_profile=with_profile)
    source = load(data)
    assert source.interpretation == "cmyk"
    assert bool(source.get_typeof("icc-profile-data")) is with_profile
    result = process(data, ops)
    output = load(result.data)
    assert (output.bands, output.interpretation) == (3, "srgb")
    assert not output.get_typeof("icc-profile-data")
    assert_close(colour_at(output, 10, 10), RED, 15)


def test_greyscale_stays_greyscale_and_16_bit_becomes_8_bit(images: ImageFactory) -> None:
    grey = load(process(images.grey_jpeg_bytes()).data)
    assert (grey.bands, grey.interpretation) == (1, "b-w")
    grey16 = pyvips.Image.black(32, 24).linear(1, 40_000).cast("ushort")
    data = grey16.copy(interpretation="grey16").pngsave_buffer()
    grey = load(process(data).data)
    assert (grey.bands, grey.interpretation, grey.format) == (1, "b-w", "uchar")
    assert abs(grey.getpoint(3, 3)[0] - 40_000 / 257) <= 1
    deep = load(process(images.png16_bytes()).data)
    assert (deep.format, deep.interpretation, deep.bands) == ("uchar", "srgb", 3)
    assert_close(colour_at(deep, 5, 5), (200, 40, 30), 1)


def test_an_animation_gives_its_first_frame_by_default(images: ImageFactory) -> None:
    gif = images.animated_gif_bytes(64, 48)
    for ops in (Operations(), Operations(format="webp"), Operations(format="png")):
        result = process(gif, ops)
        assert (result.width, result.height, result.frames) == (64, 48, 1)
        output = load(result.data, **({"n": -1} if ops.format == "webp" else {}))
        assert (output.width, output.height) == (64, 48)
        assert (output.get("n-pages") if output.get_typeof("n-pages") else 1) == 1
        assert_close(colour_at(output, 30, 20), FRAME_COLOURS[0], 20)


@pytest.mark.parametrize("target", ["keep", "webp"])
@pytest.mark.parametrize("source", ["animated_gif_bytes", "animated_webp_bytes"])
def test_every_frame_is_kept_when_asked(images: ImageFactory, source: str, target: str) -> None:
    data = getattr(images, source)(64, 48)
    result = process(data, Operations(animated=True, format=target))
    assert (result.width, result.height, result.frames) == (64, 48, 5)
    output = load(result.data, n=-1)
    assert output.get("n-pages") == 5
    assert output.get("page-height") == 48
    for index, colour in enumerate(FRAME_COLOURS):
        assert_close(colour_at(output, 30, index * 48 + 20), colour, 25)


def test_an_animation_is_resized_frame_by_frame(images: ImageFactory) -> None:
    result = process(images.animated_gif_bytes(64, 48), Operations(animated=True, max_width=32))
    assert (result.format, result.width, result.height, result.frames) == ("gif", 32, 24, 5)
    output = load(result.data, n=-1)
    assert (output.get("n-pages"), output.get("page-height"), output.width) == (5, 24, 32)


def test_an_animation_written_to_a_still_format_keeps_one_frame(images: ImageFactory) -> None:
    for fmt in ("jpeg", "png", "avif"):
        result = process(
            images.animated_gif_bytes(64, 48),
            Operations(animated=True, format=fmt),
        )
        assert (result.format, result.width, result.height, result.frames) == (fmt, 64, 48, 1)


def test_an_image_too_wide_for_webp_is_refused_with_a_reason(images: ImageFactory) -> None:
    wide = images.png_bytes(images.solid(20_000, 4, RED))
    with _Kind("too_large_for_format") as caught:
        process(wide, Operations(format="webp"))
    assert "WebP images can be at most 16383x16383 pixels" in caught.message
    assert "would be 20000x4" in caught.message
    assert process(wide, Operations(format="webp", max_width=10_000)).width == 10_000


@pytest.mark.parametrize(("fmt", "label", "limit"), [("webp", "WebP", 10), ("avif", "AVIF", 5)])
def test_an_output_too_big_for_the_encoders_memory_is_refused_naming_the_limit(
    images: ImageFactory, fmt: str, label: str, limit: int
) -> None:
    """libwebp and libheif hold the whole picture in memory several times over: a 50 MP image
    written as WebP took 345 MiB and as AVIF about 1 GiB, over the 256 MiB a worker process
    may use. Such outputs are refused before decoding, naming the limit and the ways out."""
    side = int((limit * 1_000_000) ** 0.5) + 1
    big = images.jpeg_bytes(image=images.solid(side, side, RED))
    with _Kind("too_large_for_format") as caught:
        process(big, Operations(format=fmt))
    assert f"{label} output is limited to {limit} megapixels" in caught.message
    assert f"would be {side}x{side}" in caught.message
    assert "set max_width / max_height or choose JPEG or PNG" in caught.message
    # The same image, resized to fit, or written as JPEG, is fine.
    assert process(big, Operations(format=fmt, max_width=side // 2)).width == side // 2
    assert process(big, Operations(format="jpeg")).width == side


def test_image_error_is_readable() -> None:
    error = ImageError("corrupt", "The JPEG file is damaged.", detail="VipsJpeg: premature end")
    assert str(error) == "The JPEG file is damaged."
    assert repr(error) == "ImageError(kind='corrupt', message='The JPEG file is damaged.')"
    assert error.detail == "VipsJpeg: premature end"


def test_libvips_version_is_reported() -> None:
    major, minor, _patch = (int(part) for part in processing.libvips_version().split("."))
    assert (major, minor) >= (8, 16)


def test_a_gif_cut_right_after_a_byte_that_looks_like_its_trailer_is_corrupt(
    images: ImageFactory,
) -> None:
    data = images.animated_gif_bytes(64, 48)
    # Cut in the middle of the pixel data, at a byte that happens to be ";" (the trailer's value).
    truncated = data[: len(data) // 2] + b";"
    with _Kind("corrupt") as caught:
        process(truncated, Operations(animated=True))
    assert caught.message == "The GIF file is incomplete: it stops before its end marker."


@pytest.mark.parametrize(("box", "factor"), [(512, 4), (256, 8), (1024, 2), (1500, 1)])
def test_jpeg_thumbnails_shrink_on_load_by_the_whole_factor_and_look_the_same(
    images: ImageFactory, box: int, factor: int
) -> None:
    """A 2048x1536 JPEG into a `box` px square: decoded at 1/`factor` by libjpeg, then
    resized to the exact box; no different to the eye from libvips' own thumbnail."""
    data = images.jpeg_bytes(2048, 1536)
    header = processing._read_header(data, "jpeg", max_pixels=50_000_000, animated=False)
    assert processing._jpeg_shrink(header, box, box) == factor

    result = process(data, Operations(max_width=box, max_height=box, format="png"))

    expected = (box, round(box * 0.75)) if box < 2048 else (2048, 1536)
    assert (result.width, result.height) == expected
    reference = pyvips.Image.thumbnail_buffer(data, box, height=box, size="down")
    difference = (load(result.data).cast("float") - reference.cast("float")).abs()
    assert difference.avg() < 3.0  # out of 255: the same picture


@pytest.mark.parametrize(
    "ops",
    [Operations(), Operations(quality=80, max_width=512, max_height=512)],
    ids=["default", "thumbnail"],
)
def test_a_jpeg_is_written_baseline_with_optimised_huffman_tables(
    images: ImageFactory, ops: Operations
) -> None:
    """Not progressive: with libvips' mozjpeg, progressive coding cost 60-100 % more CPU for
    files no smaller. The pixels are the same either way; the tables are optimised."""
    data = images.jpeg_bytes(2048, 1536)
    result = process(data, ops)
    output = load(result.data)
    assert output.get("jpeg-multiscan") == 0
    pixels = output.copy_memory()
    standard = pixels.jpegsave_buffer(Q=ops.quality, keep=pyvips.enums.ForeignKeep.NONE)
    optimised = pixels.jpegsave_buffer(
        Q=ops.quality, keep=pyvips.enums.ForeignKeep.NONE, optimize_coding=True
    )
    assert len(processing._encode(pixels, "jpeg", ops.quality)) == len(optimised)
    assert len(optimised) < len(standard)


def test_a_jpeg_shrunk_on_load_onto_the_box_is_not_resampled_again(images: ImageFactory) -> None:
    """2048x1536 into 512x512: libjpeg's 1/4 decode is already 512x384, and that is the output,
    pixel for pixel (PNG out, so nothing is lost after the decode)."""
    data = images.jpeg_bytes(2048, 1536)
    result = process(data, Operations(max_width=512, max_height=512, format="png"))
    assert (result.width, result.height) == (512, 384)
    decoded = pyvips.Image.new_from_buffer(data, "", shrink=4)
    assert (load(result.data).cast("int") - decoded.cast("int")).abs().max() == 0


def test_a_cmyk_jpeg_shrunk_onto_the_box_is_still_converted(images: ImageFactory) -> None:
    data = images.cmyk_jpeg_bytes(with_profile=False)
    source = load(data)
    box = source.width // 2
    result = process(data, Operations(max_width=box, max_height=source.height))
    output = load(result.data)
    assert (output.width, output.bands, output.interpretation) == (box, 3, "srgb")
    assert_close(colour_at(output, 5, 5), RED, 15)
