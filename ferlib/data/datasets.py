"""Load FER-2013 (and similar) data from the formats people actually have, into one Dataset.

Layouts:
- Kaggle: `train/<class>/*` and `test/<class>/*`, as a folder or the downloaded `.zip`.
- The challenge CSV `fer2013.csv` (`emotion,pixels,Usage`), as a file or inside a `.zip`.
- A labelled folder or `.zip` of `<class>/*` images, for evaluating on other data.

File-name prefixes `Training_`, `PublicTest_`, `PrivateTest_` decide the split wherever present (the
ICML 2013 protocol); otherwise the folder does, and validation is a stratified, seeded 10% of train.
Decoded arrays are cached (`ferlib.data.cache`), so a dataset is decoded once.
"""

from __future__ import annotations

import csv
import io
import os
import sys
import zipfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from ferlib.classes import EMOTIONS
from ferlib.data import cache
from ferlib.data.archive import UNREADABLE_FILE_ERRORS
from ferlib.data.layouts import EXPECTED_LAYOUTS, classify_entry, has_images, is_hidden, split_from_name
from ferlib.data.preprocess import IMAGE_SIZE, decode_image, preprocess_face
from ferlib.errors import FerError

SPLITS: tuple[str, ...] = ("train", "validation", "test")
VALIDATION_FRACTION = 0.10
VALIDATION_SEED = 2013
MEGABYTE = 1024 * 1024
# An image file larger than this is skipped (and listed) without being read: a face image is kilobytes, and a huge
# member of a small zip would otherwise be inflated whole into memory.
MAX_IMAGE_FILE_BYTES = 32 * MEGABYTE
# A zip declaring more than this in all is refused before any member is read.
MAX_ARCHIVE_UNCOMPRESSED_BYTES = 4096 * MEGABYTE

MIN_CSV_SIDE = 8  # smaller "images" (a single value, say) are a malformed row, not a face
_CSV_USAGE = {"training": "train", "publictest": "validation", "privatetest": "test"}
ProgressCallback = Callable[[int, int], None]


@dataclass
class BadFile:
    """A source file that was skipped, and why."""

    path: str
    reason: str


@dataclass
class LoadReport:
    """What loading found: the layout, skipped files and anything a person should know."""

    source: str
    layout: str
    bad_files: list[BadFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    validation_from_train: bool = False
    from_cache: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, value: dict) -> LoadReport:
        bad_files = [BadFile(**item) for item in value.get("bad_files", [])]
        return cls(**{**value, "bad_files": bad_files})


