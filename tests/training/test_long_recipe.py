"""The long-run recipe: 40-pixel crops inside the model, a rate that follows the global step, a weight average."""

import math

import keras
import numpy as np
import pytest
from conftest import stop_after_first_epoch

from ferlib.atomic import read_json
from ferlib.data.augment import AugmentationConfig
from ferlib.jobs import folder, runs
from ferlib.nets.architectures import build_model
from ferlib.training import run_launch
from ferlib.training.config import TrainConfig
from ferlib.training.schedule import WarmupSchedule
from ferlib.training.trainer import run_training


def test_a_cropping_model_sees_the_central_crop_of_its_48_pixel_input():
    model = build_model("vgg_fer", filters=(4, 4, 4, 4), dense_units=8, input_crop=40)
    faces = np.arange(48 * 48, dtype=np.float32).reshape(1, 48, 48, 1)
    crop = keras.Model(model.input, model.get_layer("crop").output)(faces)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(crop)[0, :, :, 0], faces[0, 4:44, 4:44, 0])
    assert model.input.shape[1:] == (48, 48, 1)
    assert model.get_layer("block4_pool").output.shape[1:3] == (3, 3)  # 40 -> 20 -> 10 -> 5 -> 3: no edge lost
    with pytest.raises(ValueError, match=r"Expected input_crop 0 \(none\) or 8-47 pixels; received 48"):
        build_model("vgg_fer", input_crop=48)


def test_the_schedule_warms_up_then_decays_by_step_and_survives_saving():
    schedule = WarmupSchedule(0.01, warmup_steps=10, total_steps=110)
    steps = [0, 5, 9, 10, 60, 110, 500]
    rates = [schedule.rate_at(step) for step in steps]
    np.testing.assert_allclose([float(schedule(step)) for step in steps], rates, rtol=1e-5)
    assert rates[0] == pytest.approx(0.01 / 11) and rates[3] == pytest.approx(0.01)
    assert rates[4] == pytest.approx(0.01 * (0.01 + 0.99 * 0.5)) and rates[5] == rates[6] == pytest.approx(1e-4)
    assert WarmupSchedule(0.01, 10, 110, shape="constant").rate_at(60) == 0.01
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert isinstance(restored, WarmupSchedule) and restored.get_config() == schedule.get_config()


def test_a_stopped_run_resumes_at_the_same_step_and_rate_with_its_average(tmp_path, training_data):
    off = AugmentationConfig(horizontal_flip=False, translate=0.0, rotate_degrees=0.0, zoom=0.0)
    config = TrainConfig(
        architecture="vgg_fer",
        hyperparameters={"filters": (4, 8, 8, 8), "dense_units": 8, "input_crop": 40},
        augmentation=off,
        batch_size=32,
        epochs=3,
        warmup_epochs=1,
        ema_momentum=0.9,
        data=str(training_data),
    )
    run_dir = run_launch.create_run(config, tmp_path)
    with stop_after_first_epoch(run_dir):
        assert run_training(run_dir, verbose=0)["state"] == "stopped"
    stopped = keras.saving.load_model(run_dir / "last.keras")
    steps_done = int(stopped.optimizer.iterations)
    epochs_stopped = read_json(run_dir / "state.json")["epochs_completed"]
    assert steps_done > 0 and stopped.optimizer.use_ema

    assert run_training(run_dir, resume=True, verbose=0)["state"] == "finished"
    history = runs.read_history(run_dir)
    assert [int(row["epoch"]) for row in history] == [0, 1, 2]
    assert all(0 <= row["val_ema_accuracy"] <= 1 for row in history)
    steps_per_epoch = math.ceil(7 * 40 / 32)
    finished = keras.saving.load_model(run_dir / "last.keras")
    assert int(finished.optimizer.iterations) == steps_done + (3 - epochs_stopped) * steps_per_epoch
    records = [record for record in folder.read_progress(run_dir) if record["event"] == "batch"]
    resumed = [record for record in records if record["epoch"] >= 2]
    schedule = WarmupSchedule(0.01, steps_per_epoch, 3 * steps_per_epoch)
    assert resumed[-1]["learning_rate"] == pytest.approx(schedule.rate_at(int(finished.optimizer.iterations)), rel=1e-4)
    best = max(max(row["val_accuracy"], row["val_ema_accuracy"]) for row in history)
    assert read_json(run_dir / "state.json")["best_val_accuracy"] == pytest.approx(best)
    assert read_json(run_dir / "best.json")["metrics"]["weights"] in ("training", "moving average")
