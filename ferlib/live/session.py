"""A live video stream's shared state: the analyzer the video thread runs and the results the page reads.

The video thread calls `LiveSession.process_frame` for each frame; the page thread reads `snapshot()` and calls
`configure()` or `reset()` when the user changes a control or starts the stream. A lock guards the results; the
analyzer's face tracks belong to the video thread alone, so changed settings and resets are queued under the
lock and applied by the video thread before its next frame. An error inside the analyzer is caught and reported
in the snapshot: an exception escaping the frame callback would end streamlit-webrtc's worker and freeze the video.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ferlib.live.analyzer import LIVE_DETECTOR_OPTIONS, LiveAnalyzer, LiveFrameResult, LiveSettings, annotate_live
from ferlib.live.detection import make_detector
from ferlib.live.pipeline import FacePrediction
from ferlib.nets.classifier import make_classifier

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelVariant:
    """One runnable form of a model: a label for menus, its file and the classifier backend that runs it."""

    label: str
    path: Path
    backend: str


def model_variants(model_path: str | Path) -> list[ModelVariant]:
    """The existing forms of a model, fastest first: int8 TFLite, float TFLite, then the Keras file itself."""
    path = Path(model_path)
    stem = path.name.removesuffix(".keras")
    candidates = [
        ModelVariant(f"{stem} · TFLite int8 (fastest)", path.with_name(f"{stem}.int8.tflite"), "tflite"),
        ModelVariant(f"{stem} · TFLite float32", path.with_name(f"{stem}.tflite"), "tflite"),
        ModelVariant(f"{stem} · Keras", path, "keras"),
    ]
    return [variant for variant in candidates if variant.path.exists()]


def build_analyzer(
    detector_name: str,
    variant: ModelVariant,
    settings: LiveSettings,
    webcam: bool = True,
    classifier: Any = None,
    detector_options: dict[str, Any] | None = None,
) -> LiveAnalyzer:
    """A LiveAnalyzer with its own detector and face tracks around `classifier` (thread-safe, so the dashboard
    passes one shared by every session), or a new single-threaded classifier for the variant.

    `webcam` uses the faster detector options for large webcam faces (LIVE_DETECTOR_OPTIONS); video files and
    photos use the detector's defaults, which also find small faces; `detector_options` replaces either.
    """

    options = LIVE_DETECTOR_OPTIONS.get(detector_name, {}) if webcam else {}
    options = options if detector_options is None else detector_options
    if classifier is None:
        classifier = make_classifier(variant.path, backend=variant.backend, num_threads=1)
    return LiveAnalyzer(make_detector(detector_name, **options), classifier, settings)


@dataclass(frozen=True)
class TimelinePoint:
    """One face's smoothed emotion at one moment (seconds since the stream started)."""

    seconds: float
    face_id: int
    label: str
    confidence: float


@dataclass
class LiveSnapshot:
    """What the page shows beside the video: current faces, recent timeline, speed, the latest annotated frame."""

    faces: list[FacePrediction]
    timeline: list[TimelinePoint]
    frames: int
    fps: float
    ms_per_frame: float
    detection_interval: int
    seconds_since_update: float | None
    frame: np.ndarray | None
    error: str | None = None  # the analyzer's last error, until a frame succeeds again


