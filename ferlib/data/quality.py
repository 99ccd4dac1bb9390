"""Data-quality checks over a loaded Dataset: duplicates, near-blank images, unreadable files, pixel statistics.

Exact duplicates that sit in different splits (train vs validation vs test) leak test data into training and
inflate reported accuracy, so they are the headline finding. Everything here is vectorised numpy and works in
chunks, so the 32k-image FER-2013 takes well under a second and little extra memory.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from itertools import combinations, islice, product

import numpy as np

from ferlib.classes import EMOTIONS
from ferlib.data.datasets import SPLITS, BadFile, Dataset
from ferlib.errors import FerError

BLANK_STD_THRESHOLD = 5.0
MAX_LISTED_PAIRS = 10_000
_CHUNK = 2048
_HISTOGRAM_LEVELS = 256


@dataclass
class DuplicateGroup:
    """Images with byte-identical 48x48 pixels."""

    digest: str
    indices: list[int]
    paths: list[str]
    splits: list[str]
    labels: list[str]

    @property
    def crosses_splits(self) -> bool:
        return len(set(self.splits)) > 1

    @property
    def has_conflicting_labels(self) -> bool:
        return len(set(self.labels)) > 1


@dataclass
class DuplicatePair:
    """Two identical images, listed once: the first in the earlier split (train, validation, test)."""

    first_path: str
    second_path: str
    first_split: str
    second_split: str
    first_label: str
    second_label: str

    @property
    def crosses_splits(self) -> bool:
        return self.first_split != self.second_split


@dataclass
class QualityReport:
    """Findings over one dataset; pair counts are exact even when the listed pairs are capped."""

    total_images: int
    duplicate_groups: list[DuplicateGroup] = field(default_factory=list)
    duplicate_pairs: list[DuplicatePair] = field(default_factory=list)
    pair_counts: dict[str, int] = field(default_factory=dict)
    pairs_truncated: bool = False
    conflicting_label_pairs: int = 0
    blank_threshold: float = BLANK_STD_THRESHOLD
    blank_indices: list[int] = field(default_factory=list)
    blank_paths: list[str] = field(default_factory=list)
    unreadable: list[BadFile] = field(default_factory=list)

    @property
    def cross_split_pairs(self) -> int:
        """Duplicate pairs whose two images sit in different splits (leakage between splits)."""
        return sum(count for key, count in self.pair_counts.items() if not _is_within_split(key))

    @property
    def within_split_pairs(self) -> int:
        return sum(count for key, count in self.pair_counts.items() if _is_within_split(key))

    @property
    def duplicate_images(self) -> int:
        """Images beyond the first of each identical group: what removing duplicates would drop."""
        return sum(len(group.indices) - 1 for group in self.duplicate_groups)


@dataclass
class MeanFaces:
    """The average face of each class: faces (classes, H, W) float64 in 0-255; a class without images is zeros."""

    faces: np.ndarray
    counts: np.ndarray
    class_names: tuple[str, ...] = EMOTIONS


@dataclass
class IntensityHistograms:
    """Pixel-intensity histograms per class: counts (classes, bins) and the shared bin edges (bins + 1)."""

    bin_edges: np.ndarray
    counts: np.ndarray
    class_names: tuple[str, ...] = EMOTIONS

    def densities(self) -> np.ndarray:
        """Each class's histogram as fractions of its pixels, so classes of different sizes compare."""
        totals = self.counts.sum(axis=1, keepdims=True).astype(np.float64)
        return np.divide(self.counts, totals, out=np.zeros(self.counts.shape, dtype=np.float64), where=totals > 0)


def split_pair_key(first: str, second: str) -> str:
    """A stable name for a pair of splits, in SPLITS order, e.g. 'train/validation' or 'test/test'."""
    ordered = sorted((first, second), key=_split_order)
    return f"{ordered[0]}/{ordered[1]}"


def quality_report(
    dataset: Dataset,
    blank_threshold: float = BLANK_STD_THRESHOLD,
    max_listed_pairs: int = MAX_LISTED_PAIRS,
) -> QualityReport:
    """Duplicates within and across splits, near-blank images and unreadable files of a dataset."""
    report = QualityReport(total_images=len(dataset), blank_threshold=blank_threshold)
    report.unreadable = list(dataset.report.bad_files)
    report.duplicate_groups = _describe_groups(dataset, duplicate_groups(dataset.images))
    _count_pairs(report, max_listed_pairs)
    blank = near_blank_indices(dataset.images, blank_threshold)
    report.blank_indices = [int(index) for index in blank]
    report.blank_paths = [str(dataset.paths[index]) for index in blank]
    return report


