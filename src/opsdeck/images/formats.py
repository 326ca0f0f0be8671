"""Image formats: recognising them from their first bytes, and their content types and extensions.

Pure functions, no libvips: the API can use them on an upload without loading an image library.
Content-Type headers and file names are never trusted; only the bytes are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class FormatInfo:
    name: str
    label: str
    content_type: str
    extension: str


FORMATS: Final[dict[str, FormatInfo]] = {
    info.name: info
    for info in (
        FormatInfo("jpeg", "JPEG", "image/jpeg", ".jpg"),
        FormatInfo("png", "PNG", "image/png", ".png"),
        FormatInfo("webp", "WebP", "image/webp", ".webp"),
        FormatInfo("gif", "GIF", "image/gif", ".gif"),
        FormatInfo("avif", "AVIF", "image/avif", ".avif"),
        FormatInfo("tiff", "TIFF", "image/tiff", ".tiff"),
        # Recognised so the error can name them, but not decoded.
        FormatInfo("heic", "HEIC", "image/heic", ".heic"),
        FormatInfo("bmp", "BMP", "image/bmp", ".bmp"),
        FormatInfo("jxl", "JPEG XL", "image/jxl", ".jxl"),
        FormatInfo("jp2", "JPEG 2000", "image/jp2", ".jp2"),
        FormatInfo("svg", "SVG", "image/svg+xml", ".svg"),
    )
}

DECODABLE_FORMATS: Final[frozenset[str]] = frozenset(("jpeg", "png", "webp", "gif", "avif", "tiff"))
ANIMATED_OUTPUT_FORMATS: Final[frozenset[str]] = frozenset(("gif", "webp"))

_AVIF_BRANDS: Final = frozenset((b"avif", b"avis"))
_HEIC_BRANDS: Final = frozenset((b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1"))
_BMP_HEADER_SIZES: Final = frozenset((12, 40, 52, 56, 64, 108, 124))
_SNIFF_TEXT_BYTES: Final = 4096


def format_info(fmt: str) -> FormatInfo:
    """The content type, extension and readable name of a format name returned by `sniff`."""
    try:
        return FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown image format {fmt!r}") from None


def content_type_and_extension(fmt: str) -> tuple[str, str]:
    """`("image/webp", ".webp")` for `"webp"`; ValueError for a name that is not a format."""
    info = format_info(fmt)
    return info.content_type, info.extension


def format_label(fmt: str) -> str:
    info = FORMATS.get(fmt)
    return info.label if info else fmt.upper()


def sniff(data: bytes) -> str | None:
    """The image format named by the file's magic bytes, or None when it is not an image we know.

    Returns one of the `FORMATS` keys; only `DECODABLE_FORMATS` can be processed.
    """
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "tiff"
    if head[4:8] == b"ftyp":
        return _sniff_iso_bmff(data)
    if head.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")):
        return "jxl"
    if head.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n"):
        return "jp2"
    if head.startswith(b"BM") and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
        return "bmp"
    if _looks_like_svg(data[:_SNIFF_TEXT_BYTES]):
        return "svg"
    return None


def _sniff_iso_bmff(data: bytes) -> str | None:
    """AVIF and HEIC share one container; the `ftyp` box's brands tell them apart."""
    box_size = int.from_bytes(data[0:4], "big")
    if box_size < 16 or box_size > 4096 or len(data) < 16:
        return None
    brands = {data[8:12]}
    brands.update(data[offset : offset + 4] for offset in range(16, min(box_size, len(data)), 4))
    if brands & _AVIF_BRANDS:
        return "avif"
    if brands & _HEIC_BRANDS:
        return "heic"
    return None


def _looks_like_svg(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<svg"):
        return True
    return text.startswith(b"<?xml") and b"<svg" in text and b"<html" not in text
