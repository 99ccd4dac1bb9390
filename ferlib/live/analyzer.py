"""The live video pipeline: frame -> detect or follow faces -> batched classification -> per-face smoothing -> overlay.

Detection is the expensive step, so it runs on a downscaled copy of the frame and, when processing falls behind the
frame rate, only every few frames; faces are followed by template matching in between. Every frame's faces are
classified in one batch, and each face's probabilities are averaged over its last few frames (see `tracking`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from ferlib.classes import EMOTIONS
from ferlib.data.preprocess import crop_with_margin, preprocess_face, to_bgr_uint8, to_grayscale, to_uint8
from ferlib.errors import FerError
from ferlib.live.detection import FaceBox
from ferlib.live.overlay import draw_face, draw_note
from ferlib.live.pipeline import FacePrediction
from ferlib.live.tracking import FaceTracker, Track, follow_template

OVERLAY_STYLES: dict[str, str] = {
    "full": "box, label and probability bars",
    "label": "box and label",
    "box": "box only",
}
UNCERTAIN_COLOR_BGR = (150, 150, 150)
MIN_DETECTION_SIDE = 160  # the smallest image `adapt` lets the detector search (faces still ~20 px at 12% height)
# Detector options for webcam video: faces at least 12% of the frame's height, a coarser scale pyramid. About 4x
# cheaper than the photo defaults, and webcam faces are large.
LIVE_DETECTOR_OPTIONS: dict[str, dict[str, float]] = {
    "haar": {"scale_factor": 1.15, "min_face_fraction": 0.12},
    "mtcnn": {"min_face_fraction": 0.12},
}


@dataclass(frozen=True)
class LiveSettings:
    """How the live pipeline trades accuracy for speed, and how it draws."""

    confidence_threshold: float = 0.0  # faces below it are drawn grey with a "?" instead of the emotion's colour
    smoothing_window: int = 5  # frames averaged per face; 1 = no smoothing
    overlay_style: str = "full"  # a key of OVERLAY_STYLES
    detection_interval: int = 1  # run the detector at least every N frames
    max_detection_interval: int = 8  # how far `adaptive` may stretch the interval
    detection_max_side: int = 320  # the detector sees the frame downscaled to this longest side
    min_hits: int = 2  # detections in a row before a new face is shown (drops one-off false detections)
    target_fps: float = 30.0  # the frame rate whose budget `adaptive` keeps processing within
    adaptive: bool = True  # detect less often when processing falls behind `target_fps`
    margin: float = 0.0  # crop margin around each face, as a fraction of its box

    def __post_init__(self) -> None:
        if self.overlay_style not in OVERLAY_STYLES:
            raise FerError(
                f"Expected an overlay style among {', '.join(OVERLAY_STYLES)}; received {self.overlay_style!r}"
            )
        if not 0.0 <= self.confidence_threshold <= 1.0:
            raise FerError(f"Expected a confidence threshold in [0, 1]; received {self.confidence_threshold}")
        if self.smoothing_window < 1:
            raise FerError(f"Expected a smoothing window of at least 1 frame; received {self.smoothing_window}")
        if not 1 <= self.detection_interval <= self.max_detection_interval:
            raise FerError(
                f"Expected 1 <= detection_interval <= max_detection_interval; received "
                f"{self.detection_interval} and {self.max_detection_interval}"
            )
        if self.detection_max_side < 32:
            raise FerError(f"Expected detection_max_side of at least 32 pixels; received {self.detection_max_side}")
        if self.min_hits < 1:
            raise FerError(f"Expected min_hits of at least 1; received {self.min_hits}")
        if self.target_fps <= 0:
            raise FerError(f"Expected a positive target_fps; received {self.target_fps}")

    def updated(self, **changes) -> LiveSettings:
        return replace(self, **changes)


@dataclass
class LiveFrameResult:
    """One processed frame: its smoothed faces (with stable ids), whether the detector ran, and timings in ms.

    `tentative` holds faces detected but not yet confirmed (`min_hits`): not shown, but a video file's analysis
    keeps them until their face is confirmed, so its first frames get their rows too.
    """

    frame_index: int
    faces: list[FacePrediction]
    width: int
    height: int
    detected: bool
    detection_interval: int
    timings_ms: dict[str, float] = field(default_factory=dict)
    tentative: list[FacePrediction] = field(default_factory=list)
    detection_side: int = 0  # the longest side of the image the detector searched


class LiveAnalyzer:
    """Stateful per video stream: keeps the face tracks and the adaptive detection interval between frames."""

    def __init__(
        self,
        detector: Callable[[np.ndarray], list[FaceBox]],
        classifier: Callable[[np.ndarray], np.ndarray],
        settings: LiveSettings | None = None,
    ) -> None:
        self.detector = detector
        self.classifier = classifier
        self.settings = settings or LiveSettings()
        self.tracker = FaceTracker(window=self.settings.smoothing_window, min_hits=self.settings.min_hits)
        self.frame_index = 0
        self.frames_since_detection = 0
        self.detection_interval = self.settings.detection_interval
        self.detection_side = self.settings.detection_max_side  # shrinks while the analysis falls behind
        self.average_ms: float | None = None
        self.face_lost = False  # a confirmed face was not found by following it: detect on the next frame

    def update_settings(self, settings: LiveSettings) -> None:
        """Apply new settings without losing the face tracks."""
        self.settings = settings
        self.tracker.set_window(settings.smoothing_window)
        self.tracker.min_hits = settings.min_hits
        self.detection_interval = min(
            max(self.detection_interval, settings.detection_interval), settings.max_detection_interval
        )
        self.detection_side = min(self.detection_side, settings.detection_max_side)
        if not settings.adaptive:
            self.detection_interval = settings.detection_interval
            self.detection_side = settings.detection_max_side

    def reset(self) -> None:
        self.tracker.reset()
        self.frame_index = 0
        self.frames_since_detection = 0
        self.detection_interval = self.settings.detection_interval
        self.detection_side = self.settings.detection_max_side
        self.average_ms = None
        self.face_lost = False

    def analyze(self, image: np.ndarray) -> LiveFrameResult:
        """Find, follow and classify the faces of one frame (BGR, BGRA or gray, any size)."""
        started = time.perf_counter()
        gray = to_grayscale(image)
        # Detect on schedule, and also right after a face was lost or while a new one waits to be confirmed (so it
        # is confirmed within `min_hits` frames, not `min_hits` detection intervals).
        due = self.frames_since_detection + 1 >= self.detection_interval
        detect_now = self.frame_index == 0 or due or self.face_lost or bool(self.tracker.tentative())
        tentative: list[Track] = []
        if detect_now:
            tracks = self._detect(image, gray)
            tentative = self.tracker.tentative()
            self.frames_since_detection = 0
        else:
            confirmed = self.tracker.confirmed()
            tracks = self._follow(gray, confirmed)
            self.face_lost = len(tracks) < len([track for track in confirmed if track.template is not None])
            self.frames_since_detection += 1
        located = time.perf_counter()
        faces = self._classify(gray, tracks)
        waiting = self._classify(gray, tentative)
        classified = time.perf_counter()
        timings = {"detection": 1000 * (located - started), "classification": 1000 * (classified - located)}
        timings["total"] = timings["detection"] + timings["classification"]
        result = LiveFrameResult(
            frame_index=self.frame_index,
            faces=faces,
            width=int(gray.shape[1]),
            height=int(gray.shape[0]),
            detected=detect_now,
            detection_interval=self.detection_interval,
            timings_ms=timings,
            tentative=waiting,
            detection_side=self.detection_side,
        )
        self.frame_index += 1
        return result

    def process(self, image: np.ndarray) -> tuple[np.ndarray, LiveFrameResult]:
        """`analyze` then draw: the annotated BGR frame and the result (its timings include the overlay)."""
        result = self.analyze(image)
        started = time.perf_counter()
        annotated = annotate_live(image, result.faces, self.settings)
        result.timings_ms["overlay"] = 1000 * (time.perf_counter() - started)
        result.timings_ms["total"] += result.timings_ms["overlay"]
        self.adapt(result)
        return annotated, result

    def _detect(self, image: np.ndarray, gray: np.ndarray) -> list[Track]:
        source = image if getattr(self.detector, "needs_color", False) else gray
        factor = max(source.shape[:2]) / self.detection_side
        if factor > 1:
            size = (max(1, round(source.shape[1] / factor)), max(1, round(source.shape[0] / factor)))
            source = cv2.resize(to_uint8(source), size, interpolation=cv2.INTER_AREA)
        boxes = [box.scaled(factor) if factor > 1 else box for box in self.detector(source)]
        boxes = [clip_box(box.as_tuple(), gray.shape) for box in boxes]
        matched = self.tracker.update([box for box in boxes if box is not None])
        self.tracker.remember_templates(gray, matched)
        unmatched = [track for track in self.tracker.confirmed() if track.missed > 0]
        followed = self._follow(gray, unmatched)
        self.face_lost = len(followed) < len(unmatched)
        return sorted(matched + followed, key=lambda track: track.face_id)

    def _follow(self, gray: np.ndarray, tracks: list[Track]) -> list[Track]:
        """Tracks whose face template is found again in this frame (moved there); the others are hidden."""
        followed = []
        for track in tracks:
            if track.template is None:
                continue
            box, score = follow_template(gray, track.box, track.template)
            if score >= 0.6:
                track.box = box
                followed.append(track)
        return sorted(followed, key=lambda track: track.face_id)

    def _classify(self, gray: np.ndarray, tracks: list[Track]) -> list[FacePrediction]:
        crops, kept = [], []
        for track in tracks:
            box = clip_box(track.box, gray.shape)
            if box is None:
                continue
            crops.append(preprocess_face(crop_with_margin(gray, box, self.settings.margin)))
            kept.append((track, box))
        if not crops:
            return []
        probabilities = self.classifier(np.stack(crops))
        names = getattr(self.classifier, "class_names", EMOTIONS)
        faces = []
        for (track, box), row in zip(kept, probabilities, strict=True):
            track.add_probabilities(row)
            smoothed = track.smoothed()
            best = int(np.argmax(smoothed))
            faces.append(
                FacePrediction(
                    box=box,
                    label=names[best],
                    confidence=float(smoothed[best]),
                    probabilities={name: float(smoothed[index]) for index, name in enumerate(names)},
                    face_id=track.face_id,
                )
            )
        return faces

    def adapt(self, result: LiveFrameResult) -> None:
        """While the average frame costs more than the frame budget, detect less often, then on a smaller image;
        undo both, in reverse, once it costs less than half the budget."""
        total = result.timings_ms["total"]
        self.average_ms = total if self.average_ms is None else 0.8 * self.average_ms + 0.2 * total
        if not self.settings.adaptive or not result.detected:
            return
        budget = 1000 / self.settings.target_fps
        if self.average_ms > budget:
            if self.detection_interval < self.settings.max_detection_interval:
                self.detection_interval += 1
            elif self.detection_side > MIN_DETECTION_SIDE:
                self.detection_side = max(MIN_DETECTION_SIDE, round(self.detection_side * 0.8))
        elif self.average_ms < budget / 2:
            if self.detection_side < self.settings.detection_max_side:
                self.detection_side = min(self.settings.detection_max_side, round(self.detection_side / 0.8))
            elif self.detection_interval > self.settings.detection_interval:
                self.detection_interval -= 1


def clip_box(box: tuple[int, int, int, int], shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """The part of (x, y, width, height) inside an image of `shape`; None when less than 2x2 pixels remain."""
    x, y, width, height = box
    left, top = max(0, x), max(0, y)
    right, bottom = min(shape[1], x + width), min(shape[0], y + height)
    if right - left < 2 or bottom - top < 2:
        return None
    return left, top, right - left, bottom - top


def annotate_live(
    image: np.ndarray, faces: list[FacePrediction], settings: LiveSettings, no_face_note: bool = True
) -> np.ndarray:
    """A BGR copy of the frame with each face drawn in `settings.overlay_style`; a discreet note when none."""
    frame = to_bgr_uint8(image)
    style = settings.overlay_style
    for face in faces:
        uncertain = face.confidence < settings.confidence_threshold
        prefix = f"{face.face_id}: " if face.face_id is not None else ""
        draw_face(
            frame,
            face.box,
            face.label,
            face.confidence,
            face.probabilities,
            show_bars=style == "full",
            show_label=style != "box",
            color=UNCERTAIN_COLOR_BGR if uncertain else None,
            text=f"{prefix}{face.label}{'?' if uncertain else ''} {face.confidence:.0%}",
        )
    if not faces and no_face_note:
        draw_note(frame, "no face")
    return frame