def duplicate_groups(images: np.ndarray) -> list[np.ndarray]:
    """Index groups (ascending, two or more each) of byte-identical images, ordered by their first index.

    A vectorised 64-bit hash finds candidates; an exact byte comparison of the candidates then confirms them,
    so hash collisions can never report a false duplicate.
    """
    rows = _byte_rows(images)
    if rows.shape[0] < 2:
        return []
    hashes = _row_hashes(rows)
    _, hash_groups, hash_counts = np.unique(hashes, return_inverse=True, return_counts=True)
    candidates = np.flatnonzero(hash_counts[hash_groups] > 1)
    if candidates.size == 0:
        return []
    candidate_rows = np.ascontiguousarray(rows[candidates])
    exact_keys = candidate_rows.view(np.dtype((np.void, candidate_rows.shape[1]))).ravel()
    _, exact_groups = np.unique(exact_keys, return_inverse=True)
    order = np.argsort(exact_groups, kind="stable")
    boundaries = np.flatnonzero(np.diff(exact_groups[order])) + 1
    groups = [candidates[members] for members in np.split(order, boundaries)]
    groups = [np.sort(group) for group in groups if group.size > 1]
    return sorted(groups, key=lambda group: int(group[0]))


def pixel_std(images: np.ndarray) -> np.ndarray:
    """Standard deviation of each image's pixels (float32), computed in chunks to bound memory."""
    rows = _as_rows(images)
    if rows.shape[0] == 0:
        return np.zeros(0, dtype=np.float32)
    chunks = [rows[start : start + _CHUNK].std(axis=1, dtype=np.float32) for start in range(0, rows.shape[0], _CHUNK)]
    return np.concatenate(chunks)


def near_blank_indices(images: np.ndarray, threshold: float = BLANK_STD_THRESHOLD) -> np.ndarray:
    """Indices of images whose pixel standard deviation is below `threshold`: flat, blank or almost so."""
    if threshold < 0:
        raise FerError(f"Expected a blank threshold >= 0; received {threshold}")
    return np.flatnonzero(pixel_std(images) < threshold)


def mean_faces(images: np.ndarray, labels: np.ndarray, num_classes: int = len(EMOTIONS)) -> MeanFaces:
    """The per-class average image, accumulated in float64 without copying the images to float."""
    images = np.asarray(images)
    labels = np.asarray(labels)
    _check_pairs(images, labels)
    height, width = images.shape[1:3]
    faces = np.zeros((num_classes, height, width), dtype=np.float64)
    counts = np.bincount(labels.astype(np.int64), minlength=num_classes)[:num_classes]
    for label in range(num_classes):
        if counts[label]:
            faces[label] = images[labels == label].mean(axis=0, dtype=np.float64)
    return MeanFaces(faces=faces, counts=counts.astype(np.int64), class_names=EMOTIONS[:num_classes])


