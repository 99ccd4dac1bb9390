"""The Dataset page under Streamlit's AppTest: empty state, a generated dataset, uploads, Kaggle help, real data."""

import importlib.util
import shutil
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO_ROOT, SHARED_ZIP, write_kaggle_tree, zip_tree
from streamlit.testing.v1 import AppTest

PAGE = "pages/dataset.py"


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch, tmp_path):
    """An empty data folder, a home without Kaggle credentials and fresh Streamlit caches for every test."""
    import streamlit as st

    data_directory = tmp_path / "data"
    data_directory.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("FERLIB_DATA_DIR", str(data_directory))
    monkeypatch.setenv("HOME", str(home))
    for variable in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(variable, raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()
    yield data_directory
    st.cache_data.clear()


def open_dataset_page(timeout: float = 120) -> AppTest:
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=timeout)
    app.run()
    return app.switch_page(PAGE).run()


def button(app: AppTest, label: str):
    return next(candidate for candidate in app.button if candidate.label == label)


def metric_values(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def write_flawed_dataset(root: Path) -> Path:
    """A Kaggle tree with one train face copied into validation, one flat image and one broken file."""
    write_kaggle_tree(root, {"train": 3, "test": 2})
    shutil.copy(root / "train" / "happy" / "Training_10.jpg", root / "test" / "happy" / "PublicTest_copy.jpg")
    cv2.imwrite(str(root / "train" / "sad" / "Training_flat.png"), np.full((48, 48), 120, np.uint8))
    (root / "train" / "fear" / "Training_broken.jpg").write_bytes(b"not an image")
    return root


def test_without_a_dataset_the_page_says_how_to_add_one(isolated_environment):
    app = open_dataset_page()
    assert not app.exception
    assert app.title[0].value == "Dataset"
    infos = [info.value for info in app.info]
    assert any(text.startswith("No dataset found.") and str(isolated_environment) in text for text in infos)
    assert any("kaggle.json" in text and "KAGGLE_USERNAME" in text for text in infos)
    assert app.file_uploader[0].label == "A dataset .zip"
    assert not app.metric and not app.selectbox


def test_a_generated_dataset_shows_counts_samples_and_its_flaws(isolated_environment, tmp_path):
    zip_tree(write_flawed_dataset(tmp_path / "tree"), isolated_environment / "fer_small.zip")
    app = open_dataset_page()
    assert not app.exception
    assert app.selectbox(key="dataset_source").value == str(isolated_environment / "fer_small.zip")
    metrics = metric_values(app)
    assert metrics["Images"] == str(7 * 3 + 7 * 2 + 2)
    assert metrics["Train"] == str(7 * 3 + 1) and metrics["Validation"] == str(7 * 2 + 1)
    assert metrics["Cross-split duplicate pairs"] == "1"
    assert metrics["Within-split duplicate pairs"] == "0"
    assert metrics["Near-blank images"] == "1"
    assert metrics["Unreadable files"] == "1"
    (load_report,) = [expander for expander in app.expander if expander.label == "Load report"]
    (skipped,) = load_report.dataframe
    assert list(skipped.value["file"]) == ["train/fear/Training_broken.jpg"]
    assert any("identical pairs sit in different splits" in warning.value for warning in app.warning)
    assert len(app.get("plotly_chart")) == 2  # classes (split totals are the figures above), pixel histograms
    captions = [image.captions for image in app.image]
    assert len(captions) == 7 * 3 + 3  # raw, preprocessed, augmented rows per class; mean faces; duplicates; blank
    mean_face_captions = captions[7 * 3]
    assert "😄 happy (6)" in mean_face_captions and "😢 sad (6)" in mean_face_captions
    assert ["train, validation · 2×"] in captions
    assert ["Training_flat.png"] in captions
    assert not app.error


def test_an_unusable_dataset_shows_an_explained_error(isolated_environment):
    with zipfile.ZipFile(isolated_environment / "not_faces.zip", "w") as handle:
        handle.writestr("notes/readme.txt", "no images here")
    app = open_dataset_page()
    assert not app.exception
    assert len(app.error) == 1
    assert app.error[0].value.startswith("This dataset could not be loaded; choose another or add one above. (Expected")
    assert not app.metric


def test_switching_split_and_seed_reruns_without_errors(isolated_environment, tmp_path):
    zip_tree(write_kaggle_tree(tmp_path / "tree", {"train": 3, "test": 2}), isolated_environment / "fer.zip")
    app = open_dataset_page()
    app.selectbox(key="samples-split").set_value("validation")
    app.number_input(key="samples-seed").set_value(3)
    app.toggle(key="pixels-difference").set_value(True)
    app.run()
    assert not app.exception and not app.error
    assert metric_values(app)["Cross-split duplicate pairs"] == "0"
    assert any("No two images are identical" in success.value for success in app.success)


def test_an_uploaded_zip_is_checked_saved_and_selected(isolated_environment, tmp_path):
    archive = zip_tree(write_kaggle_tree(tmp_path / "tree", {"train": 2, "test": 1}), tmp_path / "my faces.zip")
    app = open_dataset_page()
    app.file_uploader(key="dataset_upload").upload("my faces.zip", archive.read_bytes(), "application/zip")
    app.run()
    button(app, "Check and save").click().run()
    assert not app.exception
    saved = isolated_environment / "my_faces.zip"
    assert saved.read_bytes() == archive.read_bytes()
    assert any("was checked and saved as" in success.value for success in app.success)
    assert app.selectbox(key="dataset_source").value == str(saved)
    assert metric_values(app)["Images"] == str(7 * 3)


def test_a_kaggle_download_is_stored_like_an_upload_never_over_another_file(
    isolated_environment, tmp_path, monkeypatch
):
    """The download used to be written straight to data/fer2013.zip, over an upload of the same name."""
    import importlib.machinery
    import sys
    import types

    download = zip_tree(write_kaggle_tree(tmp_path / "kaggle", {"train": 2, "test": 1}), tmp_path / "download.zip")

    class FakeKaggleApi:
        def authenticate(self) -> None:
            pass

        def dataset_download_files(self, dataset, path, unzip, quiet, force) -> None:
            assert dataset == "msambare/fer2013" and Path(path) != isolated_environment
            shutil.copy(download, Path(path) / "fer2013.zip")

    for name in ("kaggle", "kaggle.api", "kaggle.api.kaggle_api_extended"):
        module = types.ModuleType(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
        monkeypatch.setitem(sys.modules, name, module)
    sys.modules["kaggle.api.kaggle_api_extended"].KaggleApi = FakeKaggleApi
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "secret")
    mine = zip_tree(write_kaggle_tree(tmp_path / "mine", {"train": 1, "test": 1}), isolated_environment / "fer2013.zip")
    my_bytes = mine.read_bytes()

    app = open_dataset_page()
    button(app, "Download msambare/fer2013").click().run()
    assert not app.exception and not app.error
    assert mine.read_bytes() == my_bytes
    (stored,) = [path for path in isolated_environment.glob("*.zip") if path != mine]
    assert stored.read_bytes() == download.read_bytes()
    assert any("downloaded: it was checked and saved as" in success.value for success in app.success)
    assert app.selectbox(key="dataset_source").value == str(stored)


def test_an_unsafe_upload_is_refused_with_an_explanation(isolated_environment, tmp_path):
    archive = zip_tree(write_kaggle_tree(tmp_path / "tree", {"train": 1, "test": 1}), tmp_path / "evil.zip")
    with zipfile.ZipFile(archive, "a") as handle:
        handle.writestr("../../outside.txt", b"escaped")
    app = open_dataset_page()
    app.file_uploader(key="dataset_upload").upload("evil.zip", archive.read_bytes(), "application/zip")
    app.run()
    button(app, "Check and save").click().run()
    assert not app.exception
    assert any("The zip was not saved: Expected zip entries that stay inside" in error.value for error in app.error)
    assert list(isolated_environment.iterdir()) == []


def test_kaggle_credentials_without_the_package_explain_how_to_install_it(monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "not-a-real-key")
    app = open_dataset_page()
    assert not app.exception
    labels = [button.label for button in app.button]
    if importlib.util.find_spec("kaggle") is None:
        assert any("`pip install kaggle`" in info.value and "credentials were found" in info.value for info in app.info)
        assert not any(label.startswith("Download") for label in labels)
    else:
        assert "Download msambare/fer2013" in labels


@pytest.mark.real_data
@pytest.mark.skipif(not SHARED_ZIP.exists(), reason=f"{SHARED_ZIP} not present")
def test_the_shared_fer2013_zip_renders_with_its_known_leakage(monkeypatch):
    monkeypatch.setenv("FERLIB_DATA_DIR", str(SHARED_ZIP.parent))
    app = open_dataset_page(timeout=600)
    assert not app.exception and not app.error
    metrics = metric_values(app)
    assert metrics["Images"] == "32,298"
    assert metrics["Cross-split duplicate pairs"] == "371"
    assert metrics["Near-blank images"] == "12"
