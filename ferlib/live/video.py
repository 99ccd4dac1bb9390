"""Video files: read frames, run the live pipeline over a whole clip, write the per-face CSV and an annotated video.

Decoding and encoding go through PyAV (FFmpeg), which streamlit-webrtc already needs. The annotated video is H.264
in MP4 (playable in browsers) when the FFmpeg build has libx264, MPEG-4 Part 2 otherwise.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import cv2
import numpy as np

from ferlib.classes import EMOTIONS
from ferlib.data.preprocess import to_grayscale
from ferlib.errors import FerError
from ferlib.live.analyzer import LiveAnalyzer, LiveSettings, annotate_live

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".y4m", ".mpg", ".mpeg", ".wmv", ".flv", ".ogv", ".3gp", ".ts"}
)
# The containers an annotated clip can be written to (H.264 or MPEG-4 Part 2; VP9 or VP8 for .webm).
VIDEO_OUTPUT_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm")
# How video files are analysed. The default, FAST: the detector on a 320-pixel copy every 5th frame (and on the next
# frame whenever a face is lost), faces followed by template matching in between; a face counts once detected 3 times.
# EVERY_FRAME (`--every-frame`): the detector on every frame at 640 pixels, for exhaustive analysis.
FAST = LiveSettings(adaptive=False, detection_interval=5, max_detection_interval=5, detection_max_side=320, min_hits=3)
EVERY_FRAME = LiveSettings(adaptive=False, detection_interval=1, detection_max_side=640, min_hits=3)
# The fast path's detector options: a coarser scale pyramid (1.2 instead of 1.1) halves a Haar detection's cost, and
# drops most one-off false faces; the smallest face it finds is still 24 of the 320 pixels.
FAST_DETECTOR_OPTIONS: dict[str, dict[str, float]] = {"haar": {"scale_factor": 1.2}}
VIDEO_STAGES = ("decode", "detection", "classification", "drawing", "encoding")
CSV_COLUMNS = ("frame", "time_s", "face_id", "x", "y", "width", "height", "label", "confidence", *EMOTIONS)


def is_video_path(path: str | os.PathLike) -> bool:
    """Whether a file is a video, by its extension (the container formats FFmpeg reads)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True)
class VideoInfo:
    """A clip's frame size as shown (after its display rotation), frame rate and (estimated; 0 when unknown) frame
    count."""

    width: int
    height: int
    fps: float
    frame_count: int


def video_info(path: str | os.PathLike) -> VideoInfo:
    import av

    with _open_video(path) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 0) or 30.0
        count = int(stream.frames or 0)
        if not count and stream.duration and stream.time_base:
            count = round(float(stream.duration * stream.time_base) * rate)
        if not count and container.duration:
            count = round(container.duration / av.time_base * rate)
        width, height = int(stream.codec_context.width), int(stream.codec_context.height)
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError:  # undecodable: read_video_frames reports it when the frames are read
            first = None
        if first is not None and round(getattr(first, "rotation", 0) / 90) % 2:
            width, height = height, width  # shown turned a quarter: a phone's portrait clip
        return VideoInfo(width, height, rate, count)


def _open_video(path: str | os.PathLike):
    import av

    if not Path(path).exists():
        raise FerError(f"Expected a video file; received {str(path)!r}, which does not exist")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as error:
        raise FerError(f"Expected a readable video file; received {str(path)!r} ({error})") from error
    if not container.streams.video:
        container.close()
        raise FerError(f"Expected a file with a video stream; received {str(path)!r} without one")
    return container


def upright(image: np.ndarray, rotation: int | float | None) -> np.ndarray:
    """The frame as it is meant to be shown: turned by its display rotation (degrees counterclockwise, as PyAV's
    `VideoFrame.rotation` gives it). Phones record portrait clips as landscape frames plus this rotation."""
    import cv2

    quarter_turns = round((rotation or 0) / 90) % 4
    if quarter_turns == 1:
        return cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    if quarter_turns == 2:
        return cv2.rotate(image, cv2.ROTATE_180)
    if quarter_turns == 3:
        return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    return image


