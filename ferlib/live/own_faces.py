"""Your own faces: labelled photos (`<class>/<photo>`, a folder or a .zip) made into a small FER-2013-style dataset.

A workshop fine-tunes a shipped model on faces it collected itself. Each photo becomes exactly the face the model
reads at inference (the photo pipeline's detector, crop and `preprocess_face`: 48x48 gray) and lands in Kaggle's
layout, `train/<class>/*.png` and `test/<class>/*.png`, which `ferlib.data.datasets.load_dataset` reads like any other.
Faces are named by the hash of their pixels, so one face is stored once however often it is collected or saved.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from ferlib.atomic import atomic_write_bytes
from ferlib.classes import EMOTIONS, normalize_class_name
from ferlib.classes import class_name as canonical_class
from ferlib.data.archive import UNREADABLE_FILE_ERRORS, check_dataset_zip, open_source, unsafe_entry_reason
from ferlib.data.datasets import MAX_IMAGE_FILE_BYTES, ProgressCallback
from ferlib.data.layouts import is_hidden
from ferlib.data.preprocess import IMAGE_SIZE, decode_photo, preprocess_face, to_grayscale
from ferlib.errors import FerError
from ferlib.live.detection import FaceBox, make_detector
from ferlib.live.pipeline import crop_face, detect_faces

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# An image no larger than this on both sides in which the detector finds no face is taken as a face already cut out.
SMALL_FACE_SIDE = 96
# save_face sends about one face in this many of a class to the test split.
SAVE_TEST_EVERY = 5
SPLIT_FOLDERS = ("train", "test")

Detector = Callable[[np.ndarray], list[FaceBox]]


@dataclass
class OwnFacesReport:
    """What `collect_faces` wrote: the dataset folder, faces per split and class, and each skipped file's reason."""

    output: Path
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split ("train", "test") -> class -> faces
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file in the source, why it was skipped)

    @property
    def classes(self) -> list[str]:
        """The classes with at least one face, in FER-2013's order."""
        present = {name for per_class in self.counts.values() for name, count in per_class.items() if count}
        return [name for name in EMOTIONS if name in present]

    def total(self, split: str | None = None) -> int:
        """Faces written to one split, or to both."""
        splits = [split] if split else list(self.counts)
        return sum(sum(self.counts.get(name, {}).values()) for name in splits)

    def summary(self) -> str:
        """One line: `faces=N train=N test=N skipped=N classes=happy,sad output=DIR`."""
        return (
            f"faces={self.total()} train={self.total('train')} test={self.total('test')} "
            f"skipped={len(self.skipped)} classes={','.join(self.classes)} output={self.output}"
        )


def collect_faces(
    source: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    detector: str | Detector = "haar",
    test_fraction: float = 0.2,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> OwnFacesReport:
    """Find the face in every photo of `source` (`<class>/<photo>`, a folder or a .zip) and write a new dataset folder.

    Folders must be named after emotions (`happy`, `Sad`, ...; one wrapper folder around them is fine); any other
    refuses the whole source before anything is written. Unreadable files, photos without a face and duplicates
    (the same bytes, or the same face) are skipped and listed. The split is stratified and seeded: a class of two
    faces or more has at least one in each split. The folder appears whole or not at all (built beside it, then
    renamed), and an existing non-empty `output_dir` is refused. `progress(done, total)` follows the photos.
    """
    if not 0.0 < test_fraction < 1.0:
        raise FerError(f"Expected a test fraction between 0 and 1; received {test_fraction}")
    root = Path(source).expanduser()
    names, is_zip = _list_source(root)
    photos, skipped = _photos_by_class(names, root)
    output = Path(output_dir).expanduser().resolve()
    _check_output(output, root)
    if is_zip:
        check_dataset_zip(root)  # size caps, zip bombs, entries that would land outside the folder
    find = make_detector(detector) if isinstance(detector, str) else detector
    faces: dict[str, list[tuple[str, np.ndarray]]] = {}
    seen_files: dict[str, str] = {}
    seen_faces: dict[str, str] = {}
    with open_source(root, max_file_bytes=MAX_IMAGE_FILE_BYTES) as read:
        for done, (name, emotion) in enumerate(photos, start=1):
            try:
                data = read(name)
                file_digest = hashlib.sha256(data).hexdigest()
                if file_digest in seen_files:
                    raise _Skip(f"the same file as {seen_files[file_digest]}")
                seen_files[file_digest] = name
                face = face_from_photo(decode_photo(data), find)
                if face is None:
                    raise _Skip(f"no face found by the {getattr(find, 'name', 'given')} detector")
                digest = face_digest(face)
                if digest in seen_faces:
                    raise _Skip(f"the same face as {seen_faces[digest]}")
                seen_faces[digest] = name
                faces.setdefault(emotion, []).append((digest, face))
            except (_Skip, *UNREADABLE_FILE_ERRORS, cv2.error) as error:  # one bad file is listed; a bug is raised
                skipped.append((name, _reason(error)))
            if progress is not None:
                progress(done, len(photos))
    if not faces:
        first = f" ({skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise FerError(
            f"Expected at least one face in the photos of {str(source)!r}; received none in {len(photos)} photos{first}"
        )
    report = OwnFacesReport(output=output, skipped=sorted(skipped))
    splits = {
        emotion: _split(len(found), test_fraction, seed + EMOTIONS.index(emotion)) for emotion, found in faces.items()
    }
    for split in SPLIT_FOLDERS:
        report.counts[split] = {
            emotion: sum(1 for test in splits[emotion] if (split == "test") == test)
            for emotion in EMOTIONS
            if emotion in faces
        }
    _write_dataset(output, faces, splits)
    return report


