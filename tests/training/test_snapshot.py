"""Portable training snapshots: a stopped run moves to another folder (machine) and finishes as one run."""

import re
import shutil
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
from conftest import REPO_ROOT, stop_after_first_epoch

from ferlib.atomic import read_json
from ferlib.data.augment import AugmentationConfig
from ferlib.jobs import folder, runs
from ferlib.training import run_launch
from ferlib.training.config import TrainConfig
from ferlib.training.snapshot import read_snapshot, restore_snapshot, write_snapshot
from ferlib.training.trainer import run_training


def long_recipe(data) -> TrainConfig:
    return TrainConfig(
        architecture="vgg_fer",
        hyperparameters={"filters": (4, 8, 8, 8), "dense_units": 8, "input_crop": 40},
        augmentation=AugmentationConfig(erasing=0.5),
        batch_size=32,
        epochs=3,
        warmup_epochs=1,
        ema_momentum=0.9,
        data=str(data),
    )


def test_a_stopped_run_moves_through_a_snapshot_and_finishes_with_one_history(tmp_path, training_data):
    run_dir = run_launch.create_run(long_recipe(training_data), tmp_path / "laptop")
    with stop_after_first_epoch(run_dir):
        assert run_training(run_dir, verbose=0)["state"] == "stopped"
    stopped = keras.saving.load_model(run_dir / "last.keras")
    summary = write_snapshot(run_dir, tmp_path / "run.snapshot.zip")
    assert summary.run_id == run_dir.name and summary.epochs == 3
    assert summary.epochs_completed == read_json(run_dir / "state.json")["epochs_completed"]
    assert summary.optimizer_steps == int(stopped.optimizer.iterations)
    shutil.rmtree(run_dir)

    moved = restore_snapshot(tmp_path / "run.snapshot.zip", tmp_path / "server")
    assert moved.name == run_dir.name and folder.read_status(moved)["state"] == "stopped"
    restored = keras.saving.load_model(moved / "last.keras")
    assert int(restored.optimizer.iterations) == summary.optimizer_steps
    for before, after in zip(stopped.optimizer.variables, restored.optimizer.variables, strict=True):
        np.testing.assert_allclose(np.asarray(after), np.asarray(before), rtol=1e-3, atol=1e-6)
    for before, after in zip(stopped.weights, restored.weights, strict=True):
        np.testing.assert_allclose(np.asarray(after), np.asarray(before), rtol=1e-3, atol=1e-6)

    assert run_training(moved, resume=True, verbose=0)["state"] == "finished"
    assert [int(row["epoch"]) for row in runs.read_history(moved)] == [0, 1, 2]
    starts = [record for record in folder.read_progress(moved) if record["event"] == "start"]
    assert [record["initial_epoch"] for record in starts] == [0, summary.epochs_completed]
    steps_per_epoch = starts[0]["steps_per_epoch"]
    finished = keras.saving.load_model(moved / "last.keras")
    assert int(finished.optimizer.iterations) == summary.optimizer_steps + (3 - summary.epochs_completed) * (
        steps_per_epoch
    )


def test_large_arrays_travel_in_half_precision_and_small_ones_exactly(tmp_path, training_data):
    config = long_recipe(training_data)
    config = config.updated(epochs=1, hyperparameters={**config.hyperparameters, "filters": (4, 8, 8, 32)})
    run_dir = run_launch.create_run(config, tmp_path)
    run_training(run_dir, verbose=0)
    snapshot = read_snapshot(write_snapshot(run_dir, tmp_path / "s.zip").path)
    stored = {entry["key"]: (entry["path"], entry["stored"]) for entry in snapshot.manifest["arrays"]}
    by_path = {path: kind for path, kind in stored.values() if "average" not in path and "momentum" not in path}
    assert by_path["block4_conv2/kernel"] == "float16"  # 3 x 3 x 32 x 32 values
    assert by_path["block1_conv1/kernel"] == "float32"  # 3 x 3 x 1 x 4: small arrays stay exact
    assert by_path["block1_bn1/moving_variance"] == "float32"
    assert any(path.endswith("/iteration") and kind == "int64" for path, kind in stored.values())
    slots = {path.rsplit("_", 1)[-1]: kind for path, kind in stored.values() if "block4_conv2_kernel" in path}
    assert slots == {"average": "float16", "momentum": "bfloat16"}  # momentum keeps float32's range
    layouts = {
        entry.get("layout") for entry in snapshot.manifest["arrays"] if entry["stored"] in ("float16", "bfloat16")
    }
    assert layouts == {"byte-planes"}  # high bytes apart from low bytes: they compress better

    # A snapshot written before byte planes (format version 1) still restores, to the same weights.
    old = rewritten(snapshot.path, tmp_path / "version1.zip", as_version_1(snapshot))
    assert read_snapshot(old).manifest["version"] == 1
    models = [
        keras.saving.load_model(restore_snapshot(path, tmp_path / name) / "last.keras")
        for path, name in ((snapshot.path, "now"), (old, "before"))
    ]
    for now, before in zip(
        models[0].weights + models[0].optimizer.variables,
        models[1].weights + models[1].optimizer.variables,
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(now), np.asarray(before))


