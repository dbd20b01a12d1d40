"""Reading photos, training side and device alike: any file OpenCV decodes as RGB ``uint8 [H, W, 3]``, or an error.

Grayscale, RGBA and 16-bit images are converted (OpenCV's ``IMREAD_COLOR``; a GIF gives its first frame). Before
anything is decoded, the header of a PNG, JPEG, BMP, WebP, TIFF or GIF file is read: an image claiming more than
``MAX_PIXELS`` pixels (a decompression bomb, or a photo far larger than a face needs) is refused without
allocating it, and a PNG or JPEG cut short (an interrupted copy) is refused rather than decoded with a grey
bottom. Files over ``MAX_FILE_BYTES`` are not read. Other formats rely on OpenCV's own pixel limit
(``OPENCV_IO_MAX_IMAGE_PIXELS``). ``as_rgb`` takes what a Python caller passes (a path or an array).
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

# OpenCV reads its limit once, when it loads; this only takes effect if this module imports cv2 first.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(100_000_000))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

# What counts as a photo where files are picked from a folder by name (enrol, identify FOLDER); a file named on
# the command line is read whatever its name. Every suffix here is a format ``read_image`` decodes.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
MIN_SIDE = 24  # pixels: smaller images cannot hold a face MTCNN finds
MAX_PIXELS = 100_000_000  # 100 megapixels: more than any usual camera photo, ~300 MB decoded
MAX_FILE_BYTES = 256 << 20  # 256 MiB: no photo is this large (a video or disk image passed by mistake)
FORMATS = "JPEG/PNG/BMP/WebP/TIFF/GIF"


class ImageError(ValueError):
    """A file that is not a usable photo."""


def read_image(path: str | Path, min_side: int = MIN_SIDE) -> np.ndarray:
    """The image at ``path`` as RGB ``uint8 [H, W, 3]``, at least ``min_side`` pixels per side; ``ImageError``
    saying why it cannot be used."""
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"'{path}' is a folder, not a photo")
    if not path.is_file():
        raise ImageError(f"'{path}' not found")
    size = path.stat().st_size
    if size == 0:
        raise ImageError(f"'{path}' is empty (0 bytes)")
    if size > MAX_FILE_BYTES:
        raise ImageError(f"'{path}' is {size / 2**20:.0f} MiB, too large for a photo (limit "
                         f"{MAX_FILE_BYTES >> 20} MiB); pass a JPEG or PNG photo")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ImageError(f"'{path}' cannot be read ({error.strerror or error}); check its permissions") from None
    problem = header_problem(data)
    if problem:
        raise ImageError(f"'{path}' {problem}")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:  # e.g. over OpenCV's pixel limit in a format whose header is not checked here
        image = None
    if image is None:
        raise ImageError(f"'{path}' is not a readable image (damaged, or not {FORMATS})")
    if min(image.shape[:2]) < min_side:
        raise ImageError(f"'{path}' is {image.shape[1]}x{image.shape[0]} pixels; faces need at least "
                         f"{min_side} pixels per side")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def header_problem(data: bytes) -> str | None:
    """What is wrong with an image file's header (the end of the sentence "'photo.png' ..."), or None.

    Checks the size a PNG, JPEG, BMP, WebP, TIFF or GIF header claims against ``MAX_PIXELS``, and that a PNG has its
    end chunk and a JPEG its end marker. Other data is left to the decoder."""
    kind, size = image_size(data)
    if size is not None:
        width, height = size
        if width * height > MAX_PIXELS:
            return (f"claims {width}x{height} pixels, more than the {MAX_PIXELS // 1_000_000}-megapixel limit "
                    "(a decompression bomb, or far larger than a face needs); scale it down")
    if kind == "PNG" and data.rfind(b"IEND", 33) < 0:
        return "is cut short (a PNG without its end chunk, e.g. an interrupted copy); copy it again"
    if kind == "JPEG":
        scan = _jpeg_segments(data)[1]
        if scan is None:
            return "is a damaged JPEG (its header is broken); copy it again or use another photo"
        if data.find(b"\xff\xd9", scan) < 0:  # entropy-coded data never holds FFD9: only the end marker
            return "is cut short (a JPEG without its end marker, e.g. an interrupted copy); copy it again"
    return None


def image_size(data: bytes) -> tuple[str | None, tuple[int, int] | None]:
    """``(format, (width, height))`` from an image file's header; ``(format or None, None)`` when unknown."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            return "PNG", struct.unpack(">II", data[16:24]) if data[12:16] == b"IHDR" else None
        if data[:2] == b"\xff\xd8":
            return "JPEG", _jpeg_segments(data)[0]
        if data[:2] == b"BM":
            width, height = struct.unpack("<ii", data[18:26])
            return "BMP", (abs(width), abs(height))
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return "WebP", _webp_size(data)
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return "TIFF", _tiff_size(data)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return "GIF", struct.unpack("<HH", data[6:10])
    except (struct.error, IndexError):  # a header cut short: the decoder refuses it
        pass
    return None, None


