"""Face detectors: small callables from a BGR or gray image to a list of face boxes."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ferlib.data.preprocess import to_grayscale, to_uint8
from ferlib.errors import FerError


@dataclass(frozen=True)
class FaceBox:
    """A face's box in image pixels (x, y = top-left corner) and the detector's confidence if it gives one."""

    x: int
    y: int
    width: int
    height: int
    score: float | None = None

    def as_tuple(self) -> tuple[int, int, int, int]:
        return self.x, self.y, self.width, self.height

    def scaled(self, factor: float) -> FaceBox:
        return FaceBox(
            round(self.x * factor),
            round(self.y * factor),
            round(self.width * factor),
            round(self.height * factor),
            self.score,
        )


def cascade_path(name: str = "haarcascade_frontalface_default.xml") -> Path:
    """The Haar cascade shipped inside opencv-python(-headless); fails clearly if it is missing (OpenCV 5)."""
    data = getattr(cv2, "data", None)
    path = Path(data.haarcascades) / name if data is not None else Path(name)
    if not path.exists():
        raise FerError(f"Expected OpenCV's bundled {name} (opencv-python-headless below 5); received no file at {path}")
    return path


class HaarFaceDetector:
    """OpenCV's Viola-Jones frontal-face cascade: fast on a CPU, good on frontal, well-lit faces.

    Large images are searched at `max_side` pixels and boxes scaled back, which keeps detection time
    bounded whatever the photo's size.
    """

    name = "haar"

    def __init__(
        self,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_face_fraction: float = 0.06,
        max_side: int | None = 640,
    ) -> None:
        if not hasattr(cv2, "CascadeClassifier"):
            raise FerError(
                "Expected OpenCV with CascadeClassifier (opencv-python-headless below 5); received one without"
            )
        self.cascade = cv2.CascadeClassifier(str(cascade_path()))
        if self.cascade.empty():
            raise FerError(f"Expected a loadable Haar cascade; received an unreadable {cascade_path()}")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_face_fraction = min_face_fraction
        self.max_side = max_side
        self._lock = threading.Lock()  # a CascadeClassifier keeps per-image state: one detection at a time

    def __call__(self, image: np.ndarray) -> list[FaceBox]:
        gray = to_grayscale(image)
        factor = 1.0
        if self.max_side and max(gray.shape) > self.max_side:
            factor = max(gray.shape) / self.max_side
            size = (max(1, round(gray.shape[1] / factor)), max(1, round(gray.shape[0] / factor)))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        minimum = max(24, round(min(gray.shape) * self.min_face_fraction))
        with self._lock:
            found = self.cascade.detectMultiScale(
                gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(minimum, minimum)
            )
        boxes = [FaceBox(int(x), int(y), int(w), int(h)) for x, y, w, h in (found if len(found) else [])]
        if factor != 1.0:
            boxes = [box.scaled(factor) for box in boxes]
        return sorted(boxes, key=lambda box: (box.x, box.y))


class WholeImageDetector:
    """Treats the whole image as one face: for images that are already face crops (like FER-2013's)."""

    name = "none"

    def __call__(self, image: np.ndarray) -> list[FaceBox]:
        return [FaceBox(0, 0, int(image.shape[1]), int(image.shape[0]))]


class MtcnnFaceDetector:
    """MTCNN (the `mtcnn` package, which ships its weights): slower than Haar, better on turned, tilted or dim faces.

    Runs all three stages (the landmark stage removes most false positives) on images bounded to `max_side`.
    """

    name = "mtcnn"
    needs_color = True

    def __init__(self, min_score: float = 0.9, min_face_fraction: float = 0.06, max_side: int | None = 640) -> None:
        try:
            from mtcnn import MTCNN
        except ImportError as error:
            raise FerError(f"Expected the `mtcnn` package (pip install mtcnn); received {error}") from error
        self.detector = MTCNN(stages="face_and_landmarks_detection", device="CPU:0")
        self.min_score = min_score
        self.min_face_fraction = min_face_fraction
        self.max_side = max_side

    def __call__(self, image: np.ndarray) -> list[FaceBox]:
        rgb = _to_rgb(image)
        factor = 1.0
        if self.max_side and max(rgb.shape[:2]) > self.max_side:
            factor = max(rgb.shape[:2]) / self.max_side
            size = (max(1, round(rgb.shape[1] / factor)), max(1, round(rgb.shape[0] / factor)))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        if min(rgb.shape[:2]) < 12:
            return []
        # Filtered by size afterwards: mtcnn 1.0's own min_face_size breaks its image pyramid for values above 20.
        minimum = max(20, round(min(rgb.shape[:2]) * self.min_face_fraction))
        boxes = []
        for face in self.detector.detect_faces(rgb):
            x, y, width, height = (round(float(value)) for value in face["box"])
            score = float(face["confidence"])
            if score >= self.min_score and min(width, height) >= minimum:
                boxes.append(FaceBox(max(0, x), max(0, y), width, height, score))
        if factor != 1.0:
            boxes = [box.scaled(factor) for box in boxes]
        return sorted(boxes, key=lambda box: (box.x, box.y))


def _to_rgb(image: np.ndarray) -> np.ndarray:
    """An RGB uint8 copy of a gray, BGR or BGRA image (MTCNN's input)."""
    image = np.asarray(image)
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(to_grayscale(image), cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        code = cv2.COLOR_BGR2RGB if image.shape[2] == 3 else cv2.COLOR_BGRA2RGB
        return cv2.cvtColor(to_uint8(image), code)
    raise FerError(f"Expected an image shaped (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); received {image.shape}")


DETECTORS = {"haar": HaarFaceDetector, "mtcnn": MtcnnFaceDetector, "none": WholeImageDetector}


def make_detector(name: str = "haar", **options):
    """A detector by name (see DETECTORS), with its constructor's options (e.g. min_face_fraction)."""
    if name not in DETECTORS:
        raise FerError(f"Expected a detector among {', '.join(DETECTORS)}; received {name!r}")
    return DETECTORS[name](**options)
