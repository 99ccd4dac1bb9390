"""Training runs end to end on generated data: run folder contents, stop, resume, SIGKILL, failure."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import stop_after_first_batch, stop_after_first_epoch

from ferlib.atomic import read_json
from ferlib.evaluation.lineage import model_lineage
from ferlib.jobs import folder, runs
from ferlib.nets.modelio import load_model, read_metadata
from ferlib.training import run_launch
from ferlib.training.config import TrainConfig
from ferlib.training.trainer import run_training, session_seed

TINY = {"filters": (8, 16, 32), "dense_units": 16}


def tiny_config(data, **changes) -> TrainConfig:
    return TrainConfig(architecture="compact_cnn", hyperparameters=TINY, batch_size=32, data=str(data), **changes)


def test_one_epoch_run_writes_a_self_describing_folder(tmp_path, training_data):
    run_dir = run_launch.create_run(tiny_config(training_data, epochs=1), tmp_path)
    status = run_training(run_dir, verbose=0)
    assert status["state"] == "finished"
    for name in (
        "config.json",
        "status.json",
        "progress.jsonl",
        "history.csv",
        "best.keras",
        "best.json",
        "last.keras",
        "metrics.json",
        "state.json",
    ):
        assert (run_dir / name).exists(), name
    assert any((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    events = [record["event"] for record in folder.read_progress(run_dir)]
    assert events[0] == "start" and "batch" in events and events[-1] == "epoch"
    from ferlib.training.config import RECIPE_REVISION

    assert folder.read_progress(run_dir)[0]["recipe_revision"] == RECIPE_REVISION  # the session's recipe, for its card
    epoch = folder.read_progress(run_dir)[-1]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "elapsed", "eta_seconds"):
        assert key in epoch, key
    metrics = read_json(run_dir / "metrics.json")
    assert metrics["validation"]["n"] == 56
    assert set(metrics["validation"]) >= {"accuracy", "macro_f1", "per_class", "confusion_matrix", "top2_accuracy"}
    sidecar = read_metadata(run_dir / "best.keras")
    assert sidecar["class_names"][0] == "angry" and sidecar["input_size"] == [48, 48, 1]
    assert sidecar["config"]["architecture"] == "compact_cnn"
    assert "validation_accuracy" in sidecar["metrics"]
    model, _ = load_model(run_dir / "best.keras")
    assert model.output_shape == (None, 7)


def test_stop_request_then_resume_continues_the_history(tmp_path, training_data):
    run_dir = run_launch.create_run(tiny_config(training_data, epochs=3), tmp_path)
    folder.request_stop(run_dir)  # Stop pressed while the process started up: it stops before training
    status = run_training(run_dir, verbose=0)
    assert status["state"] == "stopped" and status["reason"] == "stopped before training started"
    assert not runs.has_trained(run_dir) and not folder.stop_requested(run_dir)
    with stop_after_first_epoch(run_dir):
        status = run_training(run_dir, verbose=0)
    assert status["state"] == "stopped"
    state = read_json(run_dir / "state.json")
    assert state["epochs_completed"] in (1, 2)
    assert (run_dir / "last.keras").exists()
    partial = [r for r in folder.read_progress(run_dir) if r["event"] == "epoch" and r["partial"]]
    assert len(partial) == 1 and partial[0]["epoch"] == state["epochs_completed"] + 1

    status = run_training(run_dir, resume=True, verbose=0)
    assert status["state"] == "finished"
    assert [int(row["epoch"]) for row in runs.read_history(run_dir)] == [0, 1, 2]
    assert read_json(run_dir / "state.json")["epochs_completed"] == 3
    seeds = [r["seed"] for r in folder.read_progress(run_dir) if r["event"] == "start"]
    assert seeds[0] == 2013 and len(seeds) == 2 and seeds[1] != seeds[0]


def test_a_run_stopped_inside_an_epoch_restarts_it_on_a_new_seed(tmp_path, training_data):
    """The stopped epoch's updates are kept and the epoch restarts: on its session's seed it would retrain the
    batches it just trained on, identically augmented (a new seed draws new batches: the test below)."""
    run_dir = run_launch.create_run(tiny_config(training_data, epochs=2), tmp_path)
    with stop_after_first_batch(run_dir):
        assert run_training(run_dir, verbose=0)["state"] == "stopped"
    assert read_json(run_dir / "state.json")["epochs_completed"] == 0
    stopped_at = read_metadata(run_dir / "last.keras")["stopped_at_step"]
    assert stopped_at >= 1

    assert run_training(run_dir, resume=True, verbose=0)["state"] == "finished"
    seeds = [r["seed"] for r in folder.read_progress(run_dir) if r["event"] == "start"]
    config = run_launch.load_config(run_dir)
    assert seeds == [config.seed, session_seed(config, 0, stopped_at)] and seeds[1] != seeds[0]
    assert [int(row["epoch"]) for row in runs.read_history(run_dir)] == [0, 1]
    assert "stopped_at_step" not in read_metadata(run_dir / "last.keras")  # a whole epoch ended the run


def test_a_resumed_session_draws_new_batches_reproducibly(training_data):
    """Resuming with the first session's seed would replay its shuffles and augmentations epoch for epoch.

    Augmentation is switched off here: Keras' random layers inside tf.data repeat only across processes,
    so the shuffle order is what can be compared within one.
    """
    import keras
    import numpy as np

    from ferlib.data.augment import AugmentationConfig
    from ferlib.data.datasets import load_dataset
    from ferlib.training.trainer import make_training_pipeline, session_seed

    off = AugmentationConfig(horizontal_flip=False, translate=0.0, rotate_degrees=0.0, zoom=0.0)
    config = tiny_config(training_data, epochs=3, augmentation=off)
    images, labels = load_dataset(training_data).subset("train")

    def first_batch(initial_epoch: int) -> np.ndarray:
        seed = session_seed(config, initial_epoch)
        keras.utils.set_random_seed(seed)
        return next(iter(make_training_pipeline(images, labels, config, seed=seed)))[0].numpy()

    assert session_seed(config, 0) == config.seed
    assert len({session_seed(config, epoch) for epoch in range(1, 50)}) == 49
    assert len({session_seed(config, 3), session_seed(config, 3, 700), session_seed(config, 3, 701)}) == 3
    np.testing.assert_array_equal(first_batch(0), first_batch(0))
    np.testing.assert_array_equal(first_batch(2), first_batch(2))
    assert not np.array_equal(first_batch(0), first_batch(2))


def test_sigkilled_run_leaves_a_readable_folder_and_resumes(tmp_path, training_data):
    config = tiny_config(training_data, epochs=40)
    run_dir = run_launch.create_run(config, tmp_path)
    environment = dict(os.environ)
    process = subprocess.Popen(
        [sys.executable, "-m", "ferlib", "train", "--run-dir", str(run_dir), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=environment,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        state = read_json(run_dir / "state.json", default={}) or {}
        if state.get("epochs_completed", 0) >= 2:
            break
        time.sleep(0.2)
    else:
        process.kill()
        process.wait()
        pytest.fail(f"the training process saved {state.get('epochs_completed', 0)} of 2 epochs in 120 s")
    process.send_signal(signal.SIGKILL)
    process.wait()
    for path in run_dir.glob("*.json"):
        json.loads(path.read_text())  # every JSON file parses
    assert folder.read_status(run_dir)["state"] == "interrupted"
    completed = read_json(run_dir / "state.json")["epochs_completed"]
    assert completed >= 2
    load_model(run_dir / "last.keras")

    config_path = run_dir / "config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "epochs": completed + 1}))
    status = run_training(run_dir, resume=True, verbose=0)
    assert status["state"] == "finished"
    assert [int(row["epoch"]) for row in runs.read_history(run_dir)] == list(range(completed + 1))


def test_a_failing_run_records_the_error(tmp_path):
    run_dir = run_launch.create_run(tiny_config(tmp_path / "nowhere.zip", epochs=1), tmp_path / "runs")
    with pytest.raises(ValueError):
        run_training(run_dir, verbose=0)
    status = folder.read_status(run_dir)
    assert status["state"] == "failed"
    assert "does not exist" in status["error"]


def test_config_validation_messages():
    with pytest.raises(ValueError, match="Expected architecture among"):
        TrainConfig(architecture="resnet9000")
    with pytest.raises(ValueError, match="Expected epochs >= 1"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_dict({"epochs": 2, "learning_rat": 0.1})
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()


def test_listing_runs(tmp_path, training_data):
    first = run_launch.create_run(tiny_config(training_data), tmp_path)
    summaries = runs.list_runs(tmp_path)
    assert [summary.path for summary in summaries] == [first]
    assert summaries[0].state == "created"
    assert runs.list_runs(Path(tmp_path) / "missing") == []


def test_a_warm_start_model_of_other_layer_sizes_is_refused_before_the_run_starts(tmp_path, training_data):
    from ferlib.nets.modelio import check_initial_model

    first = run_launch.create_run(tiny_config(training_data, epochs=1), tmp_path)
    run_training(first, verbose=0)
    assert check_initial_model(first / "best.keras", "compact_cnn", TINY) == (first / "best.keras").resolve()
    with pytest.raises(ValueError, match=r"^Expected initial_model to be a compact_cnn with .*; received best.keras"):
        check_initial_model(first / "best.keras", "compact_cnn", {"filters": (12, 24, 48), "dense_units": 16})


def test_initial_model_warm_starts_a_new_run(tmp_path, training_data):
    import keras
    import numpy as np

    from ferlib.nets.architectures import build_model
    from ferlib.training.trainer import load_initial_weights

    first = run_launch.create_run(tiny_config(training_data, epochs=1), tmp_path)
    run_training(first, verbose=0)
    source = keras.saving.load_model(first / "best.keras", compile=False)

    model = build_model("compact_cnn", **TINY)
    load_initial_weights(model, first / "best.keras")
    for loaded, saved in zip(model.get_weights(), source.get_weights(), strict=True):
        np.testing.assert_array_equal(loaded, saved)

    # A second run from those weights, with a learning rate too small to move them: its checkpoint keeps them.
    second_config = tiny_config(
        training_data, epochs=1, initial_model=str(first / "best.keras"), schedule="constant", learning_rate=1e-9
    )
    second = run_launch.create_run(second_config, tmp_path)
    assert run_training(second, verbose=0)["state"] == "finished"
    continued = keras.saving.load_model(second / "last.keras", compile=False)
    source_kernels = [layer.kernel.numpy() for layer in source.layers if hasattr(layer, "kernel")]
    continued_kernels = [layer.kernel.numpy() for layer in continued.layers if hasattr(layer, "kernel")]
    assert len(source_kernels) == len(continued_kernels) > 0
    for before, after in zip(source_kernels, continued_kernels, strict=True):
        np.testing.assert_allclose(after, before, atol=1e-5)
    recorded = json.loads((second / "initial_model.json").read_text())
    assert recorded["initial_model"] == str((first / "best.keras").resolve())
    assert recorded["lineage"]["epochs_completed"] == 1 and recorded["lineage"]["stages"][0]["source_run"] == first.name

    # The best checkpoint's sidecar carries the stages, so a copy outside its run folder keeps its history.
    copied = tmp_path / "elsewhere" / "model.keras"
    copied.parent.mkdir()
    shutil.copy(second / "best.keras", copied)
    shutil.copy(second / "best.json", copied.with_suffix(".json"))
    lineage = model_lineage(copied)
    assert [stage["source_run"] for stage in lineage["stages"]] == [first.name, second.name]
    assert lineage["epochs_completed"] == 2 and [row["epoch"] for row in lineage["history"]] == [1, 2]
    assert lineage["stages"][1]["validation_accuracy"] == read_json(second / "state.json")["best_val_accuracy"]
    assert read_metadata(copied)["lineage_complete"] is True

    with pytest.raises(ValueError, match=r"shaped like the configured 'compact_cnn' \(22 arrays, 4,127 parameters\)"):
        load_initial_weights(build_model("compact_cnn", filters=(8, 16, 16), dense_units=16), first / "best.keras")
    with pytest.raises(ValueError, match=r"Expected initial_model to be an existing \.keras file"):
        load_initial_weights(model, tmp_path / "missing.keras")


def test_a_run_says_what_it_is_doing_and_a_stopped_epoch_has_no_eta(tmp_path, training_data, monkeypatch):
    from ferlib.training import callbacks, trainer

    run_dir = run_launch.create_run(tiny_config(training_data, epochs=2), tmp_path)
    phases = []
    original_begin, original_evaluate = callbacks.ProgressWriter.on_train_begin, trainer.evaluate_modes

    def on_train_begin(self, logs=None):
        phases.append(folder.read_status(run_dir).get("phase"))
        original_begin(self, logs)

    def evaluate_modes(*arguments, **keywords):
        phases.append(folder.read_status(run_dir).get("phase"))
        return original_evaluate(*arguments, **keywords)

    monkeypatch.setattr(callbacks.ProgressWriter, "on_train_begin", on_train_begin)
    monkeypatch.setattr(trainer, "evaluate_modes", evaluate_modes)
    with stop_after_first_epoch(run_dir):
        assert run_training(run_dir, verbose=0)["state"] == "stopped"
    (partial,) = [r for r in folder.read_progress(run_dir) if r["event"] == "epoch" and r["partial"]]
    assert partial["eta_seconds"] is None
    assert run_training(run_dir, resume=True, verbose=0)["state"] == "finished"
    assert phases == ["training", "training", "evaluating"]


def test_a_folder_that_turns_read_only_mid_run_names_the_file_and_the_reason(
    tmp_path, training_data, monkeypatch, capsys
):
    """As root the folder cannot really be made read-only, so saving and the temporary status file fail instead."""
    import tempfile

    import keras

    run_dir = run_launch.create_run(tiny_config(training_data, epochs=2), tmp_path)

    def refuse_save(self, filepath, *arguments, **keywords):
        raise PermissionError(13, "Permission denied", str(filepath))

    def refuse_temporary(*arguments, dir=None, **keywords):
        raise PermissionError(13, "Permission denied", str(Path(dir) / ".status.json.x.tmp"))

    monkeypatch.setattr(keras.Model, "save", refuse_save)
    with pytest.raises(PermissionError) as raised, monkeypatch.context() as inner:
        original_write_status = folder.write_status

        def write_status(job_dir, state, **details):
            if state == "failed":
                inner.setattr(tempfile, "mkstemp", refuse_temporary)
            original_write_status(job_dir, state, **details)

        inner.setattr(folder, "write_status", write_status)
        run_training(run_dir, verbose=0)
    assert raised.value.filename == str(run_dir / "last.keras")  # the file meant, not its temporary twin
    logged = capsys.readouterr().err.strip().splitlines()[-1]
    assert logged.startswith(f"error: PermissionError: [Errno 13] Permission denied: {run_dir / 'last.keras'}")
    assert f"status.json could not record it: [Errno 13] Permission denied: '{run_dir / 'status.json'}'" in logged