def _jpeg_segments(data: bytes) -> tuple[tuple[int, int] | None, int | None]:
    """``((width, height) or None, offset of the first scan's data or None)``, walking a JPEG's segments
    (an EXIF thumbnail inside APP1 is skipped with its segment)."""
    position, size = 2, None
    while position + 4 <= len(data):
        if data[position] != 0xFF:  # stray bytes between segments: skipped, as libjpeg does (with a warning)
            position = data.find(b"\xff", position)
            if position < 0:
                return size, None
            continue
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            position += 2
            continue
        length = struct.unpack(">H", data[position + 2:position + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and size is None:  # SOFn
            if position + 9 > len(data):
                return size, None
            height, width = struct.unpack(">HH", data[position + 5:position + 9])
            size = (width, height)
        if marker == 0xDA:  # start of scan: compressed image data follows its header
            return size, position + 2 + length
        position += 2 + length
    return size, None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        return (int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1)
    if chunk == b"VP8L" and data[20:21] == b"\x2f":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """Width and height (tags 256, 257) of a TIFF's first image."""
    order = "<" if data[:2] == b"II" else ">"
    offset = struct.unpack(order + "I", data[4:8])[0]
    count = struct.unpack(order + "H", data[offset:offset + 2])[0]
    found = {}
    for i in range(count):
        entry = data[offset + 2 + 12 * i:offset + 14 + 12 * i]
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257):
            found[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), entry[8:10 if kind == 3 else 12])[0]
    return (found[256], found[257]) if len(found) == 2 else None


def as_rgb(image) -> np.ndarray:
    """``image`` as RGB ``uint8 [H, W, 3]``: a path is read with ``read_image``; a ``uint8`` array may be gray
    ``[H, W]`` / ``[H, W, 1]`` or RGBA ``[H, W, 4]`` (converted). ``ImageError`` for anything else (floats, other
    dtypes or shapes, fewer than ``MIN_SIDE`` pixels a side), saying what to pass. Channel order cannot be
    checked: an array from ``cv2.imread`` is BGR and must be converted (``cv2.cvtColor(a, cv2.COLOR_BGR2RGB)``)
    or, simpler, passed as its path."""
    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    if not isinstance(image, np.ndarray):
        raise ImageError(f"an image must be a file path or a numpy array (RGB uint8 [H, W, 3]), not "
                         f"{type(image).__name__}")
    if image.dtype != np.uint8:
        hint = ("" if image.dtype.kind != "f" or not image.size
                else " (floats 0..1: (image * 255).round().astype(np.uint8))" if image.max() <= 1
                else " (floats 0..255: image.round().astype(np.uint8))")
        raise ImageError(f"an image array must be uint8 (0..255), not {image.dtype}; convert it{hint}")
    channels = 1 if image.ndim == 2 else image.shape[2] if image.ndim == 3 else None
    if channels not in (1, 3, 4):
        raise ImageError(f"an image array must be [H, W, 3] (RGB), [H, W] (gray) or [H, W, 4] (RGBA), not "
                         f"shape {list(image.shape)}")
    if min(image.shape[:2]) < MIN_SIDE:
        raise ImageError(f"an image of {image.shape[1]}x{image.shape[0]} pixels is too small; faces need at least "
                         f"{MIN_SIDE} pixels per side")
    if channels == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(image, cv2.COLOR_RGBA2RGB) if channels == 4 else image


def image_files(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder`` (by suffix), sorted."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def other_files(folder: str | Path) -> list[Path]:
    """Files directly inside ``folder`` that are not images by their suffix (hidden files left out), sorted."""
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in IMAGE_SUFFIXES)
