"""Checkpoint averaging (SWA): the mean of epoch checkpoints, batch norm recomputed, shipped with its note."""

import json
import os

import keras
import numpy as np
import pytest
from conftest import stop_after_first_epoch

from ferlib.jobs import folder
from ferlib.jobs.runs import AVERAGE_MODEL, epoch_checkpoints
from ferlib.nets.modelio import read_metadata
from ferlib.training.averaging import (
    average_run,
    average_weights,
    averaging_note,
    recalibrate_batch_norm,
)
from ferlib.training.config import TrainConfig
from ferlib.training.run_launch import create_run
from ferlib.training.trainer import run_training


def test_average_weights_is_the_element_wise_mean_and_takes_counters_from_the_last_model():
    first = [np.array([1.0, 2.0], np.float32), np.array([[4]], np.int64)]
    second = [np.array([3.0, 6.0], np.float32), np.array([[7]], np.int64)]
    mean = average_weights(iter([first, second]))
    assert np.array_equal(mean[0], [2.0, 4.0]) and mean[0].dtype == np.float32
    assert np.array_equal(mean[1], [[7]]) and mean[1].dtype == np.int64
    with pytest.raises(ValueError, match=r"^Expected weights shaped like the first model's \(2 arrays\)"):
        average_weights([first, [np.zeros(3, np.float32), np.zeros((1, 1))]])
    with pytest.raises(ValueError, match=r"^Expected the weights of at least one model; received none$"):
        average_weights([])


def test_batch_norm_is_recomputed_as_the_mean_of_the_batch_statistics():
    inputs = keras.Input((3,))
    normalised = keras.layers.BatchNormalization(momentum=0.99, name="norm")(
        keras.layers.Dense(3, name="dense")(inputs)
    )
    model = keras.Model(inputs, normalised)
    model.get_layer("dense").set_weights([np.eye(3, dtype=np.float32), np.zeros(3, np.float32)])
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc, scale, (16, 3)).astype(np.float32) for loc, scale in ((1, 1), (5, 2), (-3, 0.5))]
    assert recalibrate_batch_norm(model, iter(batches)) == 3
    layer = model.get_layer("norm")
    assert np.allclose(layer.moving_mean.numpy(), np.mean([batch.mean(axis=0) for batch in batches], axis=0), atol=1e-5)
    assert np.allclose(
        layer.moving_variance.numpy(), np.mean([batch.var(axis=0) for batch in batches], axis=0), rtol=1e-4
    )
    assert layer.momentum == 0.99  # the layer's own momentum is back for any later training
    with pytest.raises(ValueError, match=r"^Expected at least one batch of training faces"):
        recalibrate_batch_norm(model, iter([]))


