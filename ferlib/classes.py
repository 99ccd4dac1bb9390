"""The one place that defines the emotion classes: their names, order, aliases and colours.

The order is the FER-2013 challenge CSV's (0=angry ... 6=neutral), so CSV labels are indices as-is.
"""

from __future__ import annotations

from ferlib.errors import FerError

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(EMOTIONS)

# Hex colours used by every chart and overlay, chosen to be distinguishable and intuitive.
EMOTION_COLORS: dict[str, str] = {
    "angry": "#e53935",
    "disgust": "#7cb342",
    "fear": "#8e24aa",
    "happy": "#fdd835",
    "sad": "#1e88e5",
    "surprise": "#fb8c00",
    "neutral": "#9e9e9e",
}

EMOTION_ICONS: dict[str, str] = {
    "angry": "😠",
    "disgust": "🤢",
    "fear": "😨",
    "happy": "😄",
    "sad": "😢",
    "surprise": "😲",
    "neutral": "😐",
}

_ALIASES: dict[str, str] = {
    "anger": "angry",
    "angry": "angry",
    "mad": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "neutral": "neutral",
    "neutrality": "neutral",
    "contempt": "",  # known in other datasets (CK+, AffectNet) but not a FER-2013 class
}


def normalize_class_name(name: str) -> str | None:
    """Return the canonical emotion for a folder or label name, or None when it is not one of ours."""
    key = name.strip().lower().replace("-", "").replace("_", "").replace(" ", "")
    canonical = _ALIASES.get(key)
    return canonical or None


def class_index(name: str) -> int:
    """Index of an emotion in the canonical order; raises ValueError for unknown names."""
    canonical = normalize_class_name(name)
    if canonical is None:
        raise FerError(f"Expected one of {', '.join(EMOTIONS)}; received {name!r}")
    return EMOTIONS.index(canonical)


def hex_to_bgr(color: str) -> tuple[int, int, int]:
    """Convert '#rrggbb' to an OpenCV BGR tuple."""
    value = color.lstrip("#")
    if len(value) != 6:
        raise FerError(f"Expected a colour like '#rrggbb'; received {color!r}")
    red, green, blue = (int(value[i : i + 2], 16) for i in (0, 2, 4))
    return blue, green, red


EMOTION_COLORS_BGR: dict[str, tuple[int, int, int]] = {
    name: hex_to_bgr(color) for name, color in EMOTION_COLORS.items()
}
