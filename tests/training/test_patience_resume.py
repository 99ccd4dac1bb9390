"""Plateau and early-stopping patience carry over a stop and resume, and ignore a stopped run's partial epoch."""

from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import stop_after_first_epoch

from ferlib.atomic import read_json
from ferlib.jobs import runs
from ferlib.jobs.folder import StopSignal
from ferlib.nets.modelio import sidecar_path
from ferlib.training import run_launch
from ferlib.training.callbacks import ResumableEarlyStopping, ResumableReduceLROnPlateau
from ferlib.training.config import TrainConfig
from ferlib.training.trainer import run_training
from ferlib.tuning import hypermodel


def tiny_model() -> keras.Model:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    return model


def learning_rate(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def session(callback, scores: list[float], first_epoch: int, model: keras.Model) -> int | None:
    """Feed validation scores to a callback as one fit() would; returns the epoch it stopped training at."""
    callback.set_model(model)
    model.stop_training = False
    callback.on_train_begin()
    for epoch, score in enumerate(scores, start=first_epoch):
        callback.on_epoch_end(epoch, {"val_accuracy": score})
        if model.stop_training:
            return epoch
    return None


def test_early_stopping_patience_spans_a_resume(tmp_path):
    model, stop = tiny_model(), StopSignal(tmp_path)
    options = {"monitor": "val_accuracy", "mode": "max", "patience": 3}
    first = ResumableEarlyStopping(stop=stop, **options)
    assert session(first, [0.5, 0.6, 0.55, 0.55], 0, model) is None
    saved = first.counters()
    assert saved["wait"] == 2 and saved["best"] == pytest.approx(0.6) and saved["best_epoch"] == 1

    assert session(ResumableEarlyStopping(stop=stop, saved=saved, **options), [0.55], 4, model) == 4
    assert session(ResumableEarlyStopping(stop=stop, **options), [0.55], 4, model) is None  # what Keras alone did


def test_plateau_cut_and_cooldown_span_a_resume(tmp_path):
    model, stop = tiny_model(), StopSignal(tmp_path)
    options = {"monitor": "val_accuracy", "mode": "max", "patience": 2, "factor": 0.5, "cooldown": 1}
    first = ResumableReduceLROnPlateau(stop=stop, **options)
    session(first, [0.5, 0.4], 0, model)
    assert learning_rate(model) == pytest.approx(0.1)
    resumed = ResumableReduceLROnPlateau(stop=stop, saved=first.counters(), **options)
    session(resumed, [0.4], 2, model)
    assert learning_rate(model) == pytest.approx(0.05)
    assert resumed.counters()["cooldown_counter"] == 1


def test_a_partial_epoch_does_not_count(tmp_path):
    model, stop = tiny_model(), StopSignal(tmp_path)
    callback = ResumableEarlyStopping(stop=stop, monitor="val_accuracy", mode="max", patience=1)
    session(callback, [0.5], 0, model)
    stop.triggered = True  # a stop arrived during epoch 1: Keras still validates and reports the partial epoch
    callback.on_epoch_end(1, {"val_accuracy": 0.1})
    assert callback.counters()["wait"] == 0 and not model.stop_training


def test_a_stopped_plateau_run_saves_its_counters_and_resumes_them(tmp_path, training_data):
    config = TrainConfig(
        architecture="compact_cnn",
        hyperparameters={"filters": (8, 16, 32), "dense_units": 16},
        batch_size=32,
        epochs=3,
        schedule="plateau",
        plateau_patience=1,
        early_stopping_patience=5,
        data=str(training_data),
    )
    run_dir = run_launch.create_run(config, tmp_path)
    with stop_after_first_epoch(run_dir):
        assert run_training(run_dir, verbose=0)["state"] == "stopped"
    sidecar = read_json(sidecar_path(Path(run_dir) / runs.LAST_MODEL))
    assert sidecar["epochs_completed"] == 1
    counters = sidecar["patience_counters"]
    first_score = float(runs.read_history(run_dir)[0]["val_accuracy"])
    # The partial second epoch (stopped mid-way, yet validated by Keras) neither moved the best nor the wait.
    assert counters["early_stopping"] == {"wait": 0, "best": pytest.approx(first_score), "best_epoch": 0}
    assert counters["plateau"]["wait"] == 0 and counters["plateau"]["best"] == pytest.approx(first_score)

    assert run_training(run_dir, resume=True, verbose=0)["state"] == "finished"
    assert read_json(sidecar_path(Path(run_dir) / runs.LAST_MODEL))["epochs_completed"] == 3


def test_search_trials_use_the_configs_plateau_early_stopping_and_class_weights(monkeypatch):
    """Trials once trained a 'plateau' schedule at a constant rate, and without the config's class weights."""
    from types import SimpleNamespace

    captured = {}

    class RecordingModel:
        def fit(self, pipeline, *, callbacks, **kwargs):
            captured["callbacks"], captured["pipeline"] = callbacks, pipeline

    config = TrainConfig(
        architecture="compact_cnn",
        schedule="plateau",
        plateau_patience=4,
        early_stopping_patience=6,
        class_weighting=True,
    )
    data = SimpleNamespace(train_images=np.zeros((4, 48, 48), np.uint8), train_labels=np.array([0, 0, 0, 1]))
    data.validation = None
    hypermodel.fit_config(RecordingModel(), config, data, [], epochs=3)
    by_kind = {type(callback).__name__: callback for callback in captured["callbacks"]}
    assert by_kind["ResumableReduceLROnPlateau"].patience == 4
    assert by_kind["ResumableEarlyStopping"].patience == 6
    ((_, targets, weights),) = list(captured["pipeline"].as_numpy_iterator())  # trials weight classes as runs do
    assert weights[targets.argmax(axis=1) == 1][0] > weights[targets.argmax(axis=1) == 0][0]
