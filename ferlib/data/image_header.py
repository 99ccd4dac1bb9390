"""An encoded image's width and height read from its header, without decoding a pixel.

Used to refuse decompression bombs (a few kilobytes of PNG can claim gigapixels) before OpenCV allocates the
image. PNG and JPEG, the dataset formats, are parsed here in microseconds; other formats go through Pillow.
"""

from __future__ import annotations

import io
import struct
import warnings

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers carry the size; C4 (Huffman tables), C8 (reserved) and CC (arithmetic) do not.
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_MARKERS_WITHOUT_LENGTH = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as the file's header states it, or None when no reader knows the format."""
    if data.startswith(_PNG_SIGNATURE) and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data.startswith(b"\xff\xd8"):
        size = _jpeg_size(data)
        if size is not None:
            return size
    return _pillow_size(data)


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in _JPEG_MARKERS_WITHOUT_LENGTH:
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if marker in _JPEG_FRAME_MARKERS:
            if position + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return int(width), int(height)
        if marker == 0xDA or length < 2:  # image data starts (no frame header seen) or a broken segment
            return None
        position += 2 + length
    return None


def _pillow_size(data: bytes) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                return image.size
    except Image.DecompressionBombError as error:  # over twice Pillow's own limit: its size is in the message
        numbers = [int(word) for word in str(error).replace("(", " ").split() if word.isdigit()]
        return (numbers[0], 1) if numbers else (2**31, 1)
    except Exception:  # a format Pillow cannot read: OpenCV decides, and refuses what it cannot decode
        return None