def intensity_histograms(
    images: np.ndarray,
    labels: np.ndarray,
    bins: int = 32,
    num_classes: int = len(EMOTIONS),
) -> IntensityHistograms:
    """Per-class histograms of uint8 pixel values over `bins` equal bins of 0-255 (`bins` must divide 256)."""
    images = np.asarray(images)
    labels = np.asarray(labels)
    _check_pairs(images, labels)
    if images.dtype != np.uint8:
        raise FerError(f"Expected uint8 images; received dtype {images.dtype}")
    if bins < 1 or _HISTOGRAM_LEVELS % bins:
        raise FerError(f"Expected a bin count that divides 256 (e.g. 16, 32, 64, 256); received {bins}")
    levels = np.zeros((num_classes, _HISTOGRAM_LEVELS), dtype=np.int64)
    rows = _as_rows(images)
    for label in range(num_classes):
        members = np.flatnonzero(labels == label)
        for start in range(0, members.size, _CHUNK):
            chunk = rows[members[start : start + _CHUNK]]
            levels[label] += np.bincount(chunk.ravel(), minlength=_HISTOGRAM_LEVELS)
    counts = levels.reshape(num_classes, bins, _HISTOGRAM_LEVELS // bins).sum(axis=2)
    edges = np.linspace(0, _HISTOGRAM_LEVELS, bins + 1)
    return IntensityHistograms(bin_edges=edges, counts=counts, class_names=EMOTIONS[:num_classes])


def sample_per_class(
    labels: np.ndarray,
    per_class: int,
    seed: int = 0,
    num_classes: int = len(EMOTIONS),
) -> list[np.ndarray]:
    """Up to `per_class` random indices of each class (ascending), reproducible for a seed: the sample grids."""
    if per_class < 1:
        raise FerError(f"Expected at least one sample per class; received {per_class}")
    generator = np.random.default_rng(seed)
    labels = np.asarray(labels)
    samples = []
    for label in range(num_classes):
        members = np.flatnonzero(labels == label)
        chosen = generator.choice(members, size=min(per_class, members.size), replace=False)
        samples.append(np.sort(chosen))
    return samples


# ---------------------------------------------------------------------------------------------
# Helpers


def _as_rows(images: np.ndarray) -> np.ndarray:
    """(N, ...) images as contiguous (N, pixels) rows of their own dtype."""
    images = np.asarray(images)
    if images.ndim < 2:
        raise FerError(f"Expected images shaped (N, H, W); received {images.shape}")
    return np.ascontiguousarray(images.reshape(images.shape[0], -1))


def _byte_rows(images: np.ndarray) -> np.ndarray:
    """(N, ...) images as contiguous (N, bytes) uint8 rows: what 'identical' compares."""
    return _as_rows(images).view(np.uint8)


def _row_hashes(rows: np.ndarray) -> np.ndarray:
    """A fast 64-bit hash per byte row: its bytes as uint64 words, weighted by fixed odd multipliers."""
    byte_rows = rows
    padding = (-byte_rows.shape[1]) % 8
    if padding:
        byte_rows = np.pad(byte_rows, ((0, 0), (0, padding)))
    words = np.ascontiguousarray(byte_rows).view(np.uint64)
    multipliers = np.random.default_rng(0x5EED).integers(1, 2**63, words.shape[1], dtype=np.uint64) | np.uint64(1)
    hashes = np.empty(words.shape[0], dtype=np.uint64)
    for start in range(0, words.shape[0], _CHUNK):
        chunk = words[start : start + _CHUNK]
        hashes[start : start + _CHUNK] = (chunk * multipliers).sum(axis=1, dtype=np.uint64)
    return hashes


def _describe_groups(dataset: Dataset, groups: list[np.ndarray]) -> list[DuplicateGroup]:
    described = []
    for indices in groups:
        digest = hashlib.sha1(dataset.images[indices[0]].tobytes(), usedforsecurity=False).hexdigest()[:12]
        described.append(
            DuplicateGroup(
                digest=digest,
                indices=[int(index) for index in indices],
                paths=[str(dataset.paths[index]) for index in indices],
                splits=[SPLITS[int(dataset.splits[index])] for index in indices],
                labels=[EMOTIONS[int(dataset.labels[index])] for index in indices],
            )
        )
    return described


def _count_pairs(report: QualityReport, max_listed_pairs: int) -> None:
    """Exact pair counts per split pair (by combinatorics); pairs are listed, cross-split first, up to the cap."""
    counts = {split_pair_key(first, second): 0 for first, second in _split_pairs()}
    cross: list[DuplicatePair] = []
    within: list[DuplicatePair] = []
    for group in report.duplicate_groups:
        by_split = {split: [i for i, value in enumerate(group.splits) if value == split] for split in SPLITS}
        for first, second in _split_pairs():
            first_members, second_members = by_split[first], by_split[second]
            if first == second:
                counts[split_pair_key(first, second)] += len(first_members) * (len(first_members) - 1) // 2
                pairs = combinations(first_members, 2)
                listing = within
            else:
                counts[split_pair_key(first, second)] += len(first_members) * len(second_members)
                pairs = product(first_members, second_members)
                listing = cross
            room = max(0, max_listed_pairs - len(listing))
            listing.extend(_pair(group, first_index, second_index) for first_index, second_index in islice(pairs, room))
        report.conflicting_label_pairs += _pair_total(len(group.labels)) - sum(
            _pair_total(group.labels.count(label)) for label in set(group.labels)
        )
    report.pair_counts = counts
    report.duplicate_pairs = (cross + within)[:max_listed_pairs]
    report.pairs_truncated = sum(counts.values()) > len(report.duplicate_pairs)


def _pair(group: DuplicateGroup, first: int, second: int) -> DuplicatePair:
    return DuplicatePair(
        first_path=group.paths[first],
        second_path=group.paths[second],
        first_split=group.splits[first],
        second_split=group.splits[second],
        first_label=group.labels[first],
        second_label=group.labels[second],
    )


def _pair_total(size: int) -> int:
    return size * (size - 1) // 2


def _split_pairs() -> list[tuple[str, str]]:
    return [(first, second) for position, first in enumerate(SPLITS) for second in SPLITS[position:]]


def _split_order(split: str) -> int:
    return SPLITS.index(split) if split in SPLITS else len(SPLITS)


def _is_within_split(key: str) -> bool:
    first, second = key.split("/")
    return first == second


def _check_pairs(images: np.ndarray, labels: np.ndarray) -> None:
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise FerError(
            f"Expected images (N, H, W) with N labels; received images {images.shape} and labels {labels.shape}"
        )