@dataclass
class Dataset:
    """Decoded faces: images (N, 48, 48) uint8, labels (N,) int64 in EMOTIONS order, split per image."""

    images: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    paths: np.ndarray
    report: LoadReport

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def split_mask(self, split: str) -> np.ndarray:
        """Boolean mask of one split, or of everything for 'all'."""
        if split == "all":
            return np.ones(len(self), dtype=bool)
        if split not in SPLITS:
            raise FerError(f"Expected a split among {', '.join(SPLITS)} or all; received {split!r}")
        return self.splits == SPLITS.index(split)

    def subset(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels of one split."""
        mask = self.split_mask(split)
        return self.images[mask], self.labels[mask]

    def counts(self) -> dict[str, dict[str, int]]:
        """Image counts per split and class, in canonical order."""
        table: dict[str, dict[str, int]] = {}
        for split_index, split in enumerate(SPLITS):
            labels = self.labels[self.splits == split_index]
            per_class = np.bincount(labels, minlength=len(EMOTIONS))
            table[split] = {name: int(per_class[i]) for i, name in enumerate(EMOTIONS)}
        return table

    def splits_with_faces(self) -> list[str]:
        """The splits that hold at least one face, in canonical order (FER-2013's zip has no test split)."""
        return [SPLITS[index] for index in sorted(set(np.unique(self.splits).tolist()))]


def load_dataset(
    path: str | os.PathLike,
    *,
    use_cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    progress: ProgressCallback | None = None,
) -> Dataset:
    """Load any supported layout at `path`; decoding happens once and is cached."""
    source = Path(path).expanduser()
    if not source.exists():
        raise FerError(f"Expected a dataset path ({EXPECTED_LAYOUTS}); received {str(path)!r}, which does not exist")
    source = source.resolve()
    cached_at = cache.cache_file(source, cache_dir) if use_cache else None
    if cached_at is not None and cached_at.exists():
        cached = cache.read_cache(cached_at)
        if cached is not None:
            arrays, report = cached
            return Dataset(**arrays, report=LoadReport.from_dict({**report, "from_cache": True}))
    dataset = _load_uncached(source, progress)
    if cached_at is not None:
        arrays = {name: getattr(dataset, name) for name in cache.ARRAYS}
        cache.write_cache(cached_at, arrays, dataset.report.to_dict())
        cache.remove_stale_caches(cached_at, source)
    return dataset


class ProgressPrinter:
    """A progress callback that prints a line to stderr each time another tenth is done."""

    def __init__(self, label: str = "decoding images") -> None:
        self.label = label
        self.last_tenth = -1

    def __call__(self, done: int, total: int) -> None:
        tenth = 10 * done // max(1, total)
        if tenth != self.last_tenth:
            self.last_tenth = tenth
            print(f"{self.label}: {done}/{total} ({100 * done // max(1, total)}%)", file=sys.stderr, flush=True)


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask picking `fraction` of each class (at least one when a class has two or more)."""
    if not 0.0 < fraction < 1.0:
        raise FerError(f"Expected a holdout fraction between 0 and 1; received {fraction}")
    generator = np.random.default_rng(seed)
    mask = np.zeros(labels.shape[0], dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = round(members.size * fraction)
        if members.size >= 2:
            count = max(1, count)
        mask[generator.permutation(members)[:count]] = True
    return mask


# ---------------------------------------------------------------------------------------------
# Sources: a folder, a zip, or a CSV


def _load_uncached(source: Path, progress: ProgressCallback | None) -> Dataset:
    if source.is_file() and source.suffix.lower() == ".csv":
        with open(source, encoding="utf-8-sig", errors="replace", newline="") as stream:
            return _load_csv(stream, str(source), progress)
    if source.is_file() and source.suffix.lower() == ".zip" and not zipfile.is_zipfile(source):
        raise FerError(f"Expected a readable .zip archive; received {str(source)!r}, which is truncated or damaged")
    if source.is_file() and zipfile.is_zipfile(source):
        try:
            archive = zipfile.ZipFile(source)
        except zipfile.BadZipFile as error:  # its end record reads, its directory does not
            raise FerError(f"Expected a readable .zip archive; received {str(source)!r} ({error})") from None
        with archive:
            infos = [info for info in archive.infolist() if not info.is_dir()]
            declared = sum(info.file_size for info in infos)
            if declared > MAX_ARCHIVE_UNCOMPRESSED_BYTES:
                raise FerError(
                    f"Expected a zip holding at most {MAX_ARCHIVE_UNCOMPRESSED_BYTES // MEGABYTE:,} MB; received "
                    f"{source.name}, which declares {declared / MEGABYTE:,.0f} MB uncompressed"
                )
            names = [info.filename for info in infos]
            csv_names = [name for name in names if name.lower().endswith(".csv") and not is_hidden(name)]
            if csv_names and not has_images(names):
                with archive.open(csv_names[0]) as raw:
                    text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")
                    return _load_csv(text, f"{source}:{csv_names[0]}", progress)
            sizes = {info.filename: info.file_size for info in infos}

            def read_member(name: str) -> bytes:
                _check_file_size(sizes[name])
                return archive.read(name)  # at most the size checked: zipfile stops there (a lying header fails CRC)

            return _load_files(str(source), names, read_member, progress)
    if source.is_dir():
        names = [
            str(PurePosixPath(Path(root).relative_to(source).as_posix()) / name)
            for root, _, files in os.walk(source)
            for name in files
        ]
        csv_names = [name for name in names if name.lower().endswith(".csv") and not is_hidden(name)]
        if csv_names and not has_images(names):
            with open(source / csv_names[0], encoding="utf-8-sig", errors="replace", newline="") as stream:
                return _load_csv(stream, str(source / csv_names[0]), progress)

        def read_file(name: str) -> bytes:
            with open(source / name, "rb") as stream:  # a dangling or looping link fails here: one bad file
                _check_file_size(os.fstat(stream.fileno()).st_size)
                return stream.read()

        return _load_files(str(source), names, read_file, progress)
    raise FerError(
        f"Expected {EXPECTED_LAYOUTS}; received {str(source)!r}, which is neither a folder, a .zip nor a .csv"
    )


def _check_file_size(size: int) -> None:
    if size > MAX_IMAGE_FILE_BYTES:
        limit = MAX_IMAGE_FILE_BYTES // MEGABYTE
        raise FerError(f"Expected an image file of at most {limit} MB; received {size / MEGABYTE:,.0f} MB")


def _load_files(
    source: str,
    names: list[str],
    read: Callable[[str], bytes],
    progress: ProgressCallback | None,
) -> Dataset:
    entries: list[tuple[str, int, str | None]] = []
    unplaced: list[str] = []
    for name in sorted(names):
        if is_hidden(name):
            continue
        emotion, split_folder = classify_entry(name)
        if emotion is None:
            unplaced.append(name)
            continue
        split = split_from_name(PurePosixPath(name).name) or split_folder
        entries.append((name, EMOTIONS.index(emotion), split))
    if not entries:
        detail = f"found {len(names)} files but none inside a folder named after an emotion"
        raise FerError(f"Expected {EXPECTED_LAYOUTS}; received {source!r} ({detail})")
    layout = "kaggle" if any(split for _, _, split in entries) else "folder"
    report = LoadReport(source=source, layout=layout)
    if unplaced:
        shown = ", ".join(unplaced[:5]) + (" ..." if len(unplaced) > 5 else "")
        report.notes.append(f"{len(unplaced)} files outside any emotion folder were ignored: {shown}")

    def decode(entry: tuple[str, int, str | None]) -> np.ndarray | str:
        try:
            return preprocess_face(decode_image(read(entry[0])))
        except (ValueError, OSError) as error:
            return str(error)
        except (*UNREADABLE_FILE_ERRORS, cv2.error) as error:  # one bad file is listed; a bug is raised
            return f"{type(error).__name__}: {error}"

    images: list[np.ndarray] = []
    kept: list[tuple[str, int, str | None]] = []
    total = len(entries)
    chunk = 1024
    # Reading stays in this thread (zip members share one file handle); decoding uses both cores.
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        for start in range(0, total, chunk):
            batch = entries[start : start + chunk]
            for entry, result in zip(batch, pool.map(decode, batch), strict=True):
                if isinstance(result, str):
                    report.bad_files.append(BadFile(path=entry[0], reason=result))
                else:
                    images.append(result)
                    kept.append(entry)
            if progress is not None:
                progress(min(start + chunk, total), total)

    default_split = "test" if layout == "folder" else "train"
    splits = np.array([SPLITS.index(split or default_split) for _, _, split in kept], dtype=np.int8)
    labels = np.array([label for _, label, _ in kept], dtype=np.int64)
    paths = np.array([name for name, _, _ in kept], dtype=str)
    stacked = np.stack(images) if images else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    return _finish(Dataset(stacked, labels, splits, paths, report))


def _load_csv(stream: Iterable[str], source: str, progress: ProgressCallback | None) -> Dataset:
    try:
        return _read_csv(csv.reader(stream), source, progress)
    except csv.Error as error:  # a field beyond csv's size limit, or a quote left open
        expected = "Expected a CSV with one face per line, as fer2013.csv"
        raise FerError(f"{expected}; received {source!r} ({error})") from None


def _read_csv(reader: Iterator[list[str]], source: str, progress: ProgressCallback | None) -> Dataset:
    header = [column.strip().lower() for column in next(reader, [])]
    missing = [column for column in ("emotion", "pixels") if column not in header]
    if missing:
        raise FerError(
            f"Expected a CSV with the columns emotion and pixels (and optionally Usage), as fer2013.csv; received "
            f"{source!r}, whose header lacks {' and '.join(missing)} (it has: {', '.join(header) or 'no columns'})"
        )
    emotion_column, pixels_column = header.index("emotion"), header.index("pixels")
    usage_column = header.index("usage") if "usage" in header else None
    report = LoadReport(source=source, layout="csv")
    images: list[np.ndarray] = []
    labels: list[int] = []
    splits: list[int] = []
    paths: list[str] = []
    for line_number, row in enumerate(reader, start=2):
        where = f"{source}:line {line_number}"
        try:
            label = int(row[emotion_column])
            if not 0 <= label < len(EMOTIONS):
                raise FerError(f"Expected an emotion label 0-{len(EMOTIONS) - 1}; received {label}")
            pixels = np.array(row[pixels_column].split(), dtype=np.float64)
            side = round(np.sqrt(pixels.size))
            if side < MIN_CSV_SIDE or side * side != pixels.size:
                raise FerError(
                    f"Expected a square image's pixels, at least {MIN_CSV_SIDE}x{MIN_CSV_SIDE} (FER-2013: 48x48 = 2304 "
                    f"values); received {pixels.size} values"
                )
            if not np.all(np.isfinite(pixels)) or pixels.min() < 0 or pixels.max() > 255:
                raise FerError("Expected pixel values 0-255; received a value outside them (or not a number)")
            split = "train"
            if usage_column is not None:
                usage = row[usage_column].strip().lower()
                if usage not in _CSV_USAGE:
                    raise FerError(
                        f"Expected Usage Training, PublicTest or PrivateTest; received {row[usage_column]!r}"
                    )
                split = _CSV_USAGE[usage]
        except (ValueError, IndexError) as error:
            report.bad_files.append(BadFile(path=where, reason=str(error) or "malformed row"))
            continue
        images.append(preprocess_face(pixels.reshape(side, side).astype(np.uint8)))
        labels.append(label)
        splits.append(SPLITS.index(split))
        paths.append(f"csv:{line_number}")
        if progress is not None and len(images) % 4096 == 0:
            progress(len(images), len(images))
    if not images:
        raise FerError(f"Expected rows of emotion,pixels,Usage in {source!r}; received no readable rows")
    dataset = Dataset(
        np.stack(images),
        np.array(labels, dtype=np.int64),
        np.array(splits, dtype=np.int8),
        np.array(paths, dtype=str),
        report,
    )
    return _finish(dataset)


def _finish(dataset: Dataset) -> Dataset:
    """Carve validation from train when the source has none, and note empty splits and classes."""
    report = dataset.report
    has_train = bool(np.any(dataset.splits == SPLITS.index("train")))
    has_validation = bool(np.any(dataset.splits == SPLITS.index("validation")))
    if has_train and not has_validation:
        train_indices = np.flatnonzero(dataset.splits == SPLITS.index("train"))
        holdout = stratified_holdout(dataset.labels[train_indices], VALIDATION_FRACTION, VALIDATION_SEED)
        dataset.splits[train_indices[holdout]] = SPLITS.index("validation")
        report.validation_from_train = True
        report.notes.append(
            f"No validation split in the source: a stratified {VALIDATION_FRACTION:.0%} of train "
            f"(seed {VALIDATION_SEED}) is used as validation"
        )
    counts = dataset.counts()
    for split, per_class in counts.items():
        total = sum(per_class.values())
        if total == 0:
            report.notes.append(f"Split {split!r} is empty")
            continue
        empty = [name for name, count in per_class.items() if count == 0]
        if empty:
            report.notes.append(f"Split {split!r} has no images of: {', '.join(empty)}")
    if report.bad_files:
        report.notes.append(f"{len(report.bad_files)} unreadable files were skipped (listed in the load report)")
    return dataset
