"""ferlib.data.quality: duplicates within and across splits, near-blank images, mean faces and histograms."""

import itertools

import cv2
import numpy as np
import pytest
from conftest import SHARED_ZIP, write_kaggle_tree

from ferlib.data.datasets import SPLITS, Dataset, LoadReport, load_dataset
from ferlib.data.quality import (
    duplicate_groups,
    intensity_histograms,
    mean_faces,
    near_blank_indices,
    quality_report,
    sample_per_class,
    split_pair_key,
)


def make_dataset(images: np.ndarray, labels: list[int], splits: list[str]) -> Dataset:
    """A Dataset built in memory, with paths naming each image's split and position."""
    paths = np.array([f"{split}/{index}.png" for index, split in enumerate(splits)])
    return Dataset(
        images=np.asarray(images, dtype=np.uint8),
        labels=np.array(labels, dtype=np.int64),
        splits=np.array([SPLITS.index(split) for split in splits], dtype=np.int8),
        paths=paths,
        report=LoadReport(source="memory", layout="kaggle"),
    )


def noise_images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 48, 48), dtype=np.uint8)


def test_duplicates_are_found_within_and_across_splits():
    images = noise_images(8)
    images[3] = images[0]  # train/validation copy
    images[5] = images[0]  # and a train/test copy of the same face
    images[7] = images[6]  # a copy inside validation
    splits = ["train", "train", "train", "validation", "test", "test", "validation", "validation"]
    labels = [0, 1, 2, 0, 4, 3, 6, 6]
    report = quality_report(make_dataset(images, labels, splits))
    assert [group.indices for group in report.duplicate_groups] == [[0, 3, 5], [6, 7]]
    assert report.pair_counts["train/validation"] == 1
    assert report.pair_counts["train/test"] == 1
    assert report.pair_counts["validation/test"] == 1
    assert report.pair_counts["validation/validation"] == 1
    assert report.pair_counts["train/train"] == 0
    assert report.cross_split_pairs == 3 and report.within_split_pairs == 1
    assert report.duplicate_images == 3
    assert report.conflicting_label_pairs == 2  # angry (0, 3) vs happy (5)
    assert report.duplicate_pairs[0].crosses_splits and not report.duplicate_pairs[-1].crosses_splits
    first = report.duplicate_pairs[0]
    assert (first.first_path, first.second_path) == ("train/0.png", "validation/3.png")
    assert not report.pairs_truncated


def test_pairs_in_a_large_group_are_counted_exactly_but_listed_up_to_the_cap():
    images = np.repeat(noise_images(1), 10, axis=0)
    splits = ["train"] * 6 + ["validation"] * 4
    report = quality_report(make_dataset(images, [3] * 10, splits), max_listed_pairs=5)
    assert report.pair_counts["train/train"] == 15
    assert report.pair_counts["train/validation"] == 24
    assert report.pair_counts["validation/validation"] == 6
    assert len(report.duplicate_pairs) == 5 and report.pairs_truncated
    assert all(pair.crosses_splits for pair in report.duplicate_pairs)
    assert report.conflicting_label_pairs == 0


def test_images_one_pixel_apart_are_not_duplicates():
    images = np.repeat(noise_images(1), 2, axis=0)
    images[1, 47, 47] ^= 1
    assert duplicate_groups(images) == []


def test_duplicate_groups_match_a_brute_force_comparison():
    generator = np.random.default_rng(7)
    images = generator.integers(0, 4, (300, 48, 48), dtype=np.uint8)
    for source, target in generator.integers(0, 300, (40, 2)):
        images[target] = images[source]
    expected: dict[bytes, list[int]] = {}
    for index, image in enumerate(images):
        expected.setdefault(image.tobytes(), []).append(index)
    expected_groups = sorted((members for members in expected.values() if len(members) > 1), key=lambda m: m[0])
    assert [list(group) for group in duplicate_groups(images)] == expected_groups
    assert len(expected_groups) > 10