def read_video_frames(
    path: str | os.PathLike, skipped: list[str] | None = None
) -> Iterator[tuple[int, float, np.ndarray]]:
    """(frame index, time in seconds, upright BGR frame) for every frame of a clip.

    A packet that does not decode (a damaged or truncated file) is skipped and its error appended to `skipped`;
    a clip none of whose packets decode raises FerError.
    """
    import av

    errors = skipped if skipped is not None else []
    with _open_video(path) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 0) or 30.0
        index = 0
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.FFmpegError as error:
                    errors.append(str(error))
                    continue
                for frame in frames:
                    seconds = float(frame.time) if frame.time is not None else index / rate
                    yield index, seconds, upright(frame.to_ndarray(format="bgr24"), getattr(frame, "rotation", 0))
                    index += 1
        except av.FFmpegError as error:  # the container itself stops making sense: keep what was read
            errors.append(str(error))
        if index == 0 and errors:
            raise FerError(f"Expected a decodable video; received {str(path)!r} ({errors[-1]})")


class VideoWriter:
    """Writes BGR frames to a video file (H.264 when available); odd frame sizes are cropped to even ones."""

    def __init__(self, path: str | os.PathLike, fps: float, width: int, height: int) -> None:
        import av

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.width, self.height = max(2, width - width % 2), max(2, height - height % 2)
        # MP4 and MOV with their index first: playable while downloading, and readable up to the cut when truncated.
        mp4 = self.path.suffix.lower() in (".mp4", ".m4v", ".mov")
        self.container = av.open(str(self.path), "w", options={"movflags": "faststart"} if mp4 else {})
        codecs = ("libvpx-vp9", "libvpx") if self.path.suffix.lower() == ".webm" else ("libx264", "mpeg4")
        codec = next((name for name in codecs if name in av.codecs_available), None)
        if codec is None:
            self.container.close()
            raise FerError(f"Expected an FFmpeg with one of {', '.join(codecs)}; received none")
        from fractions import Fraction

        self.stream = self.container.add_stream(codec, rate=Fraction(round(fps * 1000), 1000))
        self.stream.width, self.stream.height, self.stream.pix_fmt = self.width, self.height, "yuv420p"
        self.codec = codec

    def write(self, frame: np.ndarray) -> None:
        import av

        image = np.ascontiguousarray(frame[: self.height, : self.width])
        if image.shape[:2] != (self.height, self.width):
            image = cv2.resize(image, (self.width, self.height))
        for packet in self.stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exception) -> None:
        self.close()


def write_y4m(path: str | os.PathLike, frames: list[np.ndarray], fps: int = 30) -> Path:
    """Write BGR frames as an uncompressed YUV4MPEG2 (.y4m) clip: what Chromium's fake camera plays."""
    target = Path(path)
    if not frames:
        raise FerError("Expected at least one frame; received none")
    height, width = frames[0].shape[:2]
    if width % 2 or height % 2:
        raise FerError(f"Expected even frame sizes for 4:2:0 video; received {width}x{height}")
    with open(target, "wb") as handle:
        handle.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            if frame.shape[:2] != (height, width):
                raise FerError(
                    f"Expected every frame to be {width}x{height}; received {frame.shape[1]}x{frame.shape[0]}"
                )
            bgr = frame if frame.ndim == 3 else cv2.cvtColor(to_grayscale(frame), cv2.COLOR_GRAY2BGR)
            handle.write(b"FRAME\n")
            handle.write(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).tobytes())
    return target


@dataclass(frozen=True)
class FaceRecord:
    """One face in one frame of a clip, as one CSV row."""

    frame: int
    seconds: float
    face_id: int
    box: tuple[int, int, int, int]
    label: str
    confidence: float
    probabilities: dict[str, float]

    def as_row(self) -> dict[str, object]:
        x, y, width, height = self.box
        row: dict[str, object] = {
            "frame": self.frame,
            "time_s": round(self.seconds, 3),
            "face_id": self.face_id,
            "x": x,
            "y": y,
            "width": width,
            "height": height,
            "label": self.label,
            "confidence": round(self.confidence, 4),
        }
        row.update({name: round(probability, 4) for name, probability in self.probabilities.items()})
        return row


@dataclass
class VideoAnalysis:
    """A processed clip: one record per face per frame, counts and the processing speed."""

    records: list[FaceRecord]
    frames: int
    width: int
    height: int
    video_fps: float
    processing_seconds: float
    video_out: Path | None = None
    face_ids: list[int] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # seconds spent in each of VIDEO_STAGES
    stopped_early: str | None = None  # why fewer frames were read than the clip holds, when that happened

    @property
    def faces(self) -> int:
        """Distinct faces (track ids) seen in the clip."""
        return len(self.face_ids)

    @property
    def fps(self) -> float:
        """Frames processed per second of processing (decoding, analysis, drawing and encoding)."""
        return self.frames / self.processing_seconds if self.processing_seconds > 0 else 0.0

    def rows(self) -> list[dict[str, object]]:
        return [record.as_row() for record in self.records]


