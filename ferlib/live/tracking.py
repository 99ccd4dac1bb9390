"""Following faces across video frames: stable face ids, boxes carried between detections, smoothed probabilities.

Detections are matched to existing tracks by box overlap (IoU), then by centre distance for fast moves; a track
keeps its id while it is matched and is dropped after `max_missed` frames without a match. Each track averages the
last `window` probability vectors so a face's label does not flicker from one frame to the next.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from ferlib.errors import FerError

Box = tuple[int, int, int, int]


def box_iou(first: Box, second: Box) -> float:
    """Intersection over union of two (x, y, width, height) boxes; 0 when they do not overlap."""
    left, top = max(first[0], second[0]), max(first[1], second[1])
    right = min(first[0] + first[2], second[0] + second[2])
    bottom = min(first[1] + first[3], second[1] + second[3])
    intersection = max(0, right - left) * max(0, bottom - top)
    union = first[2] * first[3] + second[2] * second[3] - intersection
    return intersection / union if union > 0 else 0.0


def centre_distance(first: Box, second: Box) -> float:
    """Distance between box centres, in units of the larger box's size (so it does not depend on resolution)."""
    first_centre = (first[0] + first[2] / 2, first[1] + first[3] / 2)
    second_centre = (second[0] + second[2] / 2, second[1] + second[3] / 2)
    size = max(first[2], first[3], second[2], second[3], 1)
    return float(np.hypot(first_centre[0] - second_centre[0], first_centre[1] - second_centre[1]) / size)


@dataclass(eq=False)
class Track:
    """One face followed over frames: its id, latest box, recent probabilities and a template for tracking."""

    face_id: int
    box: Box
    window: int
    history: deque = field(default_factory=deque)
    missed: int = 0
    hits: int = 0
    template: np.ndarray | None = None

    def add_probabilities(self, probabilities: np.ndarray) -> None:
        self.history.append(np.asarray(probabilities, dtype=np.float32))
        while len(self.history) > self.window:
            self.history.popleft()

    def smoothed(self) -> np.ndarray | None:
        """The mean of the last `window` probability vectors, or None before the first classification."""
        if not self.history:
            return None
        return np.mean(np.stack(self.history), axis=0)


