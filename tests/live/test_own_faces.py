"""Your own faces: labelled photos become a FER-2013-layout dataset that trains and evaluates like any other."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import zip_tree

import ferlib.live.own_faces
from ferlib.cli import main
from ferlib.data.datasets import load_dataset
from ferlib.errors import FerError
from ferlib.live.own_faces import OwnFacesReport, collect_faces, save_face

TINY = {"filters": [8, 16, 32], "dense_units": 16}  # the layer sizes of conftest's tiny_model_path


@pytest.fixture(scope="module")
def astronaut_bgr() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def photo_tree(root: Path, astronaut: np.ndarray, training_data: Path, sad: int = 5) -> Path:
    """happy/: the astronaut photo, mirrored and moved (5 faces); sad/: 48x48 gray faces from the tiny dataset."""
    (root / "Happy").mkdir(parents=True)
    cv2.imwrite(str(root / "Happy" / "astronaut.png"), astronaut)
    cv2.imwrite(str(root / "Happy" / "mirrored.jpg"), astronaut[:, ::-1])
    for number, (top, left) in enumerate([(0, 40), (30, 0), (20, 20)]):
        cv2.imwrite(str(root / "Happy" / f"moved{number}.jpg"), astronaut[top : top + 460, left : left + 460])
    (root / "sad").mkdir()
    with zipfile.ZipFile(training_data) as archive:
        members = sorted(name for name in archive.namelist() if name.startswith("train/sad/"))[:sad]
        for member in members:
            (root / "sad" / Path(member).name).write_bytes(archive.read(member))
    return root


def files_of(dataset: Path) -> list[str]:
    return sorted(path.relative_to(dataset).as_posix() for path in dataset.rglob("*") if path.is_file())


def test_photos_become_a_kaggle_layout_dataset_with_a_seeded_stratified_split(tmp_path, astronaut_bgr, training_data):
    source = photo_tree(tmp_path / "photos", astronaut_bgr, training_data)
    report = collect_faces(source, tmp_path / "faces")

    assert isinstance(report, OwnFacesReport) and report.skipped == []
    assert report.counts == {"train": {"happy": 4, "sad": 4}, "test": {"happy": 1, "sad": 1}}
    assert report.summary() == f"faces=10 train=8 test=2 skipped=0 classes=happy,sad output={tmp_path / 'faces'}"
    written = files_of(tmp_path / "faces")
    assert len(written) == 10 and all(re.fullmatch(r"(train|test)/(happy|sad)/[0-9a-f]{16}\.png", n) for n in written)
    for name in written:
        face = cv2.imread(str(tmp_path / "faces" / name), cv2.IMREAD_UNCHANGED)
        assert face.shape == (48, 48) and face.dtype == np.uint8

    dataset = load_dataset(tmp_path / "faces")  # Kaggle's layout: test is test, validation comes from train
    counts = dataset.counts()
    assert dataset.report.layout == "kaggle" and dataset.report.bad_files == []
    assert counts["test"]["happy"] == counts["test"]["sad"] == 1
    assert counts["train"]["happy"] + counts["validation"]["happy"] == 4

    assert files_of(collect_faces(source, tmp_path / "again").output) == written  # seeded
    other = collect_faces(source, tmp_path / "other", seed=5, test_fraction=0.5)
    assert other.counts == {"train": {"happy": 3, "sad": 3}, "test": {"happy": 2, "sad": 2}}
    assert not list(tmp_path.glob(".*partial"))


def test_a_zip_with_a_folder_around_the_classes_gives_the_same_faces(tmp_path, astronaut_bgr, training_data):
    source = photo_tree(tmp_path / "photos", astronaut_bgr, training_data)
    (source / ".DS_Store").write_bytes(b"\0")
    archive = zip_tree(source, tmp_path / "photos.zip", wrapper="my photos/")
    with zipfile.ZipFile(archive, "a") as handle:
        handle.writestr("__MACOSX/my photos/Happy/._astronaut.png", b"resource fork")

    report = collect_faces(archive, tmp_path / "from_zip")
    assert report.skipped == [] and report.total() == 10
    assert files_of(tmp_path / "from_zip") == files_of(collect_faces(source, tmp_path / "from_folder").output)

    with zipfile.ZipFile(tmp_path / "escaping.zip", "w") as handle:  # the archive helpers' checks apply
        handle.write(source / "Happy" / "astronaut.png", "happy/astronaut.png")
        handle.write(source / "Happy" / "mirrored.jpg", "../happy/mirrored.jpg")
    with pytest.raises(FerError, match=r"^Expected zip entries that stay inside the dataset folder; received a '\.\.'"):
        collect_faces(tmp_path / "escaping.zip", tmp_path / "escaped")
    assert not (tmp_path / "escaped").exists()


def test_a_folder_not_named_after_an_emotion_refuses_the_whole_source(tmp_path, astronaut_bgr, training_data):
    source = photo_tree(tmp_path / "photos", astronaut_bgr, training_data, sad=2)
    (source / "cats").mkdir()
    cv2.imwrite(str(source / "cats" / "tom.png"), astronaut_bgr)
    expected = (
        "Expected class folders named after emotions (angry, disgust, fear, happy, sad, surprise, neutral); "
        "received 'cats'"
    )
    with pytest.raises(FerError, match=f"^{re.escape(expected)}$"):
        collect_faces(source, tmp_path / "faces")
    with pytest.raises(FerError, match=re.escape(expected)):
        collect_faces(zip_tree(source, tmp_path / "photos.zip"), tmp_path / "faces")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["photos", "photos.zip"]  # nothing written


def test_unreadable_faceless_and_duplicate_files_are_skipped_and_listed(tmp_path, astronaut_bgr, training_data):
    source = photo_tree(tmp_path / "photos", astronaut_bgr, training_data, sad=2)
    cv2.imwrite(str(source / "Happy" / "gray.png"), cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY))  # the same face
    (source / "Happy" / "copy.png").write_bytes((source / "Happy" / "astronaut.png").read_bytes())  # the same bytes
    (source / "Happy" / "broken.jpg").write_bytes(b"not a photo")
    cv2.imwrite(str(source / "sad" / "wall.png"), np.full((200, 300, 3), 128, np.uint8))  # too large for a face
    (source / "sad" / "notes.txt").write_text("a note")
    (source / "readme.md").write_text("my photos")

    report = collect_faces(source, tmp_path / "faces")
    reasons = dict(report.skipped)
    assert list(reasons) == sorted(reasons)
    assert reasons == {
        "Happy/broken.jpg": "Expected a decodable image (JPEG, PNG, BMP, TIFF, WebP); received undecodable bytes",
        "Happy/copy.png": "the same file as Happy/astronaut.png",
        "Happy/gray.png": "the same face as Happy/astronaut.png",
        "readme.md": "not inside a class folder (<class>/<photo>)",
        "sad/notes.txt": "not a photo (jpg, png, bmp or webp)",
        "sad/wall.png": "no face found by the haar detector",
    }
    assert report.total() == 7 and report.counts["test"] == {"happy": 1, "sad": 1}


def test_a_bug_while_reading_a_photo_is_raised_not_listed_as_a_skipped_file(
    tmp_path, astronaut_bgr, training_data, monkeypatch
):
    source = photo_tree(tmp_path / "photos", astronaut_bgr, training_data, sad=1)

    def bug(image, detector):
        raise TypeError("a bug in face finding")

    monkeypatch.setattr(ferlib.live.own_faces, "face_from_photo", bug)
    with pytest.raises(TypeError, match="a bug in face finding"):
        collect_faces(source, tmp_path / "faces")


def test_an_output_folder_that_holds_files_is_refused_and_an_empty_one_filled(tmp_path, astronaut_bgr, training_data):
    source = photo_tree(tmp_path / "photos", astronaut_bgr, training_data, sad=2)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(FerError, match=r"^Expected a new or empty output folder; received .*taken'"):
        collect_faces(source, tmp_path / "taken")
    with pytest.raises(FerError, match=r"^Expected an output folder outside the photos' folder"):
        collect_faces(source, source / "faces")
    with pytest.raises(FerError, match=r"^Expected a test fraction between 0 and 1; received 1.0"):
        collect_faces(source, tmp_path / "faces", test_fraction=1.0)
    (tmp_path / "empty").mkdir()
    (source / "neutral").mkdir()
    cv2.imwrite(str(source / "neutral" / "alone.png"), np.full((48, 48), 100, np.uint8))
    report = collect_faces(source, tmp_path / "empty", test_fraction=0.9)
    assert report.counts == {
        "train": {"happy": 1, "sad": 1, "neutral": 1},
        "test": {"happy": 4, "sad": 1, "neutral": 0},
    }


def test_save_face_stores_a_face_once_and_sends_every_fifth_to_test(tmp_path, astronaut_bgr):
    generator = np.random.default_rng(0)
    dataset = tmp_path / "mine"
    splits = []
    for _ in range(12):
        path = save_face(generator.integers(0, 256, (48, 48), dtype=np.uint8), "happy", dataset)
        splits.append(path.parent.parent.name)
    assert [index for index, split in enumerate(splits, start=1) if split == "test"] == [2, 7, 12]

    face = generator.integers(0, 256, (48, 48, 1), dtype=np.uint8)
    first = save_face(face, "Sad", dataset)
    assert save_face(face[:, :, 0], "sad", dataset) == first and first.parent == dataset / "train" / "sad"
    assert len(list((dataset / "train" / "sad").iterdir())) == 1
    np.testing.assert_array_equal(cv2.imread(str(first), cv2.IMREAD_UNCHANGED), face[:, :, 0])

    # A photo: its face is cut out as collect_faces does (the same pixels, the same file name).
    photo = save_face(astronaut_bgr, "happy", tmp_path / "snapshots")
    (tmp_path / "photos" / "happy").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "photos" / "happy" / "me.png"), astronaut_bgr)
    collect_faces(tmp_path / "photos", tmp_path / "collected")
    assert files_of(tmp_path / "collected") == [f"train/happy/{photo.name}"]
    assert save_face(cv2.imencode(".png", astronaut_bgr)[1].tobytes(), "happy", tmp_path / "snapshots") == photo

    with pytest.raises(FerError, match=r"^Expected emotions among angry, .*; received 'cats'"):
        save_face(face, "cats", dataset)
    with pytest.raises(FerError, match=r"^Expected a photo with a face, or a 48x48 face; received a 300x200 photo"):
        save_face(np.full((200, 300), 90, np.uint8), "happy", dataset)


def test_the_faces_command_lists_skipped_files_then_its_summary(tmp_path, astronaut_bgr, training_data, capsys):
    source = photo_tree(tmp_path / "photos", astronaut_bgr, training_data, sad=2)
    (source / "sad" / "broken.png").write_bytes(b"\x89PNG broken")
    output = tmp_path / "faces"
    assert main(["faces", str(source), "--output", str(output), "--test-fraction", "0.25"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("skipped sad/broken.png: Expected a decodable image")
    assert lines[-1] == f"faces=7 train=5 test=2 skipped=1 classes=happy,sad output={output}"

    (source / "dogs").mkdir()
    (source / "dogs" / "rex.jpg").write_bytes(b"woof")
    assert main(["faces", str(source), "--output", str(tmp_path / "more")]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: Expected class folders named after emotions") and error.endswith("'dogs'")
    assert main(["faces", str(tmp_path / "missing"), "--output", str(tmp_path / "more")]) == 2
    assert "which does not exist" in capsys.readouterr().err
    assert not (tmp_path / "more").exists()


def test_own_faces_fine_tune_a_seven_class_model_and_evaluate_it(
    tmp_path, astronaut_bgr, training_data, tiny_model_path, capsys
):
    source = photo_tree(tmp_path / "photos", astronaut_bgr, training_data)
    faces = collect_faces(source, tmp_path / "faces").output
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"architecture": "compact_cnn", "hyperparameters": TINY, "batch_size": 8}))
    common = ["--config", str(config), "--classes", "happy,sad", "--initial-model", str(tiny_model_path)]
    runs = ["--epochs", "1", "--quiet", "--runs-dir", str(tmp_path / "runs")]
    assert main(["train", "--data", str(faces), *common, *runs]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("status=finished run=")
    (run,) = (path for path in (tmp_path / "runs").iterdir() if path.is_dir())
    assert json.loads((run / "best.json").read_text())["class_names"] == ["happy", "sad"]

    # The seven-class starting model, scored on the faces there are: happy and sad ones only.
    metrics = tmp_path / "metrics.json"
    evaluate = ["evaluate", "--data", str(faces), "--split", "test", "--json", str(metrics)]
    assert main([*evaluate, "--model", str(tiny_model_path)]) == 0
    scored = json.loads(metrics.read_text())
    assert scored["n"] == 2 and scored["left_out"] == 0
    assert {name: row["support"] for name, row in scored["per_class"].items() if row["support"]} == {
        "happy": 1,
        "sad": 1,
    }
    assert main([*evaluate, "--model", str(run / "best.keras")]) == 0
    assert list(json.loads(metrics.read_text())["per_class"]) == ["happy", "sad"]
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith("n=2")

    # Too few faces to hold any back for validation: a sentence saying so, not a crash.
    small = photo_tree(tmp_path / "small", astronaut_bgr, training_data, sad=2)
    for moved in small.glob("Happy/moved*.jpg"):
        moved.unlink()
    assert collect_faces(small, tmp_path / "small_faces").counts["train"] == {"happy": 1, "sad": 1}
    assert main(["train", "--data", str(tmp_path / "small_faces"), *common, *runs]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: Expected validation images in") and "a class needs 2 or more" in error
