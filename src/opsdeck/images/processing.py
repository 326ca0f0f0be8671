"""Image processing on libvips: bytes in, bytes out; no HTTP, no database.

`inspect` reads a file's header only and refuses a decompression bomb before a pixel is decoded.
`process` decodes (shrinking on load when it resizes), turns the image upright from its EXIF
orientation, converts it to 8-bit sRGB, drops every piece of metadata and encodes it.

Memory: libvips streams. With sequential access a JPEG is decoded, converted and re-encoded a few
scanlines at a time, so a 50-megapixel JPEG is processed without ever holding its pixels. What
cannot stream is bounded where it can be: a large image to turn upright goes through a scratch
file on disk, a large JPEG is written without optimised Huffman tables. The WebP, AVIF and GIF
encoders hold the whole
image (and libaom several copies): converting a 50 MP photo to AVIF takes about 1 GB.
`bench/images_processing.py` prints the figures.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

import pyvips
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from opsdeck.core.errors import ValidationFailed
from opsdeck.images.formats import (
    ANIMATED_OUTPUT_FORMATS,
    DECODABLE_FORMATS,
    content_type_and_extension,
    format_label,
    sniff,
)

# pyvips ships no type hints; every libvips image in this module is one of these.
VipsImage: TypeAlias = Any

DEFAULT_MAX_PIXELS: Final = 50_000_000
MAX_DIMENSION: Final = 65_500
OUTPUT_FORMATS: Final = ("keep", "jpeg", "png", "webp", "avif")
ACCEPTED_FORMATS_TEXT: Final = "JPEG, PNG, WebP, GIF, AVIF or TIFF"

OutputFormat = Literal["keep", "jpeg", "png", "webp", "avif"]
ErrorKind = Literal[
    "not_an_image",
    "unsupported_format",
    "corrupt",
    "too_many_pixels",
    "too_large_for_format",
    "processing_failed",
]

# JPEGs are written baseline (sequential), never progressive: with the libjpeg libvips ships
# (mozjpeg), progressive coding took 60-100 % more CPU to encode a 2K photo or a 512 px
# thumbnail for files within 2 % of the baseline ones' size, often larger (the decoded pixels
# are the same either way). Optimised Huffman tables are kept up to this many pixels: above it
# they make libjpeg buffer every DCT coefficient (~5.5 bytes a pixel, 280 MB at 50 MP), which
# would break the per-worker memory budget, so bigger JPEGs use the standard tables.
JPEG_OPTIMISE_MAX_PIXELS: Final = 16_000_000
# libvips' default AVIF effort (4) takes ~10 s for a 3-megapixel photo on one core; effort 2
# takes about a tenth of that for files of much the same size at quality 50.
AVIF_EFFORT: Final = 2
# An image to turn upright is held whole: in memory up to this size (48 MB as 8-bit RGB).
IN_MEMORY_ORIENT_MAX_PIXELS: Final = 16_000_000
_QUARTER_TURNS: Final = frozenset((5, 6, 7, 8))
# thumbnail needs a target for both sides; this one means "no limit on this side".
_UNBOUNDED: Final = 10_000_000
_FORMAT_ALIASES: Final = {"jpg": "jpeg", "jpe": "jpeg", "original": "keep"}
_LOADERS: Final = {
    "jpeg": "jpegload",
    "png": "pngload",
    "webp": "webpload",
    "gif": "gifload",
    "avif": "heifload",
    "tiff": "tiffload",
}
# Loaders allowed to run at all: a libvips loader for any other format is never reached, even if a
# file slips past `sniff`.
_ALLOWED_LOADER_CLASSES: Final = (
    "VipsForeignLoadJpeg",
    "VipsForeignLoadPng",
    "VipsForeignLoadWebp",
    "VipsForeignLoadNsgif",
    "VipsForeignLoadHeif",
    "VipsForeignLoadTiff",
)
_ENCODER_MAX_SIDE: Final = {"jpeg": 65_500, "webp": 16_383, "gif": 65_535}
# libwebp and libheif take the whole picture in memory, several copies of it: measured peak
# RSS grows by about 12 MiB (WebP) and 22 MiB (AVIF, effort 2) per output megapixel. A worker
# process at rest holds about 110 MiB, and its budget is 256 MiB (docs/images.md): bigger
# outputs in these formats are refused before anything is decoded.
ENCODER_MAX_PIXELS: Final = {"webp": 10_000_000, "avif": 5_000_000}
_ANIMATED_INPUTS: Final = frozenset(("gif", "webp"))


class ImageError(Exception):
    """An image that cannot be processed, with a reason a person can act on.

    `kind` is stable (metrics, API), `message` is for people, `detail` is libvips' own words.
    """

    def __init__(self, kind: ErrorKind, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message
        self.detail = detail

    def __repr__(self) -> str:
        return f"ImageError(kind={self.kind!r}, message={self.message!r})"


class InvalidOperations(ValidationFailed):
    """The `operations` field of a request is not valid (422 with one detail per problem)."""


class Operations(BaseModel):
    """What to do to each image. The default, `{"quality": 50}`, keeps format and size."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    quality: int = Field(
        default=50, ge=1, le=100, description="Encoder quality for JPEG, WebP and AVIF, 1-100."
    )
    format: OutputFormat = Field(
        default="keep", description="Output format; `keep` writes the input's own format."
    )
    max_width: int | None = Field(
        default=None, ge=1, le=MAX_DIMENSION, description="Shrink to fit this width; never grow."
    )
    max_height: int | None = Field(
        default=None, ge=1, le=MAX_DIMENSION, description="Shrink to fit this height; never grow."
    )
    animated: bool = Field(
        default=False,
        description="Keep every frame of an animation (WebP and GIF output); else the first.",
    )

    @field_validator("quality", "max_width", "max_height", mode="before")
    @classmethod
    def _refuse_booleans(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("expected a whole number, not true or false")
        return value

    @field_validator("format", mode="before")
    @classmethod
    def _normalise_format(cls, value: object) -> object:
        if isinstance(value, str):
            name = value.strip().lower()
            return _FORMAT_ALIASES.get(name, name)
        return value

    @property
    def resizes(self) -> bool:
        return self.max_width is not None or self.max_height is not None

    def output_format(self, input_format: str) -> str:
        return input_format if self.format == "keep" else self.format


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What a file's header says. `frames` counts animation frames (1 for a still image)."""

    format: str
    width: int
    height: int
    frames: int


@dataclass(frozen=True, slots=True)
class ProcessedImage:
    """An encoded result. For an animation, `height` is one frame's height."""

    data: bytes
    format: str
    content_type: str
    extension: str
    width: int
    height: int
    frames: int
    bytes_in: int
    bytes_out: int


@dataclass(frozen=True, slots=True)
class _Header:
    info: ImageInfo
    orientation: int
    palette_bits: int | None  # an indexed-colour PNG's bits per pixel
    # The image the header was read from: no pixel decoded yet, so a first-frame decode at full
    # size reads its pixels from it instead of parsing the file's header a second time.
    image: VipsImage = None


_configure_lock = threading.Lock()
_configured = False


def configure_libvips(*, concurrency: int | None = None) -> None:
    """Process-wide libvips settings for image work; called by `inspect` and `process` too.

    The operation cache is off: every input is new, so cached images would only add to RSS.
    Only the six accepted formats' loaders may run. `concurrency` sets libvips' worker threads
    (default: the VIPS_CONCURRENCY variable, else one per core).
    """
    global _configured
    with _configure_lock:
        if concurrency is not None:
            pyvips.concurrency_set(concurrency)
        if _configured:
            return
        pyvips.cache_set_max(0)
        pyvips.cache_set_max_mem(0)
        pyvips.cache_set_max_files(0)
        pyvips.block_untrusted_set(True)
        pyvips.operation_block_set("VipsForeignLoad", True)
        for name in _ALLOWED_LOADER_CLASSES:
            pyvips.operation_block_set(name, False)
        _configured = True


def libvips_version() -> str:
    return ".".join(str(pyvips.version(part)) for part in range(3))


# ---------------------------------------------------------------------------------------------
# Operations from a request


def parse_operations(raw: str | bytes | Mapping[str, Any] | None) -> Operations:
    """Operations from the API's `operations` form field (JSON text) or an already-parsed dict.

    Missing or blank means the default. Raises InvalidOperations with one detail per problem.
    """
    if raw is None:
        return Operations()
    value: object = raw
    if isinstance(raw, bytes | str):
        value = _load_json(raw)
        if value is None:
            return Operations()
    if not isinstance(value, Mapping):
        message = 'operations must be a JSON object, for example {"quality": 50, "format": "webp"}.'
        raise InvalidOperations(
            message,
            details=[{"field": "operations", "message": message, "type": "model_type"}],
        )
    try:
        return Operations.model_validate(dict(value))
    except ValidationError as exc:
        details = [_describe_error(error) for error in exc.errors()]
        summary = " ".join(detail["message"] for detail in details[:5])
        raise InvalidOperations(f"Invalid operations: {summary}", details=details) from None


def _load_json(raw: str | bytes) -> object:
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        message = "operations is not valid JSON: it is not UTF-8 text."
        raise InvalidOperations(
            message, details=[{"field": "operations", "message": message, "type": "json_invalid"}]
        ) from None
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        message = (
            f"operations is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}. "
            'Send an object such as {"quality": 50}.'
        )
        raise InvalidOperations(
            message, details=[{"field": "operations", "message": message, "type": "json_invalid"}]
        ) from None


def _describe_error(error: ErrorDetails) -> dict[str, Any]:
    loc = error.get("loc", ())
    name = str(loc[0]) if loc else ""
    got = _show(error.get("input"))
    kind = error["type"]
    if kind == "extra_forbidden":
        message = (
            f"{name!r} is not an option; the options are quality, format, max_width, "
            "max_height and animated."
        )
    elif name == "quality":
        message = f"quality must be a whole number from 1 to 100; got {got}."
    elif name in ("max_width", "max_height"):
        message = (
            f"{name} must be a whole number of pixels from 1 to {MAX_DIMENSION}, or null; "
            f"got {got}."
        )
    elif name == "format":
        message = f"format must be one of {', '.join(OUTPUT_FORMATS)}; got {got}."
    elif name == "animated":
        message = f"animated must be true or false; got {got}."
    else:
        message = f"{'.'.join(str(part) for part in loc) or 'operations'}: {error['msg']}"
    field = ".".join(("operations", *(str(part) for part in loc)))
    return {"field": field, "message": message, "type": kind}


def _show(value: object) -> str:
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ---------------------------------------------------------------------------------------------
# Reading and processing images


def inspect(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, animated: bool = False
) -> ImageInfo:
    """Format, size and frame count from the header, without decoding pixels.

    Raises ImageError: `not_an_image`, `unsupported_format`, `corrupt` (unreadable header), or
    `too_many_pixels` when width x height (x frames, when `animated`) exceeds `max_pixels`.
    """
    fmt = _accepted_format(data)
    return _read_header(data, fmt, max_pixels=max_pixels, animated=animated).info


def process(
    data: bytes, ops: Operations | None = None, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> ProcessedImage:
    """Apply `ops` to one encoded image. Raises ImageError; never returns a damaged result."""
    ops = ops or Operations()
    fmt = _accepted_format(data)
    out_fmt = ops.output_format(fmt)
    keep_frames = ops.animated and out_fmt in ANIMATED_OUTPUT_FORMATS
    header = _read_header(data, fmt, max_pixels=max_pixels, animated=keep_frames)
    all_frames = keep_frames and header.info.frames > 1
    if all_frames and fmt == "gif" and not _gif_is_complete(data):
        # libnsgif draws a cut-off last frame without complaint; only a missing trailer tells.
        raise ImageError("corrupt", "The GIF file is incomplete: it stops before its end marker.")
    with contextlib.ExitStack() as scratch:
        try:
            image = _decode(data, header, ops, all_frames=all_frames)
            width = int(image.width)
            height = int(image.get("page-height")) if all_frames else int(image.height)
            if header.orientation in _QUARTER_TURNS and not all_frames:
                width, height = height, width
            _check_encoder_limits(out_fmt, width, height)
            image = _to_srgb(image)
            if not all_frames:
                image = _upright(image, header.orientation, scratch)
            if out_fmt == "jpeg" and image.hasalpha():
                image = image.flatten(background=[255.0] * (image.bands - 1))
            # An indexed PNG written back unchanged keeps its palette: exact, and far smaller.
            palette_bits = header.palette_bits if out_fmt == "png" and not ops.resizes else None
            encoded = _encode(image, out_fmt, ops.quality, png_palette_bits=palette_bits)
        except pyvips.Error as exc:
            raise _failure(exc, fmt, out_fmt) from None
    content_type, extension = content_type_and_extension(out_fmt)
    return ProcessedImage(
        data=encoded,
        format=out_fmt,
        content_type=content_type,
        extension=extension,
        width=width,
        height=height,
        frames=header.info.frames if all_frames else 1,
        bytes_in=len(data),
        bytes_out=len(encoded),
    )


def _accepted_format(data: bytes) -> str:
    if not data:
        raise ImageError("not_an_image", "The file is empty.")
    fmt = sniff(data)
    if fmt is None:
        raise ImageError(
            "not_an_image",
            f"The file is not an image: its content is not {ACCEPTED_FORMATS_TEXT} data.",
        )
    if fmt not in DECODABLE_FORMATS:
        raise ImageError(
            "unsupported_format",
            f"{format_label(fmt)} images are not supported; send {ACCEPTED_FORMATS_TEXT}.",
        )
    return fmt


def _read_header(data: bytes, fmt: str, *, max_pixels: int, animated: bool) -> _Header:
    configure_libvips()
    label = format_label(fmt)
    try:
        image = pyvips.Image.new_from_buffer(data, "", access="sequential", fail_on="error")
        loader = str(image.get("vips-loader"))
        width, height = int(image.width), int(image.height)
        frames = _int_field(image, "n-pages", 1) if fmt in _ANIMATED_INPUTS else 1
        orientation = _int_field(image, "orientation", 1)
        orientation = orientation if 1 <= orientation <= 8 else 1
        palette_bits = None
        if fmt == "png" and _int_field(image, "palette", 0):
            palette_bits = min(max(_int_field(image, "bits-per-sample", 8), 1), 8)
    except pyvips.Error as exc:
        detail = _detail(exc)
        raise ImageError(
            "corrupt",
            f"The {label} file is damaged or incomplete: its header cannot be read ({detail}).",
            detail=detail,
        ) from None
    if not loader.startswith(_LOADERS[fmt]):
        raise ImageError(
            "corrupt", f"The file starts like a {label} image but is not one.", detail=loader
        )
    counted = max(frames, 1) if animated else 1
    pixels = width * height * counted
    if pixels > max_pixels:
        limit = f"the limit is {max_pixels:,} ({max_pixels / 1_000_000:g} megapixels)"
        if counted > 1:
            message = (
                f"The animation has {counted} frames of {width}x{height} pixels, "
                f"{pixels:,} pixels in all; {limit}. Ask for the first frame only "
                '("animated": false) or send a smaller animation.'
            )
        else:
            message = f"The image is {width}x{height} = {pixels:,} pixels; {limit}."
        raise ImageError("too_many_pixels", message)
    return _Header(ImageInfo(fmt, width, height, max(frames, 1)), orientation, palette_bits, image)


def _decode(data: bytes, header: _Header, ops: Operations, *, all_frames: bool) -> VipsImage:
    """The pixels as stored (not yet turned upright), shrunk on load when resizing."""
    if ops.resizes:
        width, height = ops.max_width or _UNBOUNDED, ops.max_height or _UNBOUNDED
        if header.orientation in _QUARTER_TURNS and not all_frames:
            width, height = height, width  # the box is upright; the stored image is on its side
        shrink = _jpeg_shrink(header, width, height) if not all_frames else 1
        if shrink > 1:
            # libvips' thumbnail shrinks a JPEG on load by only half the factor it could (for
            # quality at large factors); libjpeg's DCT scaling by the whole power of two is
            # what thumbnail services use, and cuts a 2K -> 512 px thumbnail's CPU by a fifth.
            # The result still lands exactly on the box: thumbnail_image does the rest.
            loaded = pyvips.Image.new_from_buffer(
                data, "", access="sequential", fail_on="error", shrink=shrink
            )
            if _already_fits(loaded, width, height):
                # thumbnail_image would leave it as it is (it never grows an image), yet cost a
                # pass over the pixels: a 2048x1536 photo into 512x512 lands on 512x384 here.
                return loaded
            return loaded.thumbnail_image(width, height=height, size="down", no_rotate=True)
        # thumbnail's own fail_on argument does not reach the loader (libvips 8.18): a truncated
        # file would come out grey at the bottom. The loader option string does reach it.
        return pyvips.Image.thumbnail_buffer(
            data,
            width,
            height=height,
            size="down",
            no_rotate=True,
            option_string="fail_on=error,n=-1" if all_frames else "fail_on=error",
        )
    if all_frames:
        return pyvips.Image.new_from_buffer(data, "", access="sequential", fail_on="error", n=-1)
    return header.image


def _already_fits(image: VipsImage, width: int, height: int) -> bool:
    """Inside the box, in colours thumbnail_image would leave alone (it converts CMYK)."""
    return (
        image.width <= width
        and image.height <= height
        and str(image.interpretation) in ("srgb", "b-w")
        and image.format == "uchar"
    )


def _jpeg_shrink(header: _Header, width: int, height: int) -> int:
    """The largest JPEG shrink-on-load factor (8, 4 or 2) that keeps the image at least as big
    as the box on the side that decides the scale, so nothing is ever scaled back up."""
    if header.info.format != "jpeg":
        return 1
    scale = min(width / header.info.width, height / header.info.height)  # box as stored
    for factor in (8, 4, 2):
        if scale * factor <= 1.0:
            return factor
    return 1


def _upright(image: VipsImage, orientation: int, scratch: contextlib.ExitStack) -> VipsImage:
    """Apply the EXIF orientation. Turning or flipping reads the image out of order, so it is
    decoded whole first: into memory when small, else into an uncompressed tiled TIFF on disk,
    which libvips reads back tile by tile (a 50 MP photo would otherwise take 150 MB of RAM)."""
    if orientation == 1:
        return image
    if image.width * image.height <= IN_MEMORY_ORIENT_MAX_PIXELS:
        image = image.copy_memory()
    else:
        directory = scratch.enter_context(tempfile.TemporaryDirectory(prefix="opsdeck-orient-"))
        path = os.path.join(directory, "pixels.tif")
        image.tiffsave(path, tile=True, compression="none", keep=pyvips.enums.ForeignKeep.NONE)
        image = pyvips.Image.new_from_file(path, access="random", fail_on="error")
    image = image.copy()
    image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    return image.autorot()


def _to_srgb(image: VipsImage) -> VipsImage:
    if image.get_typeof("icc-profile-data"):
        profile = bytes(image.get("icc-profile-data"))
        space = profile[16:20]
        interpretation = str(image.interpretation)
        matches = (space == b"RGB " and interpretation in ("srgb", "rgb", "rgb16")) or (
            space == b"CMYK" and interpretation == "cmyk"
        )
        if matches:
            # An unusable profile is ignored: the colourspace conversion below still applies.
            with contextlib.suppress(pyvips.Error):
                image = image.icc_transform("srgb", embedded=True)
        # thumbnail converts CMYK itself and leaves the CMYK profile behind; drop it either way.
        image = image.copy()
        image.remove("icc-profile-data")
    interpretation = str(image.interpretation)
    if interpretation in ("b-w", "grey16"):
        if interpretation != "b-w" or image.format != "uchar":
            image = image.colourspace("b-w")
    elif interpretation != "srgb" or image.format != "uchar":
        image = image.colourspace("srgb")
    if image.format != "uchar":
        image = image.cast("uchar")
    return image


def _check_encoder_limits(fmt: str, width: int, height: int) -> None:
    limit = _ENCODER_MAX_SIDE.get(fmt)
    if limit is not None and max(width, height) > limit:
        raise ImageError(
            "too_large_for_format",
            f"{format_label(fmt)} images can be at most {limit}x{limit} pixels and this one "
            f"would be {width}x{height}; set max_width / max_height or choose another format.",
        )
    most = ENCODER_MAX_PIXELS.get(fmt)
    if most is not None and width * height > most:
        raise ImageError(
            "too_large_for_format",
            f"{format_label(fmt)} output is limited to {most / 1_000_000:g} megapixels (its "
            f"encoder holds the whole image in memory) and this one would be {width}x{height} "
            f"({width * height / 1_000_000:.1f} megapixels); set max_width / max_height or "
            "choose JPEG or PNG.",
        )


def _encode(
    image: VipsImage, fmt: str, quality: int, *, png_palette_bits: int | None = None
) -> bytes:
    keep = pyvips.enums.ForeignKeep.NONE
    if fmt == "jpeg":
        optimise = image.width * image.height <= JPEG_OPTIMISE_MAX_PIXELS
        result = image.jpegsave_buffer(Q=quality, keep=keep, optimize_coding=optimise)
    elif fmt == "webp":
        result = image.webpsave_buffer(Q=quality, keep=keep)
    elif fmt == "avif":
        result = image.heifsave_buffer(Q=quality, keep=keep, compression="av1", effort=AVIF_EFFORT)
    elif fmt == "png" and png_palette_bits:
        result = image.pngsave_buffer(
            compression=9, palette=True, Q=100, dither=0, bitdepth=png_palette_bits, keep=keep
        )
    elif fmt == "png":
        result = image.pngsave_buffer(compression=9, filter="all", keep=keep)
    elif fmt == "gif":
        result = image.gifsave_buffer(keep=keep)
    elif fmt == "tiff":
        result = image.tiffsave_buffer(compression="deflate", predictor="horizontal", keep=keep)
    else:
        raise ImageError("unsupported_format", f"Cannot write {format_label(fmt)} images.")
    return bytes(result)


def _failure(exc: Any, fmt: str, out_fmt: str) -> ImageError:
    reasons = _reasons(exc)
    detail = reasons[0] if reasons else "unknown libvips error"
    if any("save" in reason for reason in reasons):
        return ImageError(
            "processing_failed",
            f"The image could not be written as {format_label(out_fmt)} ({detail}).",
            detail=detail,
        )
    return ImageError(
        "corrupt",
        f"The {format_label(fmt)} file is damaged or incomplete, so it cannot be decoded "
        f"({detail}).",
        detail=detail,
    )


def _detail(exc: Any) -> str:
    reasons = _reasons(exc)
    return reasons[0] if reasons else "unknown libvips error"


def _reasons(exc: Any) -> list[str]:
    """libvips' distinct reasons, without its `unable to call ...` preamble and I/O noise."""
    text = str(getattr(exc, "detail", None) or exc)
    lines = (line.strip() for line in text.splitlines())
    return [
        line if len(line) <= 160 else line[:157] + "..."
        for line in dict.fromkeys(lines)
        if line and not line.startswith(("unable to", "source:", "("))
    ]


def _gif_is_complete(data: bytes) -> bool:
    """Walk the GIF's blocks to its trailer. Looking at the last byte is not enough: a file cut
    in the middle of its pixel data can end in the trailer's value by chance."""
    view = memoryview(data)
    if len(view) < 13 or bytes(view[:3]) != b"GIF":
        return False
    position = 13 + _colour_table_size(view[10])
    while position < len(view):
        block = view[position]
        if block == 0x3B:  # trailer
            return True
        if block == 0x21:  # extension: label, then data sub-blocks
            position = _skip_sub_blocks(view, position + 2)
        elif block == 0x2C:  # image: descriptor, local colour table, LZW size, sub-blocks
            if position + 10 > len(view):
                return False
            position += 10 + _colour_table_size(view[position + 9])
            position = _skip_sub_blocks(view, position + 1)
        else:
            return False
        if position < 0:
            return False
    return False


def _colour_table_size(flags: int) -> int:
    return 3 * (2 ** ((flags & 0x07) + 1)) if flags & 0x80 else 0


def _skip_sub_blocks(view: memoryview, position: int) -> int:
    """The position after the sub-block sequence starting at `position`; -1 if it is cut."""
    while position < len(view):
        size = view[position]
        position += 1 + size
        if size == 0:
            return position
    return -1


def _int_field(image: VipsImage, name: str, default: int) -> int:
    return int(image.get(name)) if image.get_typeof(name) else default
