"""A live video stream's shared state: the analyzer, its own analysis thread, and the results the page reads.

The video callback calls `LiveSession.process_frame` for each camera frame. It never waits for the analysis: it
leaves the frame in a one-frame slot (replacing any frame not yet taken, so nothing queues up), draws the latest
known faces on the frame it was given and returns at once, so the returned video keeps the camera's rate however
busy the CPU is. The session's analysis thread takes the newest frame from the slot, detects, follows and classifies
its faces and records the results, which the page reads with `snapshot()`. The analyzer's face tracks belong to that
thread alone: settings changed and resets asked for by the page are kept under the lock and applied by the thread
before its next frame. An error inside the analyzer is reported in the snapshot and never reaches the video.
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
    """What the page shows beside the video: current faces, recent timeline, speeds, the latest annotated frame."""

    faces: list[FacePrediction]
    timeline: list[TimelinePoint]
    frames: int  # frames analysed
    fps: float  # frames analysed per second
    ms_per_frame: float  # the analysis of the latest frame
    detection_interval: int
    seconds_since_update: float | None  # since the latest analysis
    frame: np.ndarray | None  # the latest frame returned to the video, annotated
    error: str | None = None  # the analyzer's last error, until a frame succeeds again
    returned_fps: float = 0.0  # frames returned to the video per second (the camera's rate)
    callback_ms: float = 0.0  # time spent in the video callback per frame (drawing the latest faces)
    detection_side: int = 0  # the detector's image size now (it shrinks when the analysis falls behind)


IDLE_SECONDS = 5.0  # the analysis thread ends after this long without a frame (a new frame starts it again)


class LiveSession:
    """Thread-safe holder of one stream's analyzer, analysis thread and results (one per browser session)."""

    def __init__(self, history_seconds: float = 60.0, timeline_every_seconds: float = 0.2) -> None:
        self.history_seconds = history_seconds
        self.timeline_every_seconds = timeline_every_seconds
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # a frame arrived in the slot, or the slot was emptied
        self._analyzer: LiveAnalyzer | None = None
        self._key: tuple[str, str, str, int] | None = None
        self._overlay = LiveSettings()  # how the callback draws faces: the newest settings, at once
        self._pending_settings: LiveSettings | None = None
        self._pending_reset = False
        self._generation = 0  # counts resets, so a frame in flight across one is not recorded
        self._slot: np.ndarray | None = None  # the newest frame waiting for the analysis thread
        self._analysing = False
        self._thread: threading.Thread | None = None
        self._closed = False
        self._error: str | None = None
        self._reset_results()

    def _reset_results(self) -> None:
        self._started: float | None = None
        self._last_update: float | None = None
        self._last_timeline = -1e9
        self._faces: list[FacePrediction] = []
        self._timeline: deque[TimelinePoint] = deque()
        self._frame_times: deque[float] = deque(maxlen=60)
        self._returned_times: deque[float] = deque(maxlen=60)
        self._callback_ms: deque[float] = deque(maxlen=60)
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
                self._analyzer, self._key, self._overlay = analyzer, key, settings
                self._pending_settings, self._pending_reset = None, False
                if changed:
                    self._start_new_results()
                    self._slot = None
        else:
            with self._lock:
                self._pending_settings, self._overlay = settings, settings

    def reset(self) -> None:
        """Forget results and face tracks (a new stream starts); the tracks go before the next frame."""
        with self._lock:
            self._start_new_results()
            self._pending_reset = True
            self._slot = None  # a frame of the old stream must not become the new one's first

    def close(self) -> None:
        """End the analysis thread (it also ends by itself when no frame has come for IDLE_SECONDS)."""
        with self._lock:
            self._closed, self._slot = True, None
            self._wake.notify_all()

    def _start_new_results(self) -> None:
        """Forget results and the last error; a frame still in flight belongs to the old ones. Hold the lock."""
        self._reset_results()
        self._error = None
        self._generation += 1

    def process_frame(self, image: np.ndarray) -> np.ndarray:
        """Hand the frame to the analysis and return it annotated with the latest known faces (BGR). Never waits
        for the analysis and never raises: the video keeps the camera's rate."""
        started = time.perf_counter()
        with self._lock:
            if self._analyzer is None:
                return annotate_live(image, [], LiveSettings())
            self._slot, self._closed = image, False  # replaces a frame the analysis has not taken: no queue
            if self._thread is None:
                self._thread = threading.Thread(target=self._analyse_frames, name="live-analysis", daemon=True)
                self._thread.start()
            self._wake.notify_all()
            faces, overlay = self._faces, self._overlay
        try:
            annotated = annotate_live(image, faces, overlay)
        except Exception as error:  # drawing must not end the stream either
            self._report_error(error, None)
            return image
        now = time.monotonic()
        with self._lock:
            self._last_frame = annotated
            self._returned_times.append(now)
            self._callback_ms.append(1000 * (time.perf_counter() - started))
        return annotated

    def settle(self, timeout: float = 30.0) -> bool:
        """Wait until the frames handed over so far are analysed (for tests and one-off pictures); True if they were."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._slot is not None or self._analysing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wake.wait(remaining)
        return True

    def _analyse_frames(self) -> None:
        """The analysis thread: the newest frame of the slot, again and again, until the stream goes quiet."""
        while True:
            with self._lock:
                while self._slot is None and not self._closed:
                    if not self._wake.wait(IDLE_SECONDS) and self._slot is None:
                        self._closed = True
                if self._closed and self._slot is None:
                    self._thread = None
                    self._wake.notify_all()
                    return
                image, self._slot, self._analysing = self._slot, None, True
                analyzer, generation = self._analyzer, self._generation
                settings, self._pending_settings = self._pending_settings, None
                reset, self._pending_reset = self._pending_reset, False
            try:
                if settings is not None:
                    analyzer.update_settings(settings)
                if reset:  # after the settings, so the new stream starts with the new detection interval
                    analyzer.reset()
                result = analyzer.analyze(image)
                analyzer.adapt(result)
            except Exception as error:  # whatever the analyzer raised, the stream goes on
                self._report_error(error, generation)
            else:
                self._record(result, generation)
            with self._lock:
                self._analysing = False
                self._wake.notify_all()

    def _report_error(self, error: Exception, generation: int | None) -> None:
        message = f"{type(error).__name__}: {error}"
        with self._lock:
            if generation is not None and generation != self._generation:
                return  # the failure of a frame from before a reset or model change: not the new stream's
            repeated, self._error = message == self._error, message
        if not repeated:  # a failure repeated on every frame is logged once
            LOGGER.error("live frame analysis failed", exc_info=error)

    def _record(self, result: LiveFrameResult, generation: int) -> None:
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
            result = self._last_result
            return LiveSnapshot(
                faces=list(self._faces),
                timeline=list(self._timeline),
                frames=self._frames,
                fps=_rate(self._frame_times),
                ms_per_frame=result.timings_ms.get("total", 0.0) if result else 0.0,
                detection_interval=result.detection_interval if result else 0,
                seconds_since_update=time.monotonic() - self._last_update if self._last_update else None,
                frame=self._last_frame,
                error=self._error,
                returned_fps=_rate(self._returned_times),
                callback_ms=sum(self._callback_ms) / len(self._callback_ms) if self._callback_ms else 0.0,
                detection_side=result.detection_side if result else 0,
            )


def _rate(times: deque[float]) -> float:
    """Events per second over the times kept (the last 60)."""
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
