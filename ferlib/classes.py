"""The one place that defines the emotion classes: their names, order, aliases and colours, and class sets.

The order is the FER-2013 challenge CSV's (0=angry ... 6=neutral), so CSV labels are indices as-is. A model may tell
apart fewer classes: a `ClassSet` is a subset of the seven (say happy and sad) or groups of them merged under a new
name (say "negative" for angry, disgust, fear and sad), and is saved in the model's config and card.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ferlib.errors import FerError

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(EMOTIONS)

# Class sets people start from: FER-2013's seven, six without disgust (1.5% of the faces, the class most often
# left out) and happy vs sad.
CLASS_PRESETS: dict[str, tuple[str, ...]] = {
    "All seven": EMOTIONS,
    "Six (no disgust)": ("angry", "fear", "happy", "sad", "surprise", "neutral"),
    "Happy vs sad": ("happy", "sad"),
}

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


@dataclass(frozen=True)
class ClassSet:
    """The classes a model tells apart, in its output order, and the FER-2013 emotions each one stands for.

    Outputs follow the canonical order of their first emotion, so a subset keeps FER-2013's order.
    """

    names: tuple[str, ...]
    members: tuple[tuple[str, ...], ...]

    @classmethod
    def all(cls) -> ClassSet:
        return cls(EMOTIONS, tuple((name,) for name in EMOTIONS))

    @classmethod
    def parse(cls, value: Any) -> ClassSet:
        """A class set from a config value: None or "all" (the seven), names as a list or "happy,sad", or a mapping
        of output names to the emotions they merge ({"negative": ["angry", "disgust", "fear", "sad"], ...})."""
        if value is None or value == "all" or value == []:
            return cls.all()
        if isinstance(value, str):
            value = [part for part in (piece.strip() for piece in value.split(",")) if part]
        if isinstance(value, (list, tuple)):
            value = {str(name): [str(name)] for name in value}
        if not isinstance(value, dict) or not value:
            raise FerError(
                f"Expected classes as names (happy,sad) or a mapping of names to emotions; received {value!r}"
            )
        groups: list[tuple[str, tuple[str, ...]]] = []
        taken: set[str] = set()
        for name, emotions in value.items():
            listed = [emotions] if isinstance(emotions, str) else emotions
            if not isinstance(listed, (list, tuple)) or not listed:
                raise FerError(f"Expected a list of emotions for class {name!r}; received {emotions!r}")
            canonical = tuple(sorted({class_name(str(emotion)) for emotion in listed}, key=EMOTIONS.index))
            clash = taken.intersection(canonical)
            if clash:
                raise FerError(f"Expected each emotion in one class only; received {', '.join(sorted(clash))} twice")
            taken.update(canonical)
            label = str(name).strip().lower()
            if not label:
                raise FerError(f"Expected a class name; received {name!r}")
            groups.append((class_name(label) if len(canonical) == 1 and label in _ALIASES else label, canonical))
        if len(groups) < 2:
            raise FerError(f"Expected at least two classes to tell apart; received {[name for name, _ in groups]}")
        names = [name for name, _ in groups]
        if len(set(names)) != len(names):
            raise FerError(f"Expected distinct class names; received {names}")
        groups.sort(key=lambda group: EMOTIONS.index(group[1][0]))
        return cls(tuple(name for name, _ in groups), tuple(members for _, members in groups))

    @property
    def is_all(self) -> bool:
        return self.names == EMOTIONS

    def to_config(self) -> list[str] | dict[str, list[str]]:
        """How a config or card stores it: the names when it has no merges, else the mapping."""
        if all(members == (name,) for name, members in zip(self.names, self.members, strict=True)):
            return list(self.names)
        return {name: list(members) for name, members in zip(self.names, self.members, strict=True)}

    def describe(self) -> str:
        """'happy, sad' or 'negative (angry, disgust, fear, sad), happy'."""
        parts = []
        for name, members in zip(self.names, self.members, strict=True):
            parts.append(name if members == (name,) else f"{name} ({', '.join(members)})")
        return ", ".join(parts)

    def emotion_to_class(self) -> np.ndarray:
        """For each of the seven emotions (canonical index), its class index here, or -1 when left out."""
        mapping = np.full(len(EMOTIONS), -1, dtype=np.int64)
        for index, members in enumerate(self.members):
            for member in members:
                mapping[EMOTIONS.index(member)] = index
        return mapping

    def apply(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(which faces belong to a class here, their labels here) for canonical emotion labels."""
        mapped = self.emotion_to_class()[np.asarray(labels, dtype=np.int64)]
        keep = mapped >= 0
        return keep, mapped[keep]

    def columns_for(self, target: ClassSet) -> list[list[int]]:
        """For each of `target`'s classes, the outputs of a model over this set that make it up (a merged class
        takes each of its emotions' outputs); FerError when this set lacks an emotion `target` needs."""
        columns = {member: index for index, members in enumerate(self.members) for member in members}
        missing = [member for members in target.members for member in members if member not in columns]
        if missing:
            raise FerError(f"Expected a model that knows {', '.join(missing)}; received one over {self.describe()}")
        return [sorted({columns[member] for member in members}) for members in target.members]

    def color(self, name: str) -> str:
        """The hex colour of a class: its emotion's, or its first member's for a merged class."""
        return EMOTION_COLORS[self.members[self.names.index(name)][0]]

    def icon(self, name: str) -> str:
        return EMOTION_ICONS[self.members[self.names.index(name)][0]]


def class_name(name: str) -> str:
    """The canonical emotion for a name; FerError naming the seven for anything else."""
    canonical = normalize_class_name(name)
    if canonical is None:
        raise FerError(f"Expected emotions among {', '.join(EMOTIONS)}; received {name!r}")
    return canonical


# Colours for classes that are not one emotion (merged groups), picked by name so a class keeps its colour.
_OTHER_COLORS = ("#00897b", "#5e35b1", "#c0ca33", "#6d4c41", "#d81b60", "#3949ab")


def class_color(name: str) -> str:
    """The hex colour of any class name: an emotion's own, else one of a few others picked by the name."""
    canonical = normalize_class_name(name)
    if canonical:
        return EMOTION_COLORS[canonical]
    return _OTHER_COLORS[sum(map(ord, name)) % len(_OTHER_COLORS)]


def class_icon(name: str) -> str:
    """The emoji of any class name: an emotion's own, a plain mark for a class that is not one emotion."""
    canonical = normalize_class_name(name)
    return EMOTION_ICONS[canonical] if canonical else "◆"


def class_label(name: str) -> str:
    """A class as charts and menus show it: 'happy' → '😄 happy'."""
    return f"{class_icon(name)} {name}"