def save_face(
    face: np.ndarray | bytes,
    class_name: str,
    dataset_dir: str | os.PathLike,
    *,
    detector: str | Detector = "haar",
) -> Path:
    """Add one face to a dataset folder like `collect_faces` writes (created if missing); returns its file.

    `face` is a 48x48 gray face, taken as is, or a photo (an array or its encoded bytes), whose largest face is cut
    out as `collect_faces` does. The 2nd, 7th, 12th... face of a class goes to test (test keeps about a fifth, and
    has a face as soon as the class has two); a face already in the folder is not stored again.
    """
    emotion = canonical_class(class_name)
    root = Path(dataset_dir).expanduser()
    if root.exists() and not root.is_dir():
        raise FerError(f"Expected a dataset folder; received {str(dataset_dir)!r}, which is a file")
    image = decode_photo(bytes(face)) if isinstance(face, bytes | bytearray) else np.asarray(face)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.shape == (IMAGE_SIZE, IMAGE_SIZE):
        cut = preprocess_face(image)
    else:
        cut = face_from_photo(image, make_detector(detector) if isinstance(detector, str) else detector)
        if cut is None:
            height, width = image.shape[:2]
            raise FerError(
                f"Expected a photo with a face, or a {IMAGE_SIZE}x{IMAGE_SIZE} face; received a {width}x{height} "
                "photo in which no face was found"
            )
    file_name = f"{face_digest(cut)}.png"
    for split in SPLIT_FOLDERS:
        for name in EMOTIONS:
            if (root / split / name / file_name).is_file():
                return root / split / name / file_name
    train, test = (_count_photos(root / split / emotion) for split in SPLIT_FOLDERS)
    number = train + test + 1  # this face's number in its class
    split = "test" if test < (number + SAVE_TEST_EVERY - 2) // SAVE_TEST_EVERY else "train"
    target = root / split / emotion / file_name
    atomic_write_bytes(target, _png(cut))
    return target


def face_from_photo(image: np.ndarray, detector: Detector) -> np.ndarray | None:
    """The largest face in a photo as the model reads it (the photo pipeline's detection, crop and preprocessing).

    A small image (both sides at most SMALL_FACE_SIDE) without a detected face is taken as a face already cut out;
    None for a larger one.
    """
    gray = to_grayscale(image)
    boxes = detect_faces(detector, image, gray)
    if boxes:
        return crop_face(gray, max(boxes, key=lambda box: box.width * box.height))
    if max(gray.shape) <= SMALL_FACE_SIDE:
        return preprocess_face(gray)
    return None


