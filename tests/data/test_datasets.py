import csv
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import synthetic_face, write_kaggle_tree, zip_tree

from ferlib.classes import EMOTIONS, normalize_class_name
from ferlib.data.datasets import SPLITS, load_dataset, stratified_holdout


def test_kaggle_folder_with_prefixes_maps_splits(kaggle_dir):
    dataset = load_dataset(kaggle_dir)
    counts = dataset.counts()
    assert sum(counts["train"].values()) == 12 * 7
    assert sum(counts["validation"].values()) == 4 * 7  # PublicTest_ -> validation
    assert sum(counts["test"].values()) == 0
    assert dataset.images.shape == (16 * 7, 48, 48)
    assert dataset.report.layout == "kaggle"
    assert "Split 'test' is empty" in dataset.report.notes


def test_kaggle_zip_with_wrapper_folder_reads_without_extracting(kaggle_dir, tmp_path):
    archive = zip_tree(kaggle_dir, tmp_path / "archive.zip", wrapper="archive/")
    from_zip, from_folder = load_dataset(archive), load_dataset(kaggle_dir)
    assert from_zip.counts() == from_folder.counts()
    assert [path.removeprefix("archive/") for path in from_zip.paths] == list(from_folder.paths)
    assert np.array_equal(from_zip.images, from_folder.images)


def test_private_test_prefix_goes_to_test_split(tmp_path):
    folder = tmp_path / "test" / "happy"
    folder.mkdir(parents=True)
    generator = np.random.default_rng(0)
    for name in ("PublicTest_1.jpg", "PrivateTest_2.jpg", "PrivateTest_3.jpg"):
        cv2.imwrite(str(folder / name), synthetic_face(3, generator))
    (tmp_path / "train" / "sad").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "train" / "sad" / "Training_4.jpg"), synthetic_face(4, generator))
    counts = load_dataset(tmp_path).counts()
    assert counts["test"]["happy"] == 2
    assert counts["validation"]["happy"] == 1
    assert counts["train"]["sad"] == 1


def test_the_splits_with_faces_are_named_in_order(kaggle_dir):
    assert load_dataset(kaggle_dir).splits_with_faces() == ["train", "validation"]  # Kaggle's layout: no test split


def test_unprefixed_kaggle_layout_carves_a_stratified_seeded_validation(tmp_path):
    write_kaggle_tree(tmp_path, {"train": 20, "test": 3}, prefixes=False)
    first, second = load_dataset(tmp_path, use_cache=False), load_dataset(tmp_path, use_cache=False)
    counts = first.counts()
    assert all(counts["validation"][name] == 2 for name in EMOTIONS)
    assert all(counts["train"][name] == 18 for name in EMOTIONS)
    assert all(counts["test"][name] == 3 for name in EMOTIONS)
    assert first.report.validation_from_train
    assert np.array_equal(first.splits, second.splits)


def test_folder_names_are_normalised_and_plain_folders_are_a_test_set(tmp_path):
    generator = np.random.default_rng(0)
    for folder, label in (
        ("Anger", 0),
        ("disgusted", 1),
        ("fearful", 2),
        ("happiness", 3),
        ("sadness", 4),
        ("surprised", 5),
        ("neutral", 6),
    ):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "a.png"), synthetic_face(label, generator))
    dataset = load_dataset(tmp_path)
    assert dataset.report.layout == "folder"
    assert dataset.counts()["test"] == {name: 1 for name in EMOTIONS}
    assert normalize_class_name("Surprised") == "surprise"
    assert normalize_class_name("contempt") is None