def test_near_blank_images_are_listed_by_path():
    images = noise_images(4)
    images[1] = 128
    images[2] = 0
    images[2, :6, :6] = 30  # a few pixels off: std about 3.7, blank at threshold 5 but not at 2
    report = quality_report(make_dataset(images, [0, 1, 2, 3], ["train"] * 4))
    assert report.blank_paths == ["train/1.png", "train/2.png"]
    assert report.blank_indices == [1, 2]
    assert near_blank_indices(images, threshold=2.0).tolist() == [1]
    with pytest.raises(ValueError, match="Expected a blank threshold"):
        near_blank_indices(images, threshold=-1)


def test_unreadable_files_come_from_the_load_report(tmp_path):
    root = write_kaggle_tree(tmp_path / "tree", {"train": 2, "test": 1})
    (root / "train" / "fear" / "Training_broken.jpg").write_bytes(b"not an image")
    cv2.imwrite(str(root / "train" / "sad" / "Training_flat.png"), np.full((48, 48), 90, np.uint8))
    report = quality_report(load_dataset(root, use_cache=False))
    assert [bad.path for bad in report.unreadable] == ["train/fear/Training_broken.jpg"]
    assert report.blank_paths == ["train/sad/Training_flat.png"]
    assert report.duplicate_groups == [] and report.cross_split_pairs == 0


def test_split_pair_keys_follow_the_split_order():
    assert split_pair_key("test", "train") == "train/test"
    assert split_pair_key("validation", "validation") == "validation/validation"


def test_mean_faces_average_each_class_and_leave_empty_classes_at_zero():
    images = np.zeros((3, 48, 48), dtype=np.uint8)
    images[0] = 10
    images[1] = 255
    images[2] = 7
    faces = mean_faces(images, np.array([0, 0, 3]))
    assert faces.faces.shape == (7, 48, 48) and faces.faces.dtype == np.float64
    assert np.allclose(faces.faces[0], 132.5)  # no uint8 overflow
    assert np.allclose(faces.faces[3], 7)
    assert not faces.faces[1].any()
    assert faces.counts.tolist() == [2, 0, 0, 1, 0, 0, 0]


def test_intensity_histograms_count_every_pixel_into_its_bin():
    images = noise_images(20, seed=3)
    labels = np.arange(20) % 7
    histograms = intensity_histograms(images, labels, bins=16)
    assert histograms.counts.shape == (7, 16) and histograms.bin_edges.tolist()[:2] == [0.0, 16.0]
    for label in range(7):
        expected, _ = np.histogram(images[labels == label], bins=16, range=(0, 256))
        assert histograms.counts[label].tolist() == expected.tolist()
    assert np.allclose(histograms.densities().sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="divides 256"):
        intensity_histograms(images, labels, bins=30)
    with pytest.raises(ValueError, match="Expected images"):
        intensity_histograms(images, labels[:5])


def test_samples_per_class_are_reproducible_and_capped():
    labels = np.array([0] * 10 + [1] * 2 + [3] * 5)
    first = sample_per_class(labels, 4, seed=1)
    assert [group.tolist() for group in first] == [group.tolist() for group in sample_per_class(labels, 4, seed=1)]
    assert [group.size for group in first] == [4, 2, 0, 4, 0, 0, 0]
    assert all(set(labels[group]) <= {label} for label, group in enumerate(first))
    assert any(a.tolist() != b.tolist() for a, b in itertools.zip_longest(first, sample_per_class(labels, 4, seed=2)))


@pytest.mark.real_data
@pytest.mark.skipif(not SHARED_ZIP.exists(), reason=f"{SHARED_ZIP} not present")
def test_shared_fer2013_has_train_validation_leakage_and_blank_faces(tmp_path):
    dataset = load_dataset(SHARED_ZIP, cache_dir=tmp_path / "cache")
    report = quality_report(dataset)
    assert report.pair_counts["train/validation"] == 371
    assert report.pair_counts["train/test"] == 0
    assert len(report.blank_paths) == 12
    assert report.unreadable == []
    faces = mean_faces(*dataset.subset("train"))
    assert faces.counts.sum() == 28709
