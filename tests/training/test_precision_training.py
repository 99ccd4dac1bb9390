"""Training in mixed bfloat16: faster on CPUs that have it, same run contract, float32 models for use."""

import json

import keras
import numpy as np
import pytest

from ferlib.cli import main
from ferlib.data.augment import AugmentationConfig
from ferlib.errors import FerError
from ferlib.jobs import folder, runs
from ferlib.nets.modelio import load_model
from ferlib.nets.precision import FLOAT32, MIXED_BFLOAT16, precision_of
from ferlib.training import run_launch
from ferlib.training.config import TrainConfig, describe_config
from ferlib.training.snapshot import restore_snapshot, write_snapshot
from ferlib.training.trainer import in_precision, run_training


def recipe(data, **changes) -> TrainConfig:
    settings = {
        "architecture": "vgg_fer",
        "hyperparameters": {"filters": (4, 8, 8, 8), "dense_units": 8, "input_crop": 40},
        "augmentation": AugmentationConfig(erasing=0.5),
        "batch_size": 32,
        "epochs": 2,
        "warmup_epochs": 1,
        "ema_momentum": 0.9,
        "data": str(data),
    }
    return TrainConfig(**{**settings, **changes})


def test_the_precision_is_a_checked_setting():
    assert TrainConfig().precision == FLOAT32
    assert "mixed bfloat16" in describe_config(TrainConfig(precision=MIXED_BFLOAT16))
    with pytest.raises(FerError, match="Expected precision among float32, mixed_bfloat16; received 'float16'"):
        TrainConfig(precision="float16")


def test_a_float32_run_resumes_in_mixed_bfloat16_at_the_same_step_and_saves_float32_models(
    tmp_path, training_data, capsys
):
    run_dir = run_launch.create_run(recipe(training_data, epochs=1), tmp_path)
    assert run_training(run_dir, verbose=0)["state"] == "finished"
    before = keras.saving.load_model(run_dir / "last.keras")
    steps = int(before.optimizer.iterations)

    assert (
        main(
            [
                "train",
                "--run-dir",
                str(run_dir),
                "--resume",
                "--epochs",
                "2",
                "--precision",
                "mixed_bfloat16",
                "--quiet",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("status=finished")
    assert run_launch.load_config(run_dir).precision == MIXED_BFLOAT16
    last = keras.saving.load_model(run_dir / "last.keras")
    assert precision_of(last) == MIXED_BFLOAT16  # the resume checkpoint trains on in the run's precision
    assert int(last.optimizer.iterations) == 2 * steps  # one more epoch from the same step
    best, card = load_model(run_dir / "best.keras")
    assert precision_of(keras.saving.load_model(run_dir / "best.keras")) == FLOAT32
    assert precision_of(best) == FLOAT32 and card["config"]["precision"] == MIXED_BFLOAT16
    starts = [record for record in folder.read_progress(run_dir) if record["event"] == "start"]
    assert [record["precision"] for record in starts] == [FLOAT32, MIXED_BFLOAT16]
    assert [int(row["epoch"]) for row in runs.read_history(run_dir)] == [0, 1]
    history = runs.read_history(run_dir)
    assert all(np.isfinite(float(row["loss"])) for row in history)

    # Its snapshot restores a float32 checkpoint elsewhere, which continues in the run's precision, same step.
    write_snapshot(run_dir, tmp_path / "run.snapshot.zip")
    moved = restore_snapshot(tmp_path / "run.snapshot.zip", tmp_path / "elsewhere")
    restored = in_precision(keras.saving.load_model(moved / "last.keras"), run_launch.load_config(moved))
    assert precision_of(restored) == MIXED_BFLOAT16
    assert int(restored.optimizer.iterations) == int(last.optimizer.iterations)


def test_a_mixed_run_keeps_its_optimizer_state_when_it_returns_to_float32(tmp_path, training_data):
    run_dir = run_launch.create_run(recipe(training_data, epochs=1, precision=MIXED_BFLOAT16), tmp_path)
    assert run_training(run_dir, verbose=0)["state"] == "finished"
    mixed = keras.saving.load_model(run_dir / "last.keras")
    assert precision_of(mixed) == MIXED_BFLOAT16
    back = in_precision(mixed, run_launch.load_config(run_dir).updated(precision=FLOAT32))
    assert precision_of(back) == FLOAT32 and back.optimizer is not mixed.optimizer
    assert int(back.optimizer.iterations) == int(mixed.optimizer.iterations)
    for old, new in zip(mixed.optimizer.variables, back.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(new), np.asarray(old))  # momentum, weight average, step


@pytest.mark.parametrize(("native", "asked"), [(False, None), (False, MIXED_BFLOAT16), (True, None)])
def test_a_mixed_run_resumed_on_a_cpu_without_bfloat16_continues_in_float32_unless_told(
    tmp_path, training_data, capsys, monkeypatch, native, asked
):
    from ferlib.nets import precision

    run_dir = run_launch.create_run(recipe(training_data, epochs=1, precision=MIXED_BFLOAT16), tmp_path)
    assert run_training(run_dir, verbose=0)["state"] == "finished"
    write_snapshot(run_dir, snapshot := tmp_path / "run.snapshot.zip")
    monkeypatch.setattr(precision, "fast_bfloat16", lambda: native)
    keep = ["--precision", asked] if asked else []
    switched = not native and asked is None
    expected = FLOAT32 if switched else MIXED_BFLOAT16
    note = "it continues in float32, which its config now says"

    assert main(["train", "--run-dir", str(run_dir), "--resume", "--epochs", "2", "--quiet", *keep]) == 0
    assert run_launch.load_config(run_dir).precision == expected
    assert precision_of(keras.saving.load_model(run_dir / "last.keras")) == expected
    assert (note in capsys.readouterr().err) is switched

    moved = tmp_path / "elsewhere"
    assert main(["train", "--resume-from", str(snapshot), "--runs-dir", str(moved), "--epochs", "2", *keep]) == 0
    assert (note in capsys.readouterr().err) is switched
    (restored,) = [path for path in moved.iterdir() if path.is_dir()]
    assert run_launch.load_config(restored).precision == expected
    assert precision_of(keras.saving.load_model(restored / "last.keras")) == expected


def test_the_cli_refuses_an_unknown_precision(tmp_path, training_data, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", str(training_data), "--precision", "float8", "--runs-dir", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "invalid choice: 'float8'" in capsys.readouterr().err
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"precision": "half"}))
    assert main(["train", "--config", str(config), "--data", str(training_data), "--runs-dir", str(tmp_path)]) == 2
    assert "Expected precision among float32, mixed_bfloat16; received 'half'" in capsys.readouterr().err
    assert not [path for path in tmp_path.iterdir() if path.is_dir()]


def test_a_cluster_worker_refuses_settings_only_the_chief_may_change(tmp_path, capsys):
    worker = ["train", "--cluster", "a:1,b:2", "--worker-index", "1", "--run-dir", str(tmp_path)]
    assert main([*worker, "--precision", "mixed_bfloat16"]) == 2
    assert "Expected --epochs, --precision, --initial-model and --teacher on the chief only" in capsys.readouterr().err
