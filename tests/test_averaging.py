"""Checkpoint averaging (SWA): the mean of epoch checkpoints, batch norm recomputed, shipped with its note."""

import json

import keras
import numpy as np
import pytest

from ferlib.averaging import (
    AVERAGE_MODEL,
    average_run,
    average_weights,
    averaging_note,
    epoch_checkpoints,
    parse_epoch_range,
    recalibrate_batch_norm,
)
from ferlib.config import TrainConfig
from ferlib.modelio import read_metadata
from ferlib.runs import create_run
from ferlib.training import run_training


def test_average_weights_is_the_element_wise_mean_in_the_first_models_dtypes():
    first = [np.array([1.0, 2.0], np.float32), np.array([[4]], np.int64)]
    second = [np.array([3.0, 6.0], np.float32), np.array([[6]], np.int64)]
    mean = average_weights(iter([first, second]))
    assert np.array_equal(mean[0], [2.0, 4.0]) and mean[0].dtype == np.float32
    assert np.array_equal(mean[1], [[5]]) and mean[1].dtype == np.int64
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


def test_epoch_ranges_are_parsed_and_bad_ones_named():
    assert parse_epoch_range(None) == (None, None) and parse_epoch_range("") == (None, None)
    assert parse_epoch_range("5-26") == (5, 26) and parse_epoch_range("5-") == (5, None)
    assert parse_epoch_range(" -20") == (None, 20)
    for text in ("5", "-", "a-b", "9-3"):
        with pytest.raises(ValueError, match=r"^Expected an epoch range"):
            parse_epoch_range(text)


def test_a_run_keeps_its_epochs_averages_them_and_ships_the_average_with_a_note(tmp_path, training_data, capsys):
    from ferlib.cli import main
    from ferlib.evaluation import evaluate_model
    from ferlib.export import ship_model

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
    run_training(run_dir, verbose=0)
    assert list(epoch_checkpoints(run_dir)) == [1, 2, 3]
    epoch_weights = [keras.saving.load_model(path).get_weights() for path in epoch_checkpoints(run_dir).values()]
    last = keras.saving.load_model(run_dir / "last.keras").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(epoch_weights[-1], last, strict=True))  # the epoch's own weights

    assert main(["average", "--run-dir", str(run_dir), "--epochs", "2-"]) == 0
    printed = capsys.readouterr().out
    assert "the average of epochs 2-3 (2 checkpoints)" in printed and "accuracy=" in printed
    average = keras.saving.load_model(run_dir / AVERAGE_MODEL)
    card = read_metadata(run_dir / AVERAGE_MODEL)
    assert card["averaged_epochs"] == [2, 3] and card["epochs_completed"] == 3
    # Kernels, biases and batch-norm scales are the mean of the two epochs'; the moving statistics are recomputed.
    names = [weight.path for weight in average.weights]
    for name, averaged, second, third in zip(names, average.get_weights(), *epoch_weights[1:], strict=True):
        if "moving_" not in name:
            assert np.allclose(averaged, (second + third) / 2, atol=1e-6), name
    from ferlib.datasets import load_dataset

    images, labels = load_dataset(training_data).subset("validation")
    assert card["metrics"]["validation_accuracy"] == pytest.approx(evaluate_model(average, images, labels)["accuracy"])

    from ferlib.lineage import model_lineage
    from ferlib.reports import run_report

    # A run warm-started from average.keras inherits its training and the averaging note, from its card.
    lineage = model_lineage(run_dir / AVERAGE_MODEL)
    assert lineage["epochs_completed"] == 3 and lineage["stages"][-1]["notes"] == [averaging_note(card)]
    assert lineage["stages"][-1]["validation_accuracy"] == card["metrics"]["validation_accuracy"]

    averaged = run_report(run_dir).details["averaged_weights"]  # the Metrics page's details of the run
    assert averaged["epochs"] == "2-3 (2 checkpoints)"
    assert averaged["accuracy"] == card["metrics"]["validation_accuracy"]

    shipped = ship_model(run_dir, training_data, tmp_path / "models" / "averaged.keras", checkpoint=AVERAGE_MODEL)
    assert shipped["notes"][0] == averaging_note(card)
    assert "average of the checkpoints of epochs 2-3 (2 checkpoints" in shipped["notes"][0]
    assert shipped["metrics"]["validation_accuracy"] == pytest.approx(card["metrics"]["validation_accuracy"])
    assert "average of the checkpoints" in (tmp_path / "models" / "averaged.md").read_text()

    with pytest.raises(ValueError, match=r"^Expected at least two epoch checkpoints .*received 1 in the range"):
        average_run(run_dir, first_epoch=3)
    with pytest.raises(ValueError, match=r"^Expected a checkpoint among best.keras, average.keras; received 'x'"):
        ship_model(run_dir, training_data, tmp_path / "other.keras", checkpoint="x")
    assert json.loads((run_dir / "config.json").read_text())["keep_epoch_checkpoints"] is True
