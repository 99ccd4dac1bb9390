"""Shared fixtures: tiny generated datasets in every supported layout, written under tmp_path."""

from __future__ import annotations

import contextlib
import os
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ferlib.classes import EMOTIONS
from ferlib.jobs import folder

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_ZIP = REPO_ROOT.parent / "shared" / "data" / "fer2013.zip"


def synthetic_face(label: int, generator: np.random.Generator, size: int = 48) -> np.ndarray:
    """A gray image whose stripe frequency encodes its class, plus noise: learnable, deterministic."""
    rows = np.arange(size, dtype=np.float32)[:, None]
    pattern = 127 + 100 * np.sin(rows * (label + 1) * np.pi / size)
    image = np.repeat(pattern, size, axis=1) + generator.normal(0, 20, (size, size))
    return np.clip(image, 0, 255).astype(np.uint8)


def write_kaggle_tree(root: Path, per_class: dict[str, int], seed: int = 0, prefixes: bool = True) -> Path:
    """train/<class>/Training_N.jpg and test/<class>/PublicTest_N.jpg (or unprefixed names)."""
    generator = np.random.default_rng(seed)
    counter = 0
    for split_folder, prefix in (("train", "Training"), ("test", "PublicTest")):
        for label, name in enumerate(EMOTIONS):
            folder = root / split_folder / name
            folder.mkdir(parents=True, exist_ok=True)
            count = per_class[split_folder] if isinstance(per_class.get(split_folder), int) else 0
            for _ in range(count):
                counter += 1
                file_name = f"{prefix}_{counter}.jpg" if prefixes else f"{counter}.jpg"
                cv2.imwrite(str(folder / file_name), synthetic_face(label, generator))
    return root


def zip_tree(root: Path, archive: Path, wrapper: str = "") -> Path:
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                handle.write(path, f"{wrapper}{path.relative_to(root).as_posix()}")
    return archive


@pytest.fixture(scope="session")
def kaggle_dir(tmp_path_factory) -> Path:
    """A small Kaggle-layout folder: 12 train and 4 test images per class."""
    return write_kaggle_tree(tmp_path_factory.mktemp("kaggle"), {"train": 12, "test": 4})


@pytest.fixture(scope="session")
def training_data(tmp_path_factory) -> Path:
    """A few hundred learnable images (40 train + 8 validation per class) as a Kaggle zip."""
    root = write_kaggle_tree(tmp_path_factory.mktemp("training_tree"), {"train": 40, "test": 8}, seed=1)
    return zip_tree(root, tmp_path_factory.mktemp("training_zip") / "fer_small.zip")


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory):
    """Session fixtures (the tiny trained model) decode into a temporary cache, never the user's ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FERLIB_CACHE_DIR", str(tmp_path_factory.mktemp("session_cache")))
        yield


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own dataset cache, so tests never see each other's decoded data."""
    monkeypatch.setenv("FERLIB_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def studio_folders(tmp_path, monkeypatch):
    """Empty runs, searches and data folders, seen by the app's pages through the environment."""
    from types import SimpleNamespace

    paths = SimpleNamespace(runs=tmp_path / "runs", searches=tmp_path / "searches", data=tmp_path / "data")
    for path in vars(paths).values():
        path.mkdir()
    monkeypatch.setenv("FERLIB_RUNS_DIR", str(paths.runs))
    monkeypatch.setenv("FERLIB_SEARCHES_DIR", str(paths.searches))
    monkeypatch.setenv("FERLIB_DATA_DIR", str(paths.data))
    return paths


def train_tiny(tmp_path_factory, training_data, **changes) -> Path:
    """A compact model trained for one epoch on the generated data, saved with its sidecar (its run's best.keras)."""
    from ferlib.jobs.runs import BEST_MODEL
    from ferlib.training.config import TrainConfig
    from ferlib.training.run_launch import create_run
    from ferlib.training.trainer import run_training

    config = TrainConfig(
        architecture="compact_cnn",
        epochs=1,
        batch_size=32,
        data=str(training_data),
        hyperparameters={"filters": (8, 16, 32), "dense_units": 16},
        **changes,
    )
    run_dir = create_run(config, tmp_path_factory.mktemp("tiny_runs"))
    run_training(run_dir, verbose=0)
    return run_dir / BEST_MODEL


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory, training_data) -> Path:
    """A compact seven-class model trained for one epoch on the generated data, saved with its sidecar."""
    return train_tiny(tmp_path_factory, training_data)


@pytest.fixture(scope="session")
def tiny_happy_sad_path(tmp_path_factory, training_data) -> Path:
    """A compact model of two classes (happy, sad) trained for one epoch on the generated data, with its sidecar."""
    return train_tiny(tmp_path_factory, training_data, classes=["happy", "sad"])


@contextlib.contextmanager
def stop_after_first_batch(run_dir: Path):
    """While inside, a training session requests its own stop after its first batch: it stops inside an epoch."""
    from ferlib.training.callbacks import ProgressWriter

    original = ProgressWriter.on_train_batch_end

    def on_train_batch_end(self, batch, logs=None):
        original(self, batch, logs)
        folder.request_stop(run_dir)

    ProgressWriter.on_train_batch_end = on_train_batch_end
    try:
        yield
    finally:
        ProgressWriter.on_train_batch_end = original


@contextlib.contextmanager
def stop_after_first_epoch(run_dir: Path):
    """While inside, a training run requests its own stop right after epoch 1, as a user pressing Stop would."""
    from ferlib.training.callbacks import ProgressWriter

    original = ProgressWriter.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 0:
            folder.request_stop(run_dir)

    ProgressWriter.on_epoch_end = on_epoch_end
    try:
        yield
    finally:
        ProgressWriter.on_epoch_end = original