def face_digest(face: np.ndarray) -> str:
    """A face's name: the start of the SHA-256 of its 48x48 pixels (the same face, the same name)."""
    return hashlib.sha256(np.ascontiguousarray(face, dtype=np.uint8).tobytes()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Helpers


class _Skip(Exception):
    """A photo that is left out for a reason that is not an error (a duplicate, no face)."""


def _reason(error: Exception) -> str:
    if isinstance(error, (_Skip, FerError)):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    last_line = (str(error).strip().splitlines() or [""])[-1]  # OpenCV's errors span lines
    return f"{type(error).__name__}: {last_line}"


def _check_output(output: Path, source: Path) -> None:
    """Refuse an output that is a file, holds something, or lies inside the source folder."""
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise FerError(f"Expected a new or empty output folder; received {str(output)!r}, which already holds files")
    if source.is_dir() and output.is_relative_to(source.resolve()):
        raise FerError(f"Expected an output folder outside the photos' folder; received {str(output)!r}")


def _list_source(root: Path) -> tuple[list[str], bool]:
    """Every file of a folder or .zip as a relative POSIX path, hidden ones left out; whether it is a zip."""
    if root.is_dir():
        names = [
            (Path(folder) / name).relative_to(root).as_posix() for folder, _, files in os.walk(root) for name in files
        ]
        return sorted(name for name in names if not is_hidden(name)), False
    if root.is_file() and zipfile.is_zipfile(root):
        try:
            with zipfile.ZipFile(root) as archive:
                infos = archive.infolist()
        except zipfile.BadZipFile as error:
            raise FerError(f"Expected a readable .zip file; received a damaged archive ({error})") from None
        # Unsafe entries are left to check_dataset_zip, which refuses the whole zip with its own message.
        names = [info.filename for info in infos if not info.is_dir() and unsafe_entry_reason(info) is None]
        return sorted(name for name in names if not is_hidden(name)), True
    what = "which does not exist" if not root.exists() else "which is neither a folder nor a .zip"
    raise FerError(f"Expected a folder or .zip of <class>/<photo> (happy/me.jpg, ...); received {str(root)!r}, {what}")


def _photos_by_class(names: Sequence[str], root: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(photo, emotion) pairs and the files left out with their reason; any folder not named after an emotion is
    refused. A single folder around the class folders (a zipped folder) is looked through."""
    parts = [PurePosixPath(name).parts for name in names]
    tops = {part[0] for part in parts}
    inner = {part[1] for part in parts if len(part) > 2}
    wrapped = len(tops) == 1 and not normalize_class_name(next(iter(tops))) and inner
    depth = 1 if wrapped and all(normalize_class_name(name) for name in inner) else 0  # photos/happy/me.jpg
    unknown = sorted({part[depth] for part in parts if len(part) > depth + 1 and not normalize_class_name(part[depth])})
    if unknown:
        raise FerError(
            f"Expected class folders named after emotions ({', '.join(EMOTIONS)}); "
            f"received {', '.join(repr(name) for name in unknown)}"
        )
    photos: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    for name, part in zip(names, parts, strict=True):
        if len(part) <= depth + 1:
            skipped.append((name, "not inside a class folder (<class>/<photo>)"))
        elif PurePosixPath(name).suffix.lower() not in PHOTO_SUFFIXES:
            skipped.append((name, "not a photo (jpg, png, bmp or webp)"))
        else:
            photos.append((name, normalize_class_name(part[depth]) or ""))
    if not photos:
        raise FerError(
            f"Expected photos (jpg, png, bmp or webp) in class folders such as happy/ and sad/; received none in "
            f"{str(root)!r}"
        )
    return photos, skipped


def _split(count: int, test_fraction: float, seed: int) -> list[bool]:
    """Which of a class's faces go to test: a seeded `test_fraction`, at least one in each split from two faces."""
    tests = min(max(round(count * test_fraction), 1 if count >= 2 else 0), count - 1)  # a lone face trains
    chosen = set(np.random.default_rng(seed).permutation(count)[:tests].tolist())
    return [index in chosen for index in range(count)]


def _write_dataset(output: Path, faces: dict[str, list[tuple[str, np.ndarray]]], splits: dict[str, list[bool]]) -> None:
    """Write every face into a temporary folder beside `output`, then rename it into place: all or nothing."""
    output.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent))
    try:
        os.chmod(building, output.parent.stat().st_mode & 0o777)  # mkdtemp's folder is private; its parent's mode
        for emotion, found in faces.items():
            for (digest, face), test in zip(found, splits[emotion], strict=True):
                target = building / ("test" if test else "train") / emotion / f"{digest}.png"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(_png(face))
        if output.exists():
            output.rmdir()  # empty (checked before): replaced by the finished folder
        os.rename(building, output)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


def _png(face: np.ndarray) -> bytes:
    encoded, png = cv2.imencode(".png", face)
    if not encoded:
        raise FerError(f"Expected a face OpenCV can encode as PNG; received an array shaped {face.shape}")
    return png.tobytes()


def _count_photos(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(1 for path in folder.iterdir() if path.suffix.lower() in PHOTO_SUFFIXES and path.is_file())