def analyze_video(
    path: str | os.PathLike,
    analyzer: LiveAnalyzer,
    *,
    video_out: str | os.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VideoAnalysis:
    """Run `analyzer` over every frame of a clip; optionally write the annotated clip to `video_out`.

    `progress(frames done, estimated total)` is called after each frame (total is 0 when the container does not
    say). Faces keep their ids across frames, so a CSV row's face_id follows one person. Frames are drawn on only
    when an annotated clip is written. A clip whose frames stop decoding part-way keeps the frames read so far and
    says where it stopped (`VideoAnalysis.stopped_early`).
    """
    info = video_info(path)
    analyzer.reset()
    records: list[FaceRecord] = []
    pending: dict[int, list[FaceRecord]] = {}  # rows of faces not yet confirmed, by face id
    face_ids: set[int] = set()
    writer: VideoWriter | None = None
    frames, stopped_early = 0, None
    timings = dict.fromkeys(VIDEO_STAGES, 0.0)
    size = (info.width, info.height)  # replaced by the first upright frame's size (a rotated clip swaps them)
    started = time.perf_counter()
    skipped: list[str] = []
    decoded = iter(read_video_frames(path, skipped))
    try:
        while True:
            before = time.perf_counter()
            try:
                index, seconds, frame = next(decoded)
            except StopIteration:
                break
            timings["decode"] += time.perf_counter() - before
            if frames == 0:
                size = (int(frame.shape[1]), int(frame.shape[0]))
            result = analyzer.analyze(frame)
            timings["detection"] += result.timings_ms["detection"] / 1000
            timings["classification"] += result.timings_ms["classification"] / 1000
            for face in result.faces:
                face_id = int(face.face_id or 0)
                face_ids.add(face_id)
                records.extend(pending.pop(face_id, []))  # its frames before it was confirmed
                records.append(
                    FaceRecord(index, seconds, face_id, face.box, face.label, face.confidence, face.probabilities)
                )
            waiting = {int(face.face_id or 0): face for face in result.tentative}
            pending = {face_id: rows for face_id, rows in pending.items() if face_id in waiting}  # dropped: gone
            for face_id, face in waiting.items():
                pending.setdefault(face_id, []).append(
                    FaceRecord(index, seconds, face_id, face.box, face.label, face.confidence, face.probabilities)
                )
            if video_out is not None:
                before = time.perf_counter()
                annotated = annotate_live(frame, result.faces, analyzer.settings)
                timings["drawing"] += time.perf_counter() - before
                before = time.perf_counter()
                if writer is None:
                    writer = VideoWriter(video_out, info.fps, annotated.shape[1], annotated.shape[0])
                writer.write(annotated)
                timings["encoding"] += time.perf_counter() - before
            frames += 1
            if progress is not None:
                progress(frames, max(info.frame_count, frames))
    finally:
        if writer is not None:
            writer.close()
    elapsed = time.perf_counter() - started
    if frames == 0:
        raise FerError(f"Expected a video with at least one frame; received {str(path)!r} with none")
    expected = info.frame_count
    if expected and frames < 0.9 * expected:
        stopped_early = f"the video ended after frame {frames} of the {expected} its container announces"
    if skipped:
        damaged = f"{len(skipped)} damaged part{'s' if len(skipped) > 1 else ''} skipped ({skipped[-1]})"
        stopped_early = f"{stopped_early}; {damaged}" if stopped_early else damaged
    return VideoAnalysis(
        records=sorted(records, key=lambda record: (record.frame, record.face_id)),
        frames=frames,
        width=size[0],
        height=size[1],
        video_fps=info.fps,
        processing_seconds=elapsed,
        video_out=Path(video_out) if writer is not None else None,
        face_ids=sorted(face_ids),
        stage_seconds=timings,
        stopped_early=stopped_early,
    )


def csv_columns(class_names: tuple[str, ...] = EMOTIONS) -> tuple[str, ...]:
    """The CSV's columns for a model of these classes (CSV_COLUMNS for FER-2013's seven)."""
    return (*CSV_COLUMNS[: -len(EMOTIONS)], *class_names)


def write_records_csv(records: list[FaceRecord], handle: IO[str], class_names: tuple[str, ...] | None = None) -> None:
    """The CSV: a header, then one row per face per frame, one probability column per class of the model."""
    names = class_names or (tuple(records[0].probabilities) if records else EMOTIONS)
    writer = csv.DictWriter(handle, fieldnames=csv_columns(names), lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow(record.as_row())
