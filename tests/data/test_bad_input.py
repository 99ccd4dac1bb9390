"""Bad input costs little and says why: huge, damaged or encrypted files, broken links, malformed CSV rows."""

import os
import zipfile

import cv2
import numpy as np
import pytest
from conftest import synthetic_face, write_kaggle_tree, zip_tree

import ferlib.data.datasets
from ferlib.data.datasets import load_dataset
from ferlib.data.preprocess import MAX_PHOTO_PIXELS, decode_photo, fit_within


def test_a_huge_member_is_skipped_and_named_without_being_read(tmp_path):
    archive = zip_tree(write_kaggle_tree(tmp_path / "tree", {"train": 2, "test": 1}), tmp_path / "faces.zip")
    with zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("train/happy/Training_999.jpg", bytes(40 * 1024 * 1024))  # 40 MB of zeros: a tiny zip entry
    assert archive.stat().st_size < 1024 * 1024
    dataset = load_dataset(archive)
    assert len(dataset.labels) == 21
    (bad,) = dataset.report.bad_files
    assert bad.path == "train/happy/Training_999.jpg"
    assert bad.reason == "Expected an image file of at most 32 MB; received 40 MB"


def test_a_zip_declaring_an_absurd_total_is_refused_before_reading(tmp_path, monkeypatch):
    archive = zip_tree(write_kaggle_tree(tmp_path / "tree", {"train": 2, "test": 1}), tmp_path / "faces.zip")
    monkeypatch.setattr(ferlib.data.datasets, "MAX_ARCHIVE_UNCOMPRESSED_BYTES", 1000)
    with pytest.raises(ValueError, match=r"^Expected a zip holding at most 0 MB; received faces.zip, which declares"):
        load_dataset(archive)


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
def test_dangling_and_looping_links_are_listed_files_not_a_failed_folder(tmp_path):
    root = write_kaggle_tree(tmp_path / "tree", {"train": 2, "test": 1})
    (root / "train" / "happy" / "Training_900.jpg").symlink_to(tmp_path / "gone.jpg")
    loop = root / "train" / "sad" / "Training_901.jpg"
    loop.symlink_to(loop)
    dataset = load_dataset(root)
    assert len(dataset.labels) == 21
    assert sorted(bad.path for bad in dataset.report.bad_files) == [
        "train/happy/Training_900.jpg",
        "train/sad/Training_901.jpg",
    ]


def _patch_central_entry(archive, name: str, offset: int, value: int) -> None:
    """Set one byte of a member's central-directory entry (its flags at 8, its compression method at 10)."""
    data = bytearray(archive.read_bytes())
    position = data.find(b"PK\x01\x02")
    while position >= 0:
        name_length = int.from_bytes(data[position + 28 : position + 30], "little")
        if data[position + 46 : position + 46 + name_length] == name.encode():
            data[position + offset] = value
            archive.write_bytes(bytes(data))
            return
        position = data.find(b"PK\x01\x02", position + 4)
    raise AssertionError(f"no member {name}")


def test_damaged_encrypted_and_unreadable_members_are_listed_and_a_bug_is_raised(tmp_path, monkeypatch):
    archive = zip_tree(write_kaggle_tree(tmp_path / "tree", {"train": 2, "test": 1}), tmp_path / "faces.zip")
    face = cv2.imencode(".png", synthetic_face(3, np.random.default_rng(1)))[1].tobytes()
    with zipfile.ZipFile(archive, "a") as handle:
        for number in (997, 998):
            handle.writestr(f"train/happy/Training_{number}.png", face)
        handle.writestr("train/happy/Training_999.png", face, compress_type=zipfile.ZIP_DEFLATED)
    _patch_central_entry(archive, "train/happy/Training_997.png", 8, 0x01)  # marked encrypted
    _patch_central_entry(archive, "train/happy/Training_998.png", 10, 99)  # a compression method zipfile lacks
    with zipfile.ZipFile(archive) as handle:
        start = handle.getinfo("train/happy/Training_999.png").header_offset + 30 + len("train/happy/Training_999.png")
    data = bytearray(archive.read_bytes())
    data[start : start + 8] = bytes(byte ^ 0xFF for byte in data[start : start + 8])  # a broken deflate stream
    archive.write_bytes(bytes(data))

    dataset = load_dataset(archive)
    assert len(dataset.labels) == 21
    reasons = {bad.path.rsplit("_", 1)[1]: bad.reason for bad in dataset.report.bad_files}
    assert reasons["997.png"].startswith("RuntimeError: File 'train/happy/Training_997.png' is encrypted")
    assert reasons["998.png"] == "NotImplementedError: That compression method is not supported"
    assert reasons["999.png"].startswith(("error: Error -3 while decompressing", "BadZipFile: Bad CRC-32"))

    def bug(image):
        raise TypeError("a bug in preprocessing")

    monkeypatch.setattr(ferlib.data.datasets, "preprocess_face", bug)
    fresh = write_kaggle_tree(tmp_path / "fresh", {"train": 1, "test": 1}, seed=5)
    with pytest.raises(TypeError, match="a bug in preprocessing"):
        load_dataset(fresh)


def test_malformed_csv_rows_are_listed_rows_and_a_missing_column_is_named(tmp_path):
    pixels = " ".join(map(str, synthetic_face(3, np.random.default_rng(0)).ravel()))
    good = [f"{label},{pixels},Training" for label in range(7)]
    nan_row = "3," + " ".join(["nan", *pixels.split()[1:]]) + ",Training"
    lines = ["emotion,pixels,Usage", *good, "3,128,Training", nan_row]
    path = tmp_path / "fer2013.csv"
    path.write_bytes(("\n".join(lines) + "\n").encode() + b"4,\xff\xfe 1 2,Training\n")  # not UTF-8
    dataset = load_dataset(path)
    assert len(dataset.labels) == 7
    reasons = [bad.reason for bad in dataset.report.bad_files]
    assert len(reasons) == 3
    assert reasons[0].startswith("Expected a square image's pixels, at least 8x8") and "received 1 values" in reasons[0]
    assert reasons[1].startswith("Expected pixel values 0-255")
    (tmp_path / "other.csv").write_text("label,pixels\n1,2\n")
    with pytest.raises(ValueError, match=r"header lacks emotion \(it has: label, pixels\)$"):
        load_dataset(tmp_path / "other.csv")


def test_a_huge_jpeg_photo_is_decoded_reduced_and_a_huge_png_refused():
    jpeg = cv2.imencode(".jpg", np.full((4000, 6000, 3), 90, np.uint8))[1].tobytes()  # 24 megapixels
    photo = decode_photo(jpeg)
    assert photo.shape == (2000, 3000, 3) and photo.shape[0] * photo.shape[1] <= MAX_PHOTO_PIXELS
    small = cv2.imencode(".jpg", np.full((400, 600, 3), 90, np.uint8))[1].tobytes()
    assert decode_photo(small).shape == (400, 600, 3)  # a photo within the limit is read as it is
    png = cv2.imencode(".png", np.zeros((4000, 6000), np.uint8))[1].tobytes()
    with pytest.raises(ValueError, match=r"at most 16 megapixels \(JPEG photos of any size are read reduced\)"):
        decode_photo(png)


def test_a_picture_for_the_screen_is_never_larger_than_one():
    image = np.zeros((3000, 4000, 3), np.uint8)
    assert fit_within(image).shape == (1440, 1920, 3)
    assert fit_within(image[:100, :200]).shape == (100, 200, 3)  # never enlarged