def test_corrupt_empty_and_non_image_files_are_skipped_and_reported(tmp_path):
    write_kaggle_tree(tmp_path, {"train": 3, "test": 1})
    (tmp_path / "train" / "happy" / "Training_900.jpg").write_bytes(b"")
    (tmp_path / "train" / "happy" / "Training_901.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    (tmp_path / "train" / "sad" / "notes.txt").write_text("not an image")
    (tmp_path / "README.md").write_text("top-level files are ignored")
    dataset = load_dataset(tmp_path)
    bad = {Path(item.path).name: item.reason for item in dataset.report.bad_files}
    assert set(bad) == {"Training_900.jpg", "Training_901.jpg", "notes.txt"}
    assert "empty" in bad["Training_900.jpg"]
    assert len(dataset) == 4 * 7
    assert any("outside any emotion folder" in note for note in dataset.report.notes)


def test_empty_class_is_reported(tmp_path):
    write_kaggle_tree(tmp_path, {"train": 2, "test": 1})
    for path in (tmp_path / "train" / "disgust").iterdir():
        path.unlink()
    notes = load_dataset(tmp_path).report.notes
    assert any("no images of: disgust" in note for note in notes)


def write_challenge_csv(path: Path, rows: list[tuple[int, str, str]]) -> Path:
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["emotion", "pixels", "Usage"])
        writer.writerows(rows)
    return path


def test_challenge_csv_labels_usage_and_bad_rows(tmp_path):
    generator = np.random.default_rng(0)
    faces = {label: synthetic_face(label, generator) for label in range(7)}
    pixels = {label: " ".join(map(str, face.ravel())) for label, face in faces.items()}
    rows = [(label, pixels[label], usage) for label in range(7) for usage in ("Training", "PublicTest", "PrivateTest")]
    rows += [(9, pixels[0], "Training"), (1, "1 2 3", "Training"), (2, pixels[2], "Elsewhere")]
    dataset = load_dataset(write_challenge_csv(tmp_path / "fer2013.csv", rows))
    assert dataset.report.layout == "csv"
    assert dataset.counts() == {split: {name: 1 for name in EMOTIONS} for split in SPLITS}
    assert len(dataset.report.bad_files) == 3
    assert all(item.path.startswith(str(tmp_path / "fer2013.csv")) for item in dataset.report.bad_files)
    for label, face in faces.items():
        assert all(np.array_equal(image, face) for image in dataset.images[dataset.labels == label])


def test_a_csv_saved_with_a_byte_order_mark_loads(tmp_path):
    """Excel's 'CSV UTF-8' starts with a BOM, which used to make the header read '\\ufeffemotion'."""
    from ferlib.data.archive import check_dataset_zip

    generator = np.random.default_rng(0)
    rows = [(label, " ".join(map(str, synthetic_face(label, generator).ravel())), "Training") for label in range(7)]
    plain = write_challenge_csv(tmp_path / "plain.csv", rows)
    marked = tmp_path / "fer2013.csv"
    marked.write_text(plain.read_text(encoding="utf-8"), encoding="utf-8-sig")
    assert marked.read_bytes().startswith(b"\xef\xbb\xbf")
    assert len(load_dataset(marked)) == 7
    with zipfile.ZipFile(tmp_path / "marked.zip", "w") as archive:
        archive.write(marked, "fer2013.csv")
    assert check_dataset_zip(tmp_path / "marked.zip").layout == "csv"
    assert len(load_dataset(tmp_path / "marked.zip")) == 7


def test_csv_inside_a_zip(tmp_path):
    generator = np.random.default_rng(0)
    rows = [(3, " ".join(map(str, synthetic_face(3, generator).ravel())), "Training")] * 10
    csv_path = write_challenge_csv(tmp_path / "fer2013.csv", rows)
    with zipfile.ZipFile(tmp_path / "fer2013.zip", "w") as archive:
        archive.write(csv_path, "fer2013/fer2013.csv")
    dataset = load_dataset(tmp_path / "fer2013.zip")
    assert len(dataset) == 10
    assert dataset.report.validation_from_train


