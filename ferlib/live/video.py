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
from ferlib.live.analyzer import LiveAnalyzer

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".y4m", ".mpg", ".mpeg", ".wmv", ".flv", ".ogv", ".3gp", ".ts"}
)
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


def read_video_frames(path: str | os.PathLike) -> Iterator[tuple[int, float, np.ndarray]]:
    """(frame index, time in seconds, upright BGR frame) for every frame of a clip."""
    import av

    with _open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or stream.guessed_rate or 0) or 30.0
        try:
            for index, frame in enumerate(container.decode(stream)):
                seconds = float(frame.time) if frame.time is not None else index / rate
                yield index, seconds, upright(frame.to_ndarray(format="bgr24"), getattr(frame, "rotation", 0))
        except av.FFmpegError as error:
            raise FerError(f"Expected a decodable video; received {str(path)!r} ({error})") from error


class VideoWriter:
    """Writes BGR frames to a video file (H.264 when available); odd frame sizes are cropped to even ones."""

    def __init__(self, path: str | os.PathLike, fps: float, width: int, height: int) -> None:
        import av

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.width, self.height = max(2, width - width % 2), max(2, height - height % 2)
        self.container = av.open(str(self.path), "w")
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
        row.update({name: round(self.probabilities[name], 4) for name in EMOTIONS})
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
    say). Faces keep their ids across frames, so a CSV row's face_id follows one person.
    """
    info = video_info(path)
    analyzer.reset()
    records: list[FaceRecord] = []
    face_ids: set[int] = set()
    writer: VideoWriter | None = None
    frames = 0
    size = (info.width, info.height)  # replaced by the first upright frame's size (a rotated clip swaps them)
    started = time.perf_counter()
    try:
        for index, seconds, frame in read_video_frames(path):
            if frames == 0:
                size = (int(frame.shape[1]), int(frame.shape[0]))
            annotated, result = analyzer.process(frame)
            for face in result.faces:
                face_id = int(face.face_id or 0)
                face_ids.add(face_id)
                records.append(
                    FaceRecord(index, seconds, face_id, face.box, face.label, face.confidence, face.probabilities)
                )
            if video_out is not None:
                if writer is None:
                    writer = VideoWriter(video_out, info.fps, annotated.shape[1], annotated.shape[0])
                writer.write(annotated)
            frames += 1
            if progress is not None:
                progress(frames, max(info.frame_count, frames))
    finally:
        if writer is not None:
            writer.close()
    elapsed = time.perf_counter() - started
    if frames == 0:
        raise FerError(f"Expected a video with at least one frame; received {str(path)!r} with none")
    return VideoAnalysis(
        records=records,
        frames=frames,
        width=size[0],
        height=size[1],
        video_fps=info.fps,
        processing_seconds=elapsed,
        video_out=Path(video_out) if writer is not None else None,
        face_ids=sorted(face_ids),
    )


def write_records_csv(records: list[FaceRecord], handle: IO[str]) -> None:
    """The CSV: a header, then one row per face per frame (columns CSV_COLUMNS)."""
    writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow(record.as_row())
