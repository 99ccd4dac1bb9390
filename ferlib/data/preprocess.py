"""Pure image functions shared by training, evaluation, the CLI and the live video.

`preprocess_face` is *the* preprocessing: any image (any size, gray/BGR/BGRA, 8/16-bit or float)
becomes a 48x48 uint8 grayscale face. Scaling to [0, 1] happens inside the model, so every
inference path (Keras, TFLite, the live pipeline) feeds the same uint8 pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from ferlib.data.image_header import header_size
from ferlib.errors import FerError

IMAGE_SIZE = 48

# Larger images are refused before decoding: a few MB of PNG can decode to gigabytes (a decompression bomb).
MAX_IMAGE_PIXELS = 150_000_000
# Photos to analyse are decoded at no more than this many pixels: a JPEG by the decoder itself (1/2, 1/4 or 1/8 of its
# side, never the whole image in memory); a format the decoder cannot reduce is refused above it. Faces in a
# 16-megapixel photo are still hundreds of pixels wide, far more than the 48 the model reads.
MAX_PHOTO_PIXELS = 16_000_000
# The largest side of an image meant for a screen (an annotated photo to show or download).
SCREEN_SIDE = 1920

# Keep EXIF orientation (unlike IMREAD_UNCHANGED) and keep 16-bit depth for proper scaling.
_DECODE_FLAGS = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH
_REDUCED_COLOR = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def decode_image(data: bytes, *, max_pixels: int | None = None) -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, BMP, TIFF, WebP...) to an OpenCV array (BGR or gray).

    With `max_pixels`, a larger JPEG is decoded at a half, quarter or eighth of its side (whichever first fits), and
    a larger image of another format is refused, so a huge photo never costs its full size in memory.
    """
    if not data:
        raise FerError("Expected image bytes; received an empty file")
    size = _check_pixel_count(data)
    buffer = np.frombuffer(data, dtype=np.uint8)
    flags = _DECODE_FLAGS
    if max_pixels is not None and size is not None and size[0] * size[1] > max_pixels:
        if not data.startswith(b"\xff\xd8"):
            width, height = size
            raise FerError(
                f"Expected a photo of at most {max_pixels // 1_000_000} megapixels (JPEG photos of any size are read "
                f"reduced); received {width}x{height} ({width * height / 1e6:.0f} megapixels)"
            )
        factor = next((f for f in (2, 4, 8) if size[0] * size[1] / f**2 <= max_pixels), 8)
        flags = _REDUCED_COLOR[factor]
    image = cv2.imdecode(buffer, flags)
    if image is None or image.size == 0:
        raise FerError("Expected a decodable image (JPEG, PNG, BMP, TIFF, WebP); received undecodable bytes")
    return image


def decode_photo(data: bytes) -> np.ndarray:
    """A photo to analyse: `decode_image` at no more than MAX_PHOTO_PIXELS."""
    return decode_image(data, max_pixels=MAX_PHOTO_PIXELS)


def _check_pixel_count(data: bytes) -> tuple[int, int] | None:
    """Refuse an image over MAX_IMAGE_PIXELS from its header alone, before any pixel is allocated; its size."""
    size = header_size(data)
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        width, height = size
        stated = f"{width}x{height} ({width * height / 1e6:.0f} megapixels)" if height > 1 else f"{width:,} pixels"
        raise FerError(f"Expected an image of at most {MAX_IMAGE_PIXELS // 1_000_000} megapixels; received {stated}")
    return size


def read_image(path: str) -> np.ndarray:
    """Read a photo file from disk with `decode_photo`'s rules."""
    with open(path, "rb") as handle:
        return decode_photo(handle.read())


def fit_within(image: np.ndarray, max_side: int = SCREEN_SIDE) -> np.ndarray:
    """The image shrunk (never enlarged) so that its longer side is at most `max_side`."""
    longest = max(image.shape[:2])
    if longest <= max_side:
        return image
    scale = max_side / longest
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Scale an 8-bit, 16-bit, float or boolean image to uint8 without changing its channels."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * 255
    if np.issubdtype(image.dtype, np.floating):
        finite = np.nan_to_num(image.astype(np.float32))
        scale = 255.0 if finite.size and float(finite.max()) <= 1.0 else 1.0
        return np.clip(finite * scale, 0, 255).astype(np.uint8)
    if np.issubdtype(image.dtype, np.integer):
        return np.clip(image, 0, 255).astype(np.uint8)
    raise FerError(f"Expected an image of integer, float or bool pixels; received dtype {image.dtype}")


def to_bgr_uint8(image: np.ndarray) -> np.ndarray:
    """A new 8-bit BGR copy of a gray, BGR or BGRA image of any depth: a canvas to draw results on and show."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 3:
        return to_uint8(image).copy()
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(to_uint8(image), cv2.COLOR_BGRA2BGR)
    return cv2.cvtColor(to_grayscale(image), cv2.COLOR_GRAY2BGR)


def to_grayscale(image: np.ndarray) -> np.ndarray:
    """Return a 2-D uint8 gray image from gray (H, W) / (H, W, 1), BGR (H, W, 3) or BGRA (H, W, 4)."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return to_uint8(image)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise FerError(f"Expected an image shaped (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); received {image.shape}")
    image = to_uint8(image)
    code = cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
    return cv2.cvtColor(image, code)


def preprocess_face(image: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """Turn any face image into the model's input: a (size, size) uint8 grayscale array."""
    gray = to_grayscale(image)
    if gray.shape[0] == 0 or gray.shape[1] == 0:
        raise FerError(f"Expected a non-empty image; received shape {gray.shape}")
    if gray.shape == (size, size):
        return np.ascontiguousarray(gray)
    shrinking = gray.shape[0] > size or gray.shape[1] > size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(gray, (size, size), interpolation=interpolation)


def to_model_batch(faces: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """Stack preprocessed (size, size) uint8 faces into the float32 (N, size, size, 1) model batch."""
    batch = np.asarray(faces)
    if batch.ndim == 2:
        batch = batch[None]
    if batch.ndim == 4 and batch.shape[-1] == 1:
        batch = batch[..., 0]
    if batch.ndim != 3:
        raise FerError(f"Expected faces shaped (N, H, W) or (H, W); received {batch.shape}")
    return batch.astype(np.float32)[..., None]


def crop_with_margin(image: np.ndarray, box: tuple[int, int, int, int], margin: float = 0.0) -> np.ndarray:
    """Crop box (x, y, width, height) grown by `margin` (fraction of the box) on each side, clipped to the image."""
    x, y, width, height = (int(v) for v in box)
    if width <= 0 or height <= 0:
        raise FerError(f"Expected a box with positive width and height; received {box}")
    grow_x, grow_y = round(width * margin), round(height * margin)
    left, top = max(0, x - grow_x), max(0, y - grow_y)
    right = min(image.shape[1], x + width + grow_x)
    bottom = min(image.shape[0], y + height + grow_y)
    if right <= left or bottom <= top:
        raise FerError(f"Expected a box overlapping the {image.shape[1]}x{image.shape[0]} image; received {box}")
    return image[top:bottom, left:right]