def as_version_1(snapshot):
    """A manifest change that rewrites the snapshot's arrays as format version 1 stored them: 16-bit arrays whole."""
    import hashlib
    import io

    def change(manifest):
        arrays = dict(snapshot.arrays)
        for entry in manifest["arrays"]:
            if entry.pop("layout", None) == "byte-planes":
                kind = np.uint16 if entry["stored"] == "bfloat16" else np.float16
                arrays[entry["key"]] = np.ascontiguousarray(arrays[entry["key"]].T).view(kind).reshape(entry["shape"])
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        manifest["version"], manifest["sha256"]["arrays.npz"] = 1, hashlib.sha256(buffer.getvalue()).hexdigest()
        return {"arrays.npz": buffer.getvalue()}

    return change


def test_a_truncated_or_foreign_file_is_refused_with_one_line_and_creates_nothing(tmp_path, training_data):
    run_dir = run_launch.create_run(long_recipe(training_data).updated(epochs=1), tmp_path / "runs")
    run_training(run_dir, verbose=0)
    good = write_snapshot(run_dir, tmp_path / "good.zip").path
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as handle:
        handle.writestr("hello.txt", "not a snapshot")
    altered = tmp_path / "altered.zip"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(altered, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            target.writestr(name, data.replace(b'"epochs": 1', b'"epochs": 9') if name == "config.json" else data)
    command = [sys.executable, "-m", "ferlib", "train", "--runs-dir", str(tmp_path / "elsewhere"), "--resume-from"]
    for broken, reason in (
        (truncated, "truncated or damaged"),
        (foreign, "a zip without its manifest.json"),
        (altered, "Expected config.json to match its checksum"),
        (tmp_path / "missing.zip", "which is not a file"),
    ):
        result = subprocess.run([*command, str(broken)], capture_output=True, text=True, cwd=REPO_ROOT)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: Expected ") and reason in lines[0], lines
    assert not (tmp_path / "elsewhere").exists()
    with pytest.raises(ValueError, match=r"received .*, which has it"):
        restore_snapshot(good, tmp_path / "runs")


def rewritten(source, target, change):
    """A copy of a snapshot whose manifest is changed by `change`, which may return members to add or replace."""
    import json

    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as copy:
        manifest = json.loads(original.read("manifest.json"))
        extra = change(manifest) or {}
        copy.writestr("manifest.json", json.dumps(manifest))
        for name in original.namelist():
            if name != "manifest.json" and name not in extra:
                copy.writestr(name, original.read(name))
        for name, data in extra.items():
            copy.writestr(name, data)
    return target


def test_a_snapshot_cannot_write_outside_its_run_folder(tmp_path, training_data):
    import hashlib

    run_dir = run_launch.create_run(long_recipe(training_data).updated(epochs=1), tmp_path / "runs")
    run_training(run_dir, verbose=0)
    good = write_snapshot(run_dir, tmp_path / "good.zip").path
    payload = b"not yours"

    def escape(manifest):
        manifest["sha256"]["../../escaped.txt"] = hashlib.sha256(payload).hexdigest()
        return {"../../escaped.txt": payload}

    def move(manifest):
        manifest["run_id"] = "../elsewhere"

    for change, shown in ((escape, "names files ['../../escaped.txt']"), (move, "names run id '../elsewhere'")):
        with pytest.raises(ValueError, match=re.escape(shown)):
            restore_snapshot(rewritten(good, tmp_path / "bad.zip", change), tmp_path / "there" / "runs")
    assert not (tmp_path / "there").exists() and not (tmp_path / "escaped.txt").exists()


def test_a_runs_label_travels_in_its_snapshot(tmp_path, training_data):
    run_dir = run_launch.create_run(long_recipe(training_data).updated(epochs=1), tmp_path / "here")
    run_training(run_dir, verbose=0)
    folder.write_label(run_dir, name="crops", tags=["long"], note="the next default")
    moved = restore_snapshot(write_snapshot(run_dir, tmp_path / "s.zip").path, tmp_path / "there", data=str(tmp_path))
    assert folder.read_label(moved) == folder.JobLabel("crops", ("long",), "the next default")
    assert run_launch.load_config(moved).data == str(tmp_path.resolve())  # the dataset where it lies on this machine