class FaceTracker:
    """Assigns stable ids to detected faces and keeps their recent probabilities."""

    def __init__(
        self,
        window: int = 5,
        max_missed: int = 2,
        min_hits: int = 1,
        iou_threshold: float = 0.3,
        max_centre_distance: float = 0.6,
    ) -> None:
        if window < 1:
            raise FerError(f"Expected a smoothing window of at least 1 frame; received {window}")
        if min_hits < 1:
            raise FerError(f"Expected min_hits of at least 1; received {min_hits}")
        self.window = window
        self.max_missed = max_missed
        self.min_hits = min_hits
        self.iou_threshold = iou_threshold
        self.max_centre_distance = max_centre_distance
        self.tracks: list[Track] = []
        self.next_id = 1

    def set_window(self, window: int) -> None:
        """Change the smoothing window; existing histories are trimmed to it."""
        if window < 1:
            raise FerError(f"Expected a smoothing window of at least 1 frame; received {window}")
        self.window = window
        for track in self.tracks:
            track.window = window
            while len(track.history) > window:
                track.history.popleft()

    def reset(self) -> None:
        self.tracks = []
        self.next_id = 1

    def update(self, boxes: list[Box]) -> list[Track]:
        """Match this frame's detected boxes to tracks; returns the confirmed tracks among them, in the boxes' order.

        Unmatched boxes start new tracks, confirmed once detected `min_hits` times in a row (a one-off false
        detection never shows); tracks without a box count a miss and are dropped after `max_missed` misses
        (unconfirmed ones at the first).
        """
        assignments = self._match(boxes)
        matched_tracks = set(assignments.values())  # Track compares by identity (eq=False)
        for track in self.tracks:
            if track not in matched_tracks:
                track.missed += 1
        result: list[Track] = []
        for index, box in enumerate(boxes):
            track = assignments.get(index)
            if track is None:
                track = Track(face_id=self.next_id, box=box, window=self.window)
                self.next_id += 1
                self.tracks.append(track)
            track.box = box
            track.missed = 0
            track.hits += 1
            if track.hits >= self.min_hits:
                result.append(track)
        self.tracks = [
            track
            for track in self.tracks
            if track.missed <= self.max_missed and (track.hits >= self.min_hits or track.missed == 0)
        ]
        return result

    def _match(self, boxes: list[Box]) -> dict[int, Track]:
        """Greedy matching: highest IoU pairs first, then the nearest centres for what is left."""
        assignments: dict[int, Track] = {}
        free_tracks = list(self.tracks)
        pairs = sorted(
            ((box_iou(box, track.box), index, track) for index, box in enumerate(boxes) for track in free_tracks),
            key=lambda pair: -pair[0],
        )
        for overlap, index, track in pairs:
            if overlap < self.iou_threshold:
                break
            if index not in assignments and track in free_tracks:
                assignments[index] = track
                free_tracks.remove(track)
        pairs = sorted(
            (
                (centre_distance(box, track.box), index, track)
                for index, box in enumerate(boxes)
                if index not in assignments
                for track in free_tracks
            ),
            key=lambda pair: pair[0],
        )
        for distance, index, track in pairs:
            if distance > self.max_centre_distance:
                break
            if index not in assignments and track in free_tracks:
                assignments[index] = track
                free_tracks.remove(track)
        return assignments

    def confirmed(self) -> list[Track]:
        """Tracks detected at least `min_hits` times."""
        return [track for track in self.tracks if track.hits >= self.min_hits]

    def tentative(self) -> list[Track]:
        """Tracks detected in the latest frame but not yet `min_hits` times: faces waiting to be confirmed."""
        return [track for track in self.tracks if track.hits < self.min_hits and track.missed == 0]

    def remember_templates(self, gray: np.ndarray, tracks: list[Track]) -> None:
        """Store each track's face as a small template for `follow_template` on the next frames."""
        for track in tracks:
            track.template = face_template(gray, track.box)


TEMPLATE_SIDE = 32


def face_template(gray: np.ndarray, box: Box) -> np.ndarray | None:
    """The face's pixels at about TEMPLATE_SIDE pixels wide (None when the box lies outside the image)."""
    x, y, width, height = box
    left, top = max(0, x), max(0, y)
    right, bottom = min(gray.shape[1], x + width), min(gray.shape[0], y + height)
    if right - left < 4 or bottom - top < 4:
        return None
    factor = TEMPLATE_SIDE / max(width, height)
    crop = gray[top:bottom, left:right]
    if factor >= 1:
        return crop.copy()
    size = (max(4, round(crop.shape[1] * factor)), max(4, round(crop.shape[0] * factor)))
    return cv2.resize(crop, size, interpolation=cv2.INTER_AREA)


def follow_template(gray: np.ndarray, box: Box, template: np.ndarray, search: float = 0.5) -> tuple[Box, float]:
    """The box moved to the best match of the face's template within `search` box-sizes, and the match score.

    The score is the normalised correlation (1 = identical); callers treat a low score as "the face is gone".
    """
    x, y, width, height = box
    factor = min(1.0, TEMPLATE_SIDE / max(width, height))
    pad_x, pad_y = round(width * search), round(height * search)
    left, top = max(0, x - pad_x), max(0, y - pad_y)
    right, bottom = min(gray.shape[1], x + width + pad_x), min(gray.shape[0], y + height + pad_y)
    region = gray[top:bottom, left:right]
    if region.size == 0:
        return box, 0.0
    if factor < 1:
        size = (max(1, round(region.shape[1] * factor)), max(1, round(region.shape[0] * factor)))
        region = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
    if region.shape[0] < template.shape[0] or region.shape[1] < template.shape[1]:
        return box, 0.0
    scores = cv2.matchTemplate(region, template, cv2.TM_CCOEFF_NORMED)
    _, best, _, (match_x, match_y) = cv2.minMaxLoc(scores)
    if not np.isfinite(best):
        return box, 0.0
    return (round(left + match_x / factor), round(top + match_y / factor), width, height), float(best)