class LiveSession:
    """Thread-safe holder of one stream's analyzer and results (one per browser session)."""

    def __init__(self, history_seconds: float = 60.0, timeline_every_seconds: float = 0.2) -> None:
        self.history_seconds = history_seconds
        self.timeline_every_seconds = timeline_every_seconds
        self._lock = threading.Lock()
        self._busy = threading.Lock()
        self._analyzer: LiveAnalyzer | None = None
        self._key: tuple[str, str, str] | None = None
        self._pending_settings: LiveSettings | None = None
        self._pending_reset = False
        self._generation = 0  # counts resets, so a frame in flight across one is not recorded
        self._error: str | None = None
        self._reset_results()

    def _reset_results(self) -> None:
        self._started: float | None = None
        self._last_update: float | None = None
        self._last_timeline = -1e9
        self._faces: list[FacePrediction] = []
        self._timeline: deque[TimelinePoint] = deque()
        self._frame_times: deque[float] = deque(maxlen=60)
        self._frames = 0
        self._last_result: LiveFrameResult | None = None
        self._last_frame: np.ndarray | None = None

    def configure(
        self, detector_name: str, variant: ModelVariant, settings: LiveSettings, classifier: Any = None
    ) -> None:
        """Use this detector, model and settings from the next frame on (builds a new analyzer only if needed).

        `classifier` (a shared, thread-safe one; see `build_analyzer`) is part of the key: a new object, such as a
        model reloaded after it was shipped again, gets a new analyzer. A new analyzer numbers faces from 1 again,
        so the results so far are cleared rather than merged with its faces.
        """
        key = (detector_name, str(variant.path), variant.backend, id(classifier))
        if key != self._key:
            analyzer = build_analyzer(detector_name, variant, settings, classifier=classifier)
            with self._lock:
                changed = self._analyzer is not None
                self._analyzer, self._key = analyzer, key
                self._pending_settings, self._pending_reset = None, False
                if changed:
                    self._start_new_results()
        else:
            with self._lock:
                self._pending_settings = settings

    def reset(self) -> None:
        """Forget results and face tracks (a new stream starts); the tracks go before the next frame."""
        with self._lock:
            self._start_new_results()
            self._pending_reset = True

    def _start_new_results(self) -> None:
        """Forget results and the last error; a frame still in flight belongs to the old ones. Hold the lock."""
        self._reset_results()
        self._error = None
        self._generation += 1

    def process_frame(self, image: np.ndarray) -> np.ndarray:
        """Analyse one video frame and return it annotated (BGR); the results are kept for `snapshot`.

        Never raises: on an error the frame goes back unannotated and the message waits in `snapshot().error`.
        """
        with self._lock:
            if self._analyzer is None:
                return annotate_live(image, [], LiveSettings())
        if not self._busy.acquire(blocking=False):
            return image  # only if two threads ever call at once: never queue stale frames
        generation = None
        try:
            with self._lock:  # taken only once this thread owns the analyzer, so no change is dropped
                analyzer, generation = self._analyzer, self._generation
                settings, self._pending_settings = self._pending_settings, None
                reset, self._pending_reset = self._pending_reset, False
            if settings is not None:
                analyzer.update_settings(settings)
            if reset:  # after the settings, so the new stream starts with the new detection interval
                analyzer.reset()
            annotated, result = analyzer.process(image)
        except Exception as error:  # whatever the analyzer raised, the video must keep playing
            self._report_error(error, generation)
            return image
        finally:
            self._busy.release()
        self._record(result, annotated, generation)
        return annotated

    def _report_error(self, error: Exception, generation: int | None) -> None:
        message = f"{type(error).__name__}: {error}"
        with self._lock:
            if generation is not None and generation != self._generation:
                return  # the failure of a frame from before a reset or model change: not the new stream's
            repeated, self._error = message == self._error, message
        if not repeated:  # a failure repeated on every frame is logged once
            LOGGER.error("live frame analysis failed", exc_info=error)

    def _record(self, result: LiveFrameResult, annotated: np.ndarray, generation: int) -> None:
        now = time.monotonic()
        with self._lock:
            if generation != self._generation:
                return  # a frame of the stream before a reset: it must not count in the new one
            if self._started is None:
                self._started = now
            self._frames += 1
            self._error = None
            self._frame_times.append(now)
            self._last_update = now
            self._faces = result.faces
            self._last_result = result
            self._last_frame = annotated
            seconds = now - self._started
            if result.faces and seconds - self._last_timeline >= self.timeline_every_seconds:
                self._last_timeline = seconds
                for face in result.faces:
                    self._timeline.append(TimelinePoint(seconds, int(face.face_id or 0), face.label, face.confidence))
            while self._timeline and self._timeline[0].seconds < seconds - self.history_seconds:
                self._timeline.popleft()

    def snapshot(self) -> LiveSnapshot:
        """A consistent copy of the latest results, for the page thread."""
        with self._lock:
            times = self._frame_times
            fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
            result = self._last_result
            return LiveSnapshot(
                faces=list(self._faces),
                timeline=list(self._timeline),
                frames=self._frames,
                fps=fps,
                ms_per_frame=result.timings_ms.get("total", 0.0) if result else 0.0,
                detection_interval=result.detection_interval if result else 0,
                seconds_since_update=time.monotonic() - self._last_update if self._last_update else None,
                frame=self._last_frame,
                error=self._error,
            )