def test_a_run_keeps_its_epochs_averages_them_and_ships_the_average_with_a_note(tmp_path, training_data, capsys):
    from ferlib.cli import main
    from ferlib.evaluation.metrics import evaluate_model
    from ferlib.jobs import runs
    from ferlib.training.ship import ship_model

    config = TrainConfig(
        architecture="compact_cnn",
        hyperparameters={"filters": (8, 16, 32), "dense_units": 16},
        epochs=3,
        batch_size=32,
        schedule="constant",
        learning_rate=0.003,
        keep_epoch_checkpoints=True,
        data=str(training_data),
    )
    run_dir = create_run(config, tmp_path / "runs")
    with stop_after_first_epoch(run_dir):  # a stop right after epoch 1: epoch 2's partial weights are not kept
        run_training(run_dir, verbose=0)
    assert list(epoch_checkpoints(run_dir)) == [1]
    folder.clear_stop_request(run_dir)
    run_training(run_dir, resume=True, verbose=0)
    assert list(epoch_checkpoints(run_dir)) == [1, 2, 3]  # numbered on across the resume
    assert [path.name for path in epoch_checkpoints(run_dir).values()] == [
        f"epoch-00{epoch}.weights.h5" for epoch in (1, 2, 3)
    ]  # weights only: the optimizer's state is not kept for each epoch
    reader = keras.saving.load_model(run_dir / "last.keras")
    last = reader.get_weights()
    epoch_weights = []
    for path in epoch_checkpoints(run_dir).values():
        reader.load_weights(path)
        epoch_weights.append(reader.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(epoch_weights[-1], last, strict=True))  # the epoch's own weights
    assert not all(np.array_equal(a, b) for a, b in zip(epoch_weights[1], last, strict=True))  # a real average

    assert main(["average", "--run-dir", str(run_dir), "--from-epoch", "2"]) == 0
    printed = capsys.readouterr().out
    assert "the average of epochs 2-3" in printed and "average: accuracy=" in printed
    assert f"best (epoch {runs.saved_state(run_dir)['best_epoch']}): accuracy=" in printed
    average = keras.saving.load_model(run_dir / AVERAGE_MODEL)
    card = read_metadata(run_dir / AVERAGE_MODEL)
    assert card["averaged_epochs"] == [2, 3] and card["epochs_completed"] == 3
    # Kernels, biases and batch-norm scales are the mean of the two epochs'; the moving statistics are recomputed.
    recomputed = []
    for weight, averaged, second, third in zip(average.weights, average.get_weights(), *epoch_weights[1:], strict=True):
        if "moving_" in weight.path:
            recomputed.append(not np.allclose(averaged, (second + third) / 2, atol=1e-4))
        else:
            assert np.allclose(averaged, (second + third) / 2, atol=1e-6), weight.path
    assert recomputed and all(recomputed)
    from ferlib.data.datasets import load_dataset

    images, labels = load_dataset(training_data).subset("validation")
    assert card["metrics"]["validation_accuracy"] == pytest.approx(evaluate_model(average, images, labels)["accuracy"])
    best = keras.saving.load_model(run_dir / "best.keras")
    assert card["best_checkpoint"]["validation_accuracy"] == pytest.approx(
        evaluate_model(best, images, labels)["accuracy"]
    )

    from ferlib.evaluation.lineage import model_lineage
    from ferlib.evaluation.reports import run_report

    # A run warm-started from average.keras inherits its training and the averaging note, from its card.
    lineage = model_lineage(run_dir / AVERAGE_MODEL)
    assert lineage["epochs_completed"] == 3 and lineage["stages"][-1]["notes"] == [averaging_note(card)]
    assert lineage["stages"][-1]["validation_accuracy"] == card["metrics"]["validation_accuracy"]
    averaged = run_report(run_dir).details["averaged_weights"]  # the Metrics page's details of the run
    assert averaged["epochs"] == "epochs 2-3 (2 checkpoints)"
    assert averaged["accuracy"] == card["metrics"]["validation_accuracy"]

    shipped = ship_model(run_dir, training_data, tmp_path / "models" / "averaged.keras", checkpoint=AVERAGE_MODEL)
    note = f"The weights are the average of the checkpoints of epochs 2-3 of run {run_dir.name} (2 checkpoints;"
    assert shipped["notes"] == [averaging_note(card)] and shipped["notes"][0].startswith(note)
    assert shipped["metrics"]["validation_accuracy"] == pytest.approx(card["metrics"]["validation_accuracy"])
    assert (tmp_path / "models" / "averaged.md").read_text().count("The weights are the average") == 1
    plain = ship_model(run_dir, training_data, tmp_path / "models" / "plain.keras")
    assert "notes" not in plain or not any("average" in note for note in plain["notes"])

    with pytest.raises(ValueError, match=r"^Expected at least two epoch checkpoints, the last of them epoch 3 .*"):
        average_run(run_dir, from_epoch=3)
    with pytest.raises(ValueError, match=r"^Expected a checkpoint among best.keras, average.keras; received 'x'"):
        ship_model(run_dir, training_data, tmp_path / "other.keras", checkpoint="x")
    assert main(["average", "--run-dir", str(run_dir), "--data", str(tmp_path / "absent.zip")]) == 2
    assert "error: Expected an existing dataset" in capsys.readouterr().err

    # An average made before the run trained on no longer matches its record: ship refuses it.
    last_card = json.loads((run_dir / "last.json").read_text())  # as after a fourth epoch
    (run_dir / "last.json").write_text(json.dumps({**last_card, "epochs_completed": 4}))
    with pytest.raises(ValueError, match=r"^Expected an average.keras that ends at the run's last epoch, 4; "):
        ship_model(run_dir, training_data, tmp_path / "stale.keras", checkpoint=AVERAGE_MODEL)
    folder.write_status(run_dir, "running", pid=os.getpid())
    with pytest.raises(ValueError, match=r"^Expected a run that is not training; received .*, which is training"):
        average_run(run_dir)
