import io

import cv2
import numpy as np
import pytest
from PIL import Image

from ferlib.data.preprocess import (
    crop_with_margin,
    decode_image,
    preprocess_face,
    to_bgr_uint8,
    to_grayscale,
    to_model_batch,
)


def encode_with_pillow(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "image",
    [
        np.full((48, 48), 100, np.uint8),
        np.full((96, 64, 3), 100, np.uint8),
        np.full((30, 30, 4), 100, np.uint8),
        np.full((200, 300), 100 * 257, np.uint16),
        np.full((48, 48, 1), 100 / 255, np.float32),
    ],
    ids=["gray", "bgr", "bgra", "uint16", "float"],
)
def test_preprocess_face_makes_48x48_uint8_whatever_the_input(image):
    face = preprocess_face(image)
    assert face.shape == (48, 48)
    assert face.dtype == np.uint8
    assert abs(int(face.mean()) - 100) <= 1


def test_bgr_is_converted_with_luminance_weights():
    blue = np.zeros((10, 10, 3), np.uint8)
    blue[..., 0] = 255
    assert to_grayscale(blue)[0, 0] == 29  # 0.114 * 255


def test_decode_handles_cmyk_jpeg_and_16bit_png():
    cmyk = encode_with_pillow(Image.new("CMYK", (60, 40), (0, 0, 0, 0)), "JPEG")
    assert preprocess_face(decode_image(cmyk)).mean() > 240  # no ink is white
    sixteen = np.full((20, 20), 65535, np.uint16)
    ok, png = cv2.imencode(".png", sixteen)
    assert ok
    decoded = decode_image(png.tobytes())
    assert decoded.dtype == np.uint16
    assert preprocess_face(decoded).min() == 255


def test_decode_honours_exif_orientation():
    wide = Image.new("L", (80, 40), 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    data = encode_with_pillow(wide, "JPEG", exif=exif)
    assert decode_image(data).shape[:2] == (80, 40)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "^Expected image bytes; received an empty file"),
        (b"not an image at all", "^Expected a decodable image .*; received undecodable bytes"),
        (b"\xff\xd8\xff\xe0 truncated jpeg", "^Expected a decodable image .*; received undecodable bytes"),
    ],
)
def test_decode_rejects_bad_bytes_with_a_clear_message(data, message):
    with pytest.raises(ValueError, match=message):
        decode_image(data)


def test_model_batch_shape_and_type():
    batch = to_model_batch([np.zeros((48, 48), np.uint8)] * 3)
    assert batch.shape == (3, 48, 48, 1)
    assert batch.dtype == np.float32


def test_crop_with_margin_is_clipped_to_the_image():
    image = np.arange(100 * 100, dtype=np.uint32).reshape(100, 100)
    assert crop_with_margin(image, (10, 10, 20, 20), margin=0.5).shape == (40, 40)
    assert crop_with_margin(image, (90, 90, 20, 20), margin=0.0).shape == (10, 10)
    with pytest.raises(ValueError, match="Expected a box"):
        crop_with_margin(image, (200, 200, 10, 10))


def test_decode_refuses_an_image_over_the_pixel_limit_from_its_header(monkeypatch):
    """A few MB of PNG can claim 30000x30000 pixels: refused before OpenCV allocates gigabytes."""
    from ferlib.data import preprocess

    monkeypatch.setattr(preprocess, "MAX_IMAGE_PIXELS", 1_000_000)
    ok, png = cv2.imencode(".png", np.zeros((1000, 1001), np.uint8))
    assert ok
    expected = r"^Expected an image of at most 1 megapixels; received 1001x1000 \(1 megapixels\)$"
    with pytest.raises(ValueError, match=expected):
        decode_image(png.tobytes())
    ok, png = cv2.imencode(".png", np.zeros((1000, 1000), np.uint8))
    assert decode_image(png.tobytes()).shape == (1000, 1000)


def test_bomb_headers_are_refused_before_decoding():
    """Headers alone (no pixel data): a PNG (parsed by ferlib) and a BMP (by Pillow, over its own bomb limit)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    with pytest.raises(ValueError, match=r"^Expected an image of at most 150 megapixels; received 20000x20000 \("):
        decode_image(png)
    info = struct.pack("<IiiHHIIiiII", 40, 20000, 20000, 1, 24, 0, 0, 2835, 2835, 0, 0)
    bmp = b"BM" + struct.pack("<IHHI", 54 + 3, 0, 0, 54) + info + b"\x00\x00\x00"
    with pytest.raises(ValueError, match=r"^Expected an image of at most 150 megapixels; received 400,000,000 pixels"):
        decode_image(bmp)


def test_header_sizes_match_pillow_for_every_format():
    from ferlib.data.image_header import header_size

    exif = Image.Exif()
    exif[0x0112] = 6
    formats = [("PNG", {}), ("JPEG", {}), ("JPEG", {"progressive": True}), ("JPEG", {"exif": exif})]
    formats += [("WEBP", {}), ("BMP", {}), ("TIFF", {})]
    samples = [encode_with_pillow(Image.new("RGB", (37, 23)), fmt, **options) for fmt, options in formats]
    assert [header_size(data) for data in samples] == [(37, 23)] * len(samples)
    assert header_size(b"not an image") is None


@pytest.mark.parametrize(
    "image",
    [np.full((30, 40, 3), 65535, np.uint16), np.full((30, 40, 4), 255, np.uint8), np.full((30, 40), 1.0, np.float32)],
    ids=["bgr16", "bgra", "gray-float"],
)
def test_to_bgr_uint8_makes_a_white_8bit_canvas(image):
    canvas = to_bgr_uint8(image)
    assert canvas.shape == (30, 40, 3) and canvas.dtype == np.uint8 and canvas.min() == 255
    assert canvas is not image
