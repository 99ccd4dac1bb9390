"""Where a dataset's files say they belong: the layouts FER Studio reads, and the class and split a path names.

Pure rules on relative paths, shared by the dataset loader, the upload checks and your-own-faces collection.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath

from ferlib.classes import EMOTIONS, normalize_class_name

EXPECTED_LAYOUTS = (
    "a Kaggle FER-2013 folder or .zip with train/<class>/*.jpg and test/<class>/*.jpg; "
    "the challenge CSV fer2013.csv (columns emotion,pixels,Usage), alone or in a .zip; "
    "or a labelled folder or .zip of <class>/* images "
    f"(classes: {', '.join(EMOTIONS)})"
)

PREFIX_SPLITS = {"training": "train", "publictest": "validation", "privatetest": "test"}
FOLDER_SPLITS = {
    "train": "train",
    "training": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "publictest": "validation",
    "test": "test",
    "testing": "test",
    "privatetest": "test",
}
SKIPPED_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".gif"}


def has_images(names: Iterable[str]) -> bool:
    return any(PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES for name in names)


def is_hidden(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return any(part.startswith(".") or part == "__MACOSX" for part in parts) or parts[-1].lower() in SKIPPED_NAMES


def split_from_name(file_name: str) -> str | None:
    prefix = file_name.split("_", 1)[0].lower() if "_" in file_name else ""
    return PREFIX_SPLITS.get(prefix)


def classify_entry(name: str) -> tuple[str | None, str | None]:
    """(class, split folder) for a relative file path, from its parent folders."""
    parts = PurePosixPath(name).parts[:-1]
    for depth in range(len(parts) - 1, -1, -1):
        emotion = normalize_class_name(parts[depth])
        if emotion is not None:
            split_folder = None
            if depth > 0:
                split_folder = FOLDER_SPLITS.get(parts[depth - 1].lower().replace("_", "").replace("-", ""))
            return emotion, split_folder
    return None, None
