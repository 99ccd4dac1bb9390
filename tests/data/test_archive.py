"""ferlib.data.archive: uploaded dataset zips are checked (size, safe paths, zip bombs, layout) before being stored."""

import io
import re
import stat
import zipfile

import pytest
from conftest import write_kaggle_tree, zip_tree

from ferlib.data.archive import (
    ArchiveLimits,
    check_dataset_zip,
    read_source_files,
    safe_zip_name,
    save_dataset_zip,
)
from ferlib.data.datasets import load_dataset


@pytest.fixture
def kaggle_zip(tmp_path):
    root = write_kaggle_tree(tmp_path / "tree", {"train": 2, "test": 1})
    return zip_tree(root, tmp_path / "fer.zip")


def zip_bytes(entries: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def with_entry(base: bytes, info: zipfile.ZipInfo, content: bytes = b"x") -> bytes:
    """`base` with one more entry added under an exact (possibly hostile) ZipInfo."""
    buffer = io.BytesIO(base)
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr(info, content)
    return buffer.getvalue()


def test_a_kaggle_zip_is_accepted_and_saved_where_the_loader_reads_it(kaggle_zip, tmp_path):
    check = check_dataset_zip(kaggle_zip)
    assert check.layout == "kaggle" and check.image_files == 7 * 3
    saved = save_dataset_zip(kaggle_zip.read_bytes(), "fer.zip", tmp_path / "data")
    assert saved.path == tmp_path / "data" / "fer.zip" and not saved.already_present
    assert saved.path.read_bytes() == kaggle_zip.read_bytes()
    assert len(load_dataset(saved.path, use_cache=False)) == 7 * 3


def test_folder_and_csv_layouts_are_recognised(tmp_path):
    folder = zip_bytes({"happy/1.png": b"png bytes", "sad/2.jpg": b"jpg bytes"})
    assert check_dataset_zip(folder).layout == "folder"
    csv_zip = zip_bytes({"fer2013.csv": b"emotion,pixels,Usage\n3,1 2 3 4,Training\n"}, zipfile.ZIP_DEFLATED)
    assert check_dataset_zip(io.BytesIO(csv_zip)).layout == "csv"


def test_a_csv_without_emotion_and_pixels_columns_is_rejected():
    data = zip_bytes({"faces.csv": b"label,image\n3,1 2 3\n"})
    with pytest.raises(ValueError, match=r"^Expected .*received CSV 'faces.csv' with columns \['label', 'image'\]"):
        check_dataset_zip(data)


def test_a_zip_without_emotion_folders_is_rejected_with_the_loaders_layouts():
    data = zip_bytes({"photos/1.jpg": b"x", "readme.txt": b"hello"})
    with pytest.raises(ValueError, match=r"^Expected a Kaggle FER-2013 folder.*received a zip of 2 files"):
        check_dataset_zip(data)


def test_non_zip_and_damaged_files_are_rejected():
    with pytest.raises(ValueError, match=r"^Expected a \.zip file; received 11 bytes"):
        check_dataset_zip(b"hello world")
    damaged = bytearray(zip_bytes({"train/happy/1.jpg": b"x", "test/happy/2.jpg": b"y"}))
    directory = damaged.find(b"PK\x01\x02")  # the central directory's first entry: still a zip by its end record
    damaged[directory : directory + 4] = b"XXXX"
    with pytest.raises(ValueError, match=r"^Expected a readable \.zip file; received a damaged archive"):
        check_dataset_zip(bytes(damaged))


@pytest.mark.parametrize(
    ("entry_name", "reason"),
    [
        ("../evil.jpg", "'..' path"),
        ("train/happy/../../../evil.jpg", "'..' path"),
        ("/etc/cron.d/evil", "absolute path"),
        ("C:/Windows/evil.jpg", "absolute path"),
        ("..\\..\\evil.jpg", "'..' path"),
    ],
)
def test_entries_escaping_the_folder_are_rejected(kaggle_zip, tmp_path, entry_name, reason):
    data = with_entry(kaggle_zip.read_bytes(), zipfile.ZipInfo(entry_name))
    expected = rf"^Expected zip entries that stay inside the dataset folder; received an? {re.escape(reason)}"
    with pytest.raises(ValueError, match=expected):
        save_dataset_zip(data, "evil.zip", tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_symbolic_links_are_rejected(kaggle_zip):
    link = zipfile.ZipInfo("train/happy/link.jpg")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    data = with_entry(kaggle_zip.read_bytes(), link, b"/etc/passwd")
    with pytest.raises(ValueError, match=r"received a symbolic link: 'train/happy/link\.jpg'"):
        check_dataset_zip(data)


def test_an_oversized_zip_is_rejected_before_it_is_read(kaggle_zip, tmp_path):
    size = kaggle_zip.stat().st_size
    limits = ArchiveLimits(max_zip_bytes=size - 1)
    with pytest.raises(ValueError, match=r"^Expected a \.zip of at most .* MB; received .* MB or more"):
        check_dataset_zip(kaggle_zip, limits)
    with pytest.raises(ValueError, match=r"^Expected a \.zip of at most"):
        save_dataset_zip(io.BytesIO(kaggle_zip.read_bytes()), "fer.zip", tmp_path / "data", limits)
    assert check_dataset_zip(kaggle_zip, ArchiveLimits(max_zip_bytes=size)).layout == "kaggle"


def test_a_zip_bomb_is_rejected_by_its_uncompressed_size():
    bomb = zip_bytes({"happy/1.png": b"\0" * (8 * 1024 * 1024)}, zipfile.ZIP_DEFLATED)
    assert len(bomb) < 64 * 1024
    limits = ArchiveLimits(max_uncompressed_bytes=1024 * 1024)
    with pytest.raises(ValueError, match=r"^Expected at most 1.0 MB once uncompressed; received 8.0 MB"):
        check_dataset_zip(bomb, limits)


def test_too_many_entries_are_rejected():
    data = zip_bytes({f"happy/{number}.png": b"x" for number in range(5)})
    with pytest.raises(ValueError, match=r"^Expected at most 4 entries in the zip; received 5$"):
        check_dataset_zip(data, ArchiveLimits(max_entries=4))


def test_saving_never_overwrites_and_reuses_an_identical_file(kaggle_zip, tmp_path):
    directory = tmp_path / "data"
    first = save_dataset_zip(kaggle_zip, "fer.zip", directory)
    again = save_dataset_zip(kaggle_zip, "fer.zip", directory)
    assert again.already_present and again.path == first.path
    other = zip_bytes({"happy/1.png": b"other"})
    second = save_dataset_zip(other, "fer.zip", directory)
    assert second.path == directory / "fer-2.zip"
    assert first.path.read_bytes() == kaggle_zip.read_bytes()
    assert sorted(path.name for path in directory.iterdir()) == ["fer-2.zip", "fer.zip"]
    renamed = save_dataset_zip(kaggle_zip, "my copy of fer.zip", directory)  # the same bytes under another name
    assert renamed.already_present and renamed.path == first.path
    assert sorted(path.name for path in directory.iterdir()) == ["fer-2.zip", "fer.zip"]


def test_the_upload_folder_has_a_quota(kaggle_zip, tmp_path, monkeypatch):
    directory = tmp_path / "data"
    used = save_dataset_zip(kaggle_zip, "fer.zip", directory).path.stat().st_size
    other = zip_bytes({"happy/1.png": b"other"})
    with pytest.raises(ValueError, match=r"^Expected room for 0 MB in the upload folder, whose quota is 0 MB"):
        save_dataset_zip(other, "other.zip", directory, quota_bytes=used + 10)
    monkeypatch.setenv("FERLIB_UPLOAD_QUOTA_MB", "0.001")
    with pytest.raises(ValueError, match="delete a dataset first"):
        save_dataset_zip(other, "other.zip", directory)
    assert save_dataset_zip(kaggle_zip, "again.zip", directory).already_present  # a duplicate costs nothing
    monkeypatch.setenv("FERLIB_UPLOAD_QUOTA_MB", "lots")
    with pytest.raises(ValueError, match="FERLIB_UPLOAD_QUOTA_MB to be a number"):
        save_dataset_zip(other, "other.zip", directory)


def test_uploaded_file_names_are_made_safe(kaggle_zip, tmp_path):
    assert safe_zip_name("../../my faces (1).ZIP") == "my_faces_1.zip"
    assert safe_zip_name("C:\\Users\\me\\archive") == "archive.zip"
    assert safe_zip_name("...") == "dataset.zip"
    saved = save_dataset_zip(kaggle_zip, "../../escape.zip", tmp_path / "data")
    assert saved.path == tmp_path / "data" / "escape.zip"


def test_source_files_are_read_from_zips_and_folders_but_not_outside(kaggle_zip, tmp_path):
    member = "train/happy/Training_7.jpg"
    from_zip = read_source_files(kaggle_zip, [member])
    from_folder = read_source_files(tmp_path / "tree", [member])
    assert from_zip == from_folder and from_zip[0][:2] == b"\xff\xd8"  # a JPEG
    (tmp_path / "secret.txt").write_text("secret")
    with pytest.raises(ValueError, match=r"^Expected a file inside"):
        read_source_files(tmp_path / "tree", ["../secret.txt"])
    with pytest.raises(ValueError, match=r"^Expected a file inside"):
        read_source_files(kaggle_zip, ["train/happy/absent.jpg"])
