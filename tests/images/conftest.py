"""Image factories for the images tests: real files, made by libvips at test time.

The pictures are small but photographic enough for the codecs to behave as on photos: smooth
gradients with grain. `ImageFactory` also crafts the hostile inputs: truncated files and
decompression bombs whose headers claim far more pixels than the file could ever hold.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import pyvips
from fastapi.testclient import TestClient

from tests.conftest import UserFactory, sign_in
from tests.images.servers import LocalServer

VipsImage = Any

RED = (200, 40, 30)
BLUE = (30, 60, 200)
# One colour per frame of the test animations.
FRAME_COLOURS = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (220, 220, 30), (200, 30, 200)]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def set_int(image: VipsImage, name: str, value: int) -> VipsImage:
    image = image.copy()
    image.set_type(pyvips.GValue.gint_type, name, value)
    return image


class ImageFactory:
    """Builds test images; each `*_bytes` method returns an encoded file."""

    def photo(self, width: int = 320, height: int = 240, *, seed: int = 1) -> VipsImage:
        xyz = pyvips.Image.xyz(width, height)
        x, y = xyz[0], xyz[1]
        red = x * (255.0 / width)
        green = y * (255.0 / height)
        blue = (x + y) * (127.0 / (width + height)) + 64
        grain = pyvips.Image.gaussnoise(width, height, sigma=12, mean=0, seed=seed)
        image = red.bandjoin([green, blue]) + grain
        return image.cast("uchar").copy(interpretation="srgb")

    def solid(self, width: int, height: int, colour: tuple[int, ...]) -> VipsImage:
        image = pyvips.Image.black(width, height).new_from_image(list(colour)).cast("uchar")
        interpretation = "b-w" if len(colour) in (1, 2) else "srgb"
        return image.copy(interpretation=interpretation)

    def halves(self, width: int, height: int) -> VipsImage:
        """Left half RED, right half BLUE: shows which way an image was turned."""
        left = self.solid(width // 2, height, RED)
        right = self.solid(width - width // 2, height, BLUE)
        return left.join(right, "horizontal")

    def jpeg_bytes(
        self, width: int = 320, height: int = 240, *, quality: int = 90, image: Any = None
    ) -> bytes:
        source = image if image is not None else self.photo(width, height)
        return bytes(source.jpegsave_buffer(Q=quality))

    def png_bytes(self, image: Any = None) -> bytes:
        return bytes((image if image is not None else self.photo()).pngsave_buffer())

    def png_with_alpha_bytes(self, width: int = 200, height: int = 150) -> bytes:
        """The left half is fully transparent, the right half opaque photo."""
        alpha = pyvips.Image.black(width // 2, height).join(
            pyvips.Image.black(width - width // 2, height) + 255, "horizontal"
        )
        image = self.photo(width, height).bandjoin(alpha.cast("uchar"))
        return bytes(image.pngsave_buffer())

    def palette_png_bytes(self, width: int = 200, height: int = 150, *, bitdepth: int = 8) -> bytes:
        """An indexed-colour PNG, as logos and graphics usually are."""
        image = self.photo(width, height)
        return bytes(image.pngsave_buffer(palette=True, Q=90, bitdepth=bitdepth))

    def webp_bytes(self, width: int = 320, height: int = 240) -> bytes:
        return bytes(self.photo(width, height).webpsave_buffer(Q=90))

    def avif_bytes(self, width: int = 160, height: int = 120) -> bytes:
        return bytes(self.photo(width, height).heifsave_buffer(Q=80, compression="av1", effort=0))

    def tiff_bytes(self, width: int = 160, height: int = 120) -> bytes:
        return bytes(self.photo(width, height).tiffsave_buffer())

    def animation(self, width: int = 64, height: int = 48) -> VipsImage:
        """One FRAME_COLOURS frame each, with grain so that each frame takes real space."""
        frames = [
            (
                self.solid(width, height, colour)
                + pyvips.Image.gaussnoise(width, height, sigma=6, mean=0)
            )
            .cast("uchar")
            .copy(interpretation="srgb")
            for colour in FRAME_COLOURS
        ]
        strip = pyvips.Image.arrayjoin(frames, across=1).copy(interpretation="srgb")
        strip = set_int(strip, "page-height", height)
        strip = set_int(strip, "loop", 0)
        strip.set_type(pyvips.GValue.array_int_type, "delay", [80] * len(frames))
        return strip

    def gif_bytes(self, width: int = 160, height: int = 120) -> bytes:
        return bytes(self.photo(width, height).gifsave_buffer())

    def animated_gif_bytes(self, width: int = 64, height: int = 48) -> bytes:
        return bytes(self.animation(width, height).gifsave_buffer())

    def animated_webp_bytes(self, width: int = 64, height: int = 48) -> bytes:
        return bytes(self.animation(width, height).webpsave_buffer(Q=90))

    def cmyk_jpeg_bytes(self, *, with_profile: bool) -> bytes:
        cmyk = self.solid(96, 64, RED).icc_transform("cmyk")
        if not with_profile:
            cmyk = cmyk.copy()
            cmyk.remove("icc-profile-data")
        return bytes(cmyk.jpegsave_buffer(Q=95))

    def display_p3_jpeg_bytes(self) -> bytes:
        """RED, stored as Display P3 numbers with a P3 profile: wrong unless colour-managed."""
        return bytes(self.solid(96, 64, RED).icc_transform("p3").jpegsave_buffer(Q=95))

    def rotated_jpeg_bytes(self, orientation: int = 6, width: int = 120, height: int = 80) -> bytes:
        image = set_int(self.halves(width, height), "orientation", orientation)
        return bytes(image.jpegsave_buffer(Q=95))

    def jpeg_with_metadata_bytes(self) -> bytes:
        """EXIF (with an orientation of 1 and a camera name), XMP and an ICC profile."""
        image = self.photo(160, 120).icc_transform("p3")
        image = set_int(image, "orientation", 1)
        image.set_type(pyvips.GValue.gstr_type, "exif-ifd0-Make", "OpsDeckCam")
        xmp = (
            b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
            b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
            b'xmlns:dc="http://purl.org/dc/elements/1.1/" dc:creator="secret-person"/>'
            b"</rdf:RDF></x:xmpmeta>"
        )
        image.set_type(pyvips.GValue.blob_type, "xmp-data", xmp)
        return bytes(image.jpegsave_buffer(Q=90))

    def grey_jpeg_bytes(self) -> bytes:
        return bytes(self.photo(120, 90)[0].copy(interpretation="b-w").jpegsave_buffer(Q=90))

    def png16_bytes(self) -> bytes:
        image = pyvips.Image.black(64, 48, bands=3).linear(1, [51400, 10280, 7710]).cast("ushort")
        return bytes(image.copy(interpretation="rgb16").pngsave_buffer())

    # --- hostile inputs ---------------------------------------------------------------------

    def png_bomb_bytes(self, side: int = 20_000) -> bytes:
        """A complete, valid 1-bit black PNG of side x side pixels in a few tens of kilobytes."""
        compressor = zlib.compressobj(9)
        row = b"\x00" * (1 + (side + 7) // 8)
        body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
        return self._png(side, side, body)

    def png_header_bomb_bytes(self, side: int = 100_000) -> bytes:
        """A PNG header claiming side x side pixels followed by junk: decoding it would fail."""
        return self._png(side, side, b"not a zlib stream")

    def _png(self, width: int, height: int, idat: bytes) -> bytes:
        header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b"")
        )

    def jpeg_bomb_bytes(self, width: int = 60_000, height: int = 60_000) -> bytes:
        """A small JPEG whose frame header is rewritten to claim width x height pixels."""
        data = bytearray(self.jpeg_bytes(64, 64, quality=50))
        sof = data.find(b"\xff\xc0")
        assert sof > 0
        data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
        return bytes(data)


@pytest.fixture(scope="session")
def images() -> ImageFactory:
    return ImageFactory()


@pytest.fixture
def server() -> Iterator[LocalServer]:
    """A local HTTP server the images tests fetch from (allowed by the test settings)."""
    with LocalServer().running() as running:
        yield running


@pytest.fixture
def owner(client: TestClient, make_user: UserFactory, celery_worker: Any) -> dict[str, str]:
    """A signed-in member whose batches the real worker processes."""
    make_user("shop")
    return sign_in(client, "shop")
