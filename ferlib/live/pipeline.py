"""The composed pipeline: detect -> crop -> preprocess -> classify (batched) -> annotate.

Returns plain dataclasses so the CLI, the dashboard and the live video all read the same results.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ferlib.classes import EMOTIONS
from ferlib.data.preprocess import crop_with_margin, preprocess_face, to_bgr_uint8, to_grayscale
from ferlib.live.detection import FaceBox
from ferlib.live.overlay import draw_face, draw_note


@dataclass
class FacePrediction:
    """One face: its box (x, y, width, height), top label, confidence and all class probabilities."""

    box: tuple[int, int, int, int]
    label: str
    confidence: float
    probabilities: dict[str, float]
    face_id: int | None = None

    def probability_vector(self) -> np.ndarray:
        """The probabilities in the model's class order."""
        return np.array(list(self.probabilities.values()), dtype=np.float32)


@dataclass
class FrameAnalysis:
    """All faces found in one image, with per-stage timings in milliseconds."""

    faces: list[FacePrediction]
    width: int
    height: int
    timings_ms: dict[str, float] = field(default_factory=dict)


def predictions_from_probabilities(
    boxes: list[FaceBox], probabilities: np.ndarray, class_names: tuple[str, ...] = EMOTIONS
) -> list[FacePrediction]:
    faces = []
    for box, row in zip(boxes, probabilities, strict=True):
        best = int(np.argmax(row))
        faces.append(
            FacePrediction(
                box=box.as_tuple(),
                label=class_names[best],
                confidence=float(row[best]),
                probabilities={name: float(row[i]) for i, name in enumerate(class_names)},
            )
        )
    return faces


def detect_faces(
    detector: Callable[[np.ndarray], list[FaceBox]], image: np.ndarray, gray: np.ndarray | None = None
) -> list[FaceBox]:
    """The detector's boxes for `image`: it searches the gray image, or the image itself when it `needs_color`."""
    if getattr(detector, "needs_color", False):
        return detector(image)
    return detector(to_grayscale(image) if gray is None else gray)


def crop_face(gray: np.ndarray, box: FaceBox, margin: float = 0.0) -> np.ndarray:
    """One detected face as the model reads it: the box (grown by `margin`) cut from the gray image, preprocessed."""
    return preprocess_face(crop_with_margin(gray, box.as_tuple(), margin))


class EmotionPipeline:
    """Detects every face in a BGR (or gray) image and classifies all of them in one batch."""

    def __init__(
        self,
        detector: Callable[[np.ndarray], list[FaceBox]],
        classifier: Callable[[np.ndarray], np.ndarray],
        margin: float = 0.0,
    ) -> None:
        self.detector = detector
        self.classifier = classifier
        self.margin = margin

    def analyze(self, image: np.ndarray) -> FrameAnalysis:
        started = time.perf_counter()
        gray = to_grayscale(image)
        boxes = detect_faces(self.detector, image, gray)
        detected = time.perf_counter()
        faces: list[FacePrediction] = []
        if boxes:
            crops = np.stack([crop_face(gray, box, self.margin) for box in boxes])
            names = getattr(self.classifier, "class_names", EMOTIONS)
            faces = predictions_from_probabilities(boxes, self.classifier(crops), names)
        classified = time.perf_counter()
        timings = {"detection": 1000 * (detected - started), "classification": 1000 * (classified - detected)}
        return FrameAnalysis(faces=faces, width=int(image.shape[1]), height=int(image.shape[0]), timings_ms=timings)


def annotate(
    image: np.ndarray, analysis: FrameAnalysis, *, show_bars: bool = True, no_face_note: bool = True
) -> np.ndarray:
    """An 8-bit BGR copy of `image` (any depth) with every face's result drawn on it."""
    frame = to_bgr_uint8(image)
    for face in analysis.faces:
        draw_face(frame, face.box, face.label, face.confidence, face.probabilities, show_bars=show_bars)
    if not analysis.faces and no_face_note:
        draw_note(frame, "no face")
    return frame