def test_unknown_layout_names_the_expected_layouts(tmp_path):
    (tmp_path / "photos").mkdir()
    cv2.imwrite(str(tmp_path / "photos" / "x.jpg"), np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match=r"Kaggle FER-2013 folder or \.zip.*fer2013\.csv.*<class>"):
        load_dataset(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        load_dataset(tmp_path / "missing.zip")


def test_a_truncated_or_damaged_zip_is_named_as_such(kaggle_dir, tmp_path):
    good = zip_tree(kaggle_dir, tmp_path / "good.zip")
    data = good.read_bytes()
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(data[: len(data) // 2])  # a download cut off: no end record
    damaged = tmp_path / "damaged.zip"
    directory = data.rindex(b"PK\x01\x02")  # the end record still reads, the central directory does not
    damaged.write_bytes(data[:directory] + b"XX" + data[directory + 2 :])
    assert zipfile.is_zipfile(damaged) and not zipfile.is_zipfile(truncated)
    expected = r"Expected a readable \.zip archive; received "
    with pytest.raises(ValueError, match=expected + r".*truncated\.zip', which is truncated or damaged"):
        load_dataset(truncated, use_cache=False)
    with pytest.raises(ValueError, match=expected + r".*damaged\.zip' \(Bad magic number"):
        load_dataset(damaged, use_cache=False)


def test_second_load_comes_from_the_cache_and_a_change_invalidates_it(kaggle_dir, tmp_path):
    first = load_dataset(kaggle_dir, cache_dir=tmp_path)
    second = load_dataset(kaggle_dir, cache_dir=tmp_path)
    assert not first.report.from_cache and second.report.from_cache
    assert np.array_equal(first.images, second.images) and np.array_equal(first.splits, second.splits)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    extra = kaggle_dir / "train" / "happy" / "Training_99999.jpg"
    cv2.imwrite(str(extra), synthetic_face(3, np.random.default_rng(5)))
    try:
        third = load_dataset(kaggle_dir, cache_dir=tmp_path)
        assert not third.report.from_cache and len(third) == len(first) + 1
        assert len(list(tmp_path.glob("*.npz"))) == 1  # the stale cache of this folder was removed
    finally:
        extra.unlink()


def test_a_recopied_archive_hits_the_cache_and_a_changed_one_replaces_it(kaggle_dir, tmp_path):
    archive = zip_tree(kaggle_dir, tmp_path / "fer2013.zip")
    cache = tmp_path / "cache"
    first = load_dataset(archive, cache_dir=cache)
    recopied = archive.read_bytes()
    archive.unlink()
    archive.write_bytes(recopied)  # a fresh copy: same bytes, new mtime
    assert load_dataset(archive, cache_dir=cache).report.from_cache
    with zipfile.ZipFile(archive, "a") as bundle:
        bundle.writestr("train/happy/Training_99999.jpg", (kaggle_dir / first.paths[0]).read_bytes())
    changed = load_dataset(archive, cache_dir=cache)
    assert not changed.report.from_cache and len(changed) == len(first) + 1
    assert len(list(cache.glob("*.npz"))) == 1


def test_same_named_archives_in_different_folders_keep_their_own_caches(kaggle_dir, tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = zip_tree(kaggle_dir, tmp_path / "one" / "fer2013.zip")
    two = zip_tree(kaggle_dir, tmp_path / "two" / "fer2013.zip", wrapper="archive/")
    cache = tmp_path / "cache"
    load_dataset(one, cache_dir=cache)
    load_dataset(two, cache_dir=cache)
    assert load_dataset(one, cache_dir=cache).report.from_cache
    assert len(list(cache.glob("*.npz"))) == 2


def test_stratified_holdout_keeps_every_class():
    labels = np.repeat(np.arange(7), [100, 5, 50, 200, 80, 40, 2])
    mask = stratified_holdout(labels, 0.1, seed=3)
    assert np.bincount(labels[mask], minlength=7).tolist() == [10, 1, 5, 20, 8, 4, 1]
    assert np.array_equal(mask, stratified_holdout(labels, 0.1, seed=3))
