"""Drawing predictions on frames: a box in the emotion's colour, label, confidence, probability bars."""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from ferlib.classes import class_color, hex_to_bgr

FONT = cv2.FONT_HERSHEY_SIMPLEX


def _text_color(background: tuple[int, int, int]) -> tuple[int, int, int]:
    blue, green, red = background
    return (0, 0, 0) if 0.299 * red + 0.587 * green + 0.114 * blue > 150 else (255, 255, 255)


def draw_face(
    frame: np.ndarray,
    box: tuple[int, int, int, int],
    label: str,
    confidence: float,
    probabilities: Mapping[str, float] | None = None,
    *,
    show_bars: bool = True,
    show_label: bool = True,
    color: tuple[int, int, int] | None = None,
    text: str | None = None,
) -> None:
    """Draw one face's result onto a BGR frame in place.

    `probabilities` maps each of the model's classes to its probability, in the model's order. `color` and `text`
    replace the class's colour and the "label confidence" text (e.g. for uncertain faces).
    """
    x, y, width, height = box
    color = color or hex_to_bgr(class_color(label))
    scale = max(0.4, min(1.2, width / 160))
    thickness = max(1, round(scale * 2))
    cv2.rectangle(frame, (x, y), (x + width, y + height), color, thickness)
    if show_bars and probabilities is not None:
        _draw_bars(frame, x + width + 4, y, max(8, height // (len(probabilities) + 1)), probabilities)
    if not show_label:
        return
    text = text if text is not None else f"{label} {confidence:.0%}"
    (text_width, text_height), baseline = cv2.getTextSize(text, FONT, scale, thickness)
    top = y - text_height - baseline - 4
    if top < 0:
        top = y + height
    cv2.rectangle(frame, (x, top), (x + text_width + 6, top + text_height + baseline + 4), color, -1)
    cv2.putText(frame, text, (x + 3, top + text_height + 2), FONT, scale, _text_color(color), thickness, cv2.LINE_AA)


def _draw_bars(frame: np.ndarray, left: int, top: int, row_height: int, probabilities: Mapping[str, float]) -> None:
    bar_width = max(30, row_height * 5)
    if left + bar_width + 2 > frame.shape[1]:
        return
    scale = max(0.3, row_height / 30)
    for index, (name, probability) in enumerate(probabilities.items()):
        row_top = top + index * row_height
        if row_top + row_height > frame.shape[0]:
            break
        filled = round(bar_width * float(probability))
        cv2.rectangle(frame, (left, row_top + 1), (left + bar_width, row_top + row_height - 1), (60, 60, 60), -1)
        cv2.rectangle(
            frame, (left, row_top + 1), (left + filled, row_top + row_height - 1), hex_to_bgr(class_color(name)), -1
        )
        cv2.putText(frame, name[:3], (left + 2, row_top + row_height - 3), FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)


def draw_note(frame: np.ndarray, text: str) -> None:
    """A small, discreet note in the bottom-left corner (e.g. 'no face')."""
    scale = max(0.4, frame.shape[1] / 1200)
    (width, height), baseline = cv2.getTextSize(text, FONT, scale, 1)
    bottom = frame.shape[0] - 8
    cv2.rectangle(frame, (6, bottom - height - baseline - 4), (14 + width, bottom + 2), (0, 0, 0), -1)
    cv2.putText(frame, text, (10, bottom - baseline), FONT, scale, (220, 220, 220), 1, cv2.LINE_AA)
