"""The command line as a user runs it: real subprocesses, one-line errors, documented last lines."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ferlib.cli import main
from ferlib.jobs import folder


def run_cli(*arguments, env=None):
    environment = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "ferlib", *map(str, arguments)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )


def test_info_prints_counts_and_the_load_report(kaggle_dir, tmp_path):
    bad = kaggle_dir / "train" / "fear" / "Training_broken.jpg"
    bad.write_bytes(b"broken")
    try:
        result = run_cli("info", "--data", kaggle_dir, env={"FERLIB_CACHE_DIR": str(tmp_path)})
    finally:
        bad.unlink()
    assert result.returncode == 0, result.stderr
    assert re.search(r"^train\s+12\s+12\s+12\s+12\s+12\s+12\s+12\s+84$", result.stdout, re.M)
    assert re.search(r"^validation(\s+4){7}\s+28$", result.stdout, re.M)
    assert "skipped train/fear/Training_broken.jpg" in result.stdout
    assert "decoding images" in result.stderr


def test_user_mistakes_print_one_line_without_traceback(tmp_path):
    result = run_cli("info", "--data", tmp_path / "nope")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: Expected a dataset path")
    result = run_cli("evaluate", "--data", tmp_path / "nope", "--model", tmp_path / "missing.keras")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: Expected a")


def test_evaluate_last_line_and_json(training_data, tiny_model_path, tmp_path):
    output = tmp_path / "metrics.json"
    result = run_cli(
        "evaluate",
        "--data",
        training_data,
        "--model",
        tiny_model_path,
        "--split",
        "validation",
        "--tta",
        "--json",
        output,
    )
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"accuracy=0\.\d{4} macro_f1=0\.\d{4} n=56", result.stdout.strip().splitlines()[-1])
    metrics = json.loads(output.read_text())
    assert metrics["tta"] == "flip" and metrics["n"] == 56 and len(metrics["confusion_matrix"]) == 7


def test_evaluate_scores_the_average_of_several_models_without_writing_one(training_data, tiny_model_path, tmp_path):
    other = tmp_path / "other.keras"
    shutil.copy(tiny_model_path, other)
    shutil.copy(tiny_model_path.with_suffix(".json"), other.with_suffix(".json"))
    output = tmp_path / "metrics.json"
    models = ["--model", tiny_model_path, "--model", other, "--weights", "3,1"]
    result = run_cli("evaluate", "--data", training_data, *models, "--json", output)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"accuracy=0\.\d{4} macro_f1=0\.\d{4} n=56", result.stdout.strip().splitlines()[-1])
    expected = f"{tiny_model_path.parent.name}/best.keras (0.750) + other.keras (0.250)"
    assert json.loads(output.read_text())["model"] == expected
    written = sorted(path.name for path in tmp_path.iterdir() if path.name != "cache")  # the dataset cache aside
    assert written == ["metrics.json", "other.json", "other.keras"]
    alone = run_cli("evaluate", "--data", training_data, "--model", other, "--weights", "1")
    assert alone.returncode == 2 and alone.stderr.strip().splitlines()[-1] == (
        "error: Expected --weights only with several --model; received it with 1 model(s)"
    )


def test_evaluate_searches_the_weights_of_an_average_and_says_they_flatter_it(training_data, tiny_model_path, tmp_path):
    other = tmp_path / "other.keras"
    shutil.copy(tiny_model_path, other)
    shutil.copy(tiny_model_path.with_suffix(".json"), other.with_suffix(".json"))
    output = tmp_path / "metrics.json"
    models = ["--model", tiny_model_path, "--model", other, "--weights", "search", "--tta", "flip"]
    result = run_cli("evaluate", "--data", training_data, *models, "--json", output)
    assert result.returncode == 0, result.stderr
    *_, said, last = result.stdout.strip().splitlines()
    assert re.fullmatch(
        r"weights \d,\d scored best of \d+ tried on these faces \(equal weights: 0\.\d{4}\); chosen on them, so the "
        r"accuracy below flatters the average",
        said,
    )
    assert re.fullmatch(r"accuracy=0\.\d{4} macro_f1=0\.\d{4} n=56", last)
    metrics = json.loads(output.read_text())
    found = metrics["weight_search"]
    assert metrics["accuracy"] == found["accuracy"] >= found["equal_accuracy"] and metrics["tta"] == "flip"
    assert metrics["model"].endswith(f"other.keras ({found['weights']})")
    wrong = run_cli(
        "evaluate", "--data", training_data, "--model", other, "--model", tiny_model_path, "--weights", "best"
    )
    assert wrong.returncode == 2 and "Expected weights such as 0.6,0.4, or search; received 'best'" in wrong.stderr


def test_train_prints_the_run_folder(training_data, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "architecture": "compact_cnn",
                "hyperparameters": {"filters": [8, 8, 8], "dense_units": 8},
                "train_fraction": 0.25,
                "augmentation": {"erasing": 0.5},
            }
        )
    )
    result = run_cli(
        "train", "--data", training_data, "--config", config, "--epochs", 1, "--runs-dir", tmp_path / "runs", "--quiet"
    )
    assert result.returncode == 0, result.stderr
    run_dir = result.stdout.strip().splitlines()[0]
    assert os.path.isdir(run_dir) and run_dir.startswith(str(tmp_path / "runs"))
    assert json.loads(Path(run_dir, "status.json").read_text())["state"] == "finished"
    assert json.loads(Path(run_dir, "config.json").read_text())["epochs"] == 1


def test_bad_config_is_reported_in_one_line(tmp_path):
    config = tmp_path / "config.json"
    config.write_text('{"optimizer": "rmsprop-ish"}')
    result = run_cli("train", "--data", tmp_path, "--config", config)
    assert result.returncode == 2
    assert (
        result.stderr.strip().splitlines()[-1]
        == "error: Expected optimizer among sgd, adam, adamw; received 'rmsprop-ish'"
    )


def test_an_initial_model_of_another_architecture_is_refused_before_training(training_data, tiny_model_path, tmp_path):
    result = run_cli(
        "train", "--data", training_data, "--initial-model", tiny_model_path, "--runs-dir", tmp_path / "runs"
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: Expected initial_model to be a vgg_fer with")
    assert not (tmp_path / "runs").exists()
    result = run_cli("train", "--run-dir", tmp_path, "--resume", "--initial-model", tiny_model_path)
    assert result.returncode == 2
    expected = "error: Expected --initial-model and --teacher only for a new run"
    assert result.stderr.strip().splitlines()[-1].startswith(expected)


def test_train_checks_its_dataset_before_creating_a_run_folder(tmp_path):
    result = run_cli("train", "--data", tmp_path / "missing.zip", "--runs-dir", tmp_path / "runs")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: Expected an existing dataset; received")
    assert not (tmp_path / "runs").exists()


def test_train_is_refused_while_another_run_is_active(training_data, tmp_path):
    from ferlib.atomic import atomic_write_json
    from ferlib.jobs import runs
    from ferlib.training import run_launch
    from ferlib.training.config import TrainConfig

    runs_dir = tmp_path / "runs"
    config = TrainConfig(architecture="compact_cnn", data=str(training_data))
    active = run_launch.create_run(config, runs_dir, run_id="a-active")  # 'created' by this live test process
    stopped = run_launch.create_run(config, runs_dir, run_id="b-stopped")
    folder.write_status(stopped, "stopped")

    result = run_cli("train", "--data", training_data, "--runs-dir", runs_dir, "--epochs", 1)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: Expected no active run")
    assert "a-active (created)" in result.stderr
    assert sorted(path.name for path in runs_dir.iterdir() if path.is_dir()) == ["a-active", "b-stopped"]

    result = run_cli("train", "--run-dir", stopped, "--resume")
    assert result.returncode == 2 and "a-active (created)" in result.stderr
    assert folder.read_status(stopped)["state"] == "stopped"

    atomic_write_json(stopped / runs.STATE_FILE, {"epochs_completed": 12, "best_val_accuracy": 0.6, "best_epoch": 9})
    result = run_cli("train", "--run-dir", stopped)  # --resume forgotten: would overwrite its checkpoints
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: Expected a new run folder without --resume; received b-stopped, which is stopped with 12 saved "
        "epoch(s): add --resume to continue it, or start a new run"
    )

    folder.write_status(active, "running")
    result = run_cli("train", "--run-dir", active, "--resume")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: Expected a run that is not already training; "
        f"received a-active, which is running in process {os.getpid()}"
    )


def test_evaluate_names_the_splits_a_dataset_has(tmp_path):
    folder = tmp_path / "labelled"
    for emotion in ("happy", "sad"):
        (folder / emotion).mkdir(parents=True)
        for index in range(3):
            cv2.imwrite(str(folder / emotion / f"{index}.png"), np.full((48, 48), 40 * index, np.uint8))
    result = run_cli("evaluate", "--data", folder, env={"FERLIB_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: Expected images in the 'validation' split of {str(folder)!r}; received none "
        "(it has: test (6)); choose one with --split, or --split all"
    )


def test_predict_reports_faces_no_face_and_unreadable_files(tiny_model_path, tmp_path):
    skimage_data = pytest.importorskip("skimage.data")
    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR))
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 200, np.uint8))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"nope")
    sliver = tmp_path / "sliver.png"  # shrunk to the detector's 640 pixels, it used to become 0 pixels tall
    cv2.imwrite(str(sliver), np.full((1, 2000), 128, np.uint8))
    (tmp_path / "again").mkdir()
    same_name = tmp_path / "again" / "astronaut.png"  # 16-bit
    cv2.imwrite(str(same_name), cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE).astype(np.uint16) * 257)
    result = run_cli(
        "predict", photo, blank, broken, sliver, same_name,
        "--model", tiny_model_path, "--annotated-dir", tmp_path / "out",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr  # one file could not be read
    lines = result.stdout.splitlines()
    assert lines[0] == f"{photo}: 1 face"
    assert re.match(r"  face 1: box=\(\d+,\d+,\d+,\d+\) label=\w+ confidence=0\.\d{3} angry=", lines[1])
    assert f"{blank}: no face found" in lines and f"{sliver}: no face found" in lines
    assert any(line.startswith(f"{broken}: skipped (Expected a decodable image") for line in lines)
    assert f"{same_name}: 1 face" in lines
    assert (tmp_path / "out" / "astronaut_annotated.png").exists()
    second = cv2.imread(str(tmp_path / "out" / "astronaut_annotated-2.png"), cv2.IMREAD_UNCHANGED)
    assert second.dtype == np.uint8 and second.ndim == 3  # a 16-bit photo gets an 8-bit annotated copy


def test_predict_an_annotated_copy_that_cannot_be_written_keeps_the_analysis(tiny_model_path, tmp_path):
    """A readable photo whose annotated copy cannot be written exits 1 with its analysis, not 2 as unreadable."""
    photo = tmp_path / "portrait.png"
    cv2.imwrite(str(photo), np.full((96, 96, 3), 128, np.uint8))
    blocked = tmp_path / "out" / "portrait_annotated.png"
    blocked.mkdir(parents=True)  # a folder where the copy should go
    result = run_cli("predict", photo, "--model", tiny_model_path, "--annotated-dir", tmp_path / "out")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "none of which" not in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{photo}: no face found"
    assert lines[1].startswith(f"{photo}: the annotated copy could not be written to {blocked}")


def test_predict_reads_each_face_through_the_views_asked_for(tiny_model_path, tmp_path):
    from ferlib.evaluation.metrics import AveragedViews
    from ferlib.live.detection import make_detector
    from ferlib.live.pipeline import EmotionPipeline
    from ferlib.nets.classifier import make_classifier

    photo = tmp_path / "face.png"
    cv2.imwrite(str(photo), np.random.default_rng(5).integers(0, 256, (64, 64), dtype=np.uint8))
    result = run_cli("predict", photo, "--model", tiny_model_path, "--detector", "none", "--tta", "zooms")
    assert result.returncode == 0, result.stderr
    printed = dict(re.findall(r" (\w+)=(0\.\d{3})", result.stdout.splitlines()[1]))
    printed.pop("confidence")
    image = cv2.imread(str(photo))
    plain = make_classifier(tiny_model_path)
    pipeline = EmotionPipeline(make_detector("none"), AveragedViews(plain, "zooms"))
    (face,) = pipeline.analyze(image).faces
    assert printed == {name: f"{value:.3f}" for name, value in face.probabilities.items()}
    (once,) = EmotionPipeline(make_detector("none"), plain).analyze(image).faces
    assert not np.allclose(face.probability_vector(), once.probability_vector(), atol=1e-6)  # the views count


def test_paths_and_values_that_cannot_work_are_one_error_line(tmp_path):
    """A folder given as a config file, an output that is a folder, --epochs 0: exit 2, no traceback."""
    results = {
        "config folder": run_cli("train", "--config", tmp_path, "--data", tmp_path),
        "epochs 0": run_cli("train", "--data", tmp_path, "--epochs", "0"),
        "json folder": run_cli("predict", tmp_path / "photo.jpg", "--json", tmp_path),
        "video with json": run_cli("predict", tmp_path / "clip.mp4", "--json", tmp_path / "out.json"),
        "no readable photo": run_cli("predict", tmp_path / "missing.jpg"),
        "tta mode": run_cli("evaluate", "--data", tmp_path / "missing.zip", "--tta", "ten"),  # named before the data
        "predict tta": run_cli("predict", tmp_path / "missing.jpg", "--tta", "ten"),  # named before the photos
    }
    for name, result in results.items():
        assert result.returncode == 2 and "Traceback" not in result.stderr, (name, result.stderr)
    last = {name: result.stderr.strip().splitlines()[-1] for name, result in results.items()}
    folder = repr(str(tmp_path))
    assert last["config folder"] == f"error: Expected a readable or writable path; received {folder} (Is a directory)"
    assert last["epochs 0"].startswith("error: Expected epochs >= 1")
    assert last["json folder"] == f"error: Expected a file path for --json; received {folder}, which is a folder"
    assert last["no readable photo"] == (
        "error: Expected readable image files; received 1, none of which could be read and analysed"
    )
    assert last["tta mode"] == "error: Expected a TTA mode among none, flip, shifts, crops, zooms; received 'ten'"
    assert last["predict tta"] == last["tta mode"]
    assert last["video with json"] == (
        "error: Expected --csv or --video-out with a video; received --json or --annotated-dir"
    )


def test_a_user_mistake_is_one_line_and_a_bug_says_it_is_one(monkeypatch, capsys):
    import ferlib.cli.data_commands

    assert main(["info", "--data", "/no/such/dataset.zip"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Expected ")

    def broken(arguments):
        raise ValueError("Input 0 of layer 'dense' is incompatible with the layer")

    monkeypatch.setattr(ferlib.cli.data_commands, "_info", broken)
    assert main(["info", "--data", "x"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("internal error: ValueError: Input 0 of layer") and "--debug" in line
    with pytest.raises(ValueError, match="Input 0 of layer"):
        main(["--debug", "info", "--data", "x"])


def test_an_atomic_write_that_cannot_start_names_the_file_meant(tmp_path, monkeypatch):
    import tempfile

    from ferlib.atomic import atomic_write_json

    def refuse(*arguments, dir=None, **keywords):
        raise PermissionError(13, "Permission denied", str(Path(dir) / ".x.json.abc.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(PermissionError) as raised:
        atomic_write_json(tmp_path / "x.json", {})
    assert raised.value.filename == str(tmp_path / "x.json") and raised.value.errno == 13


def test_damaged_inputs_are_one_error_line(tmp_path):
    """A truncated dataset zip, a binary config or search space, an oversized CSV field, an unwritable video type."""
    truncated = tmp_path / "fer2013.zip"
    truncated.write_bytes(b"PK\x03\x04" + bytes(200))  # a download cut off before the zip's directory
    binary = tmp_path / "model.keras"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    oversized = tmp_path / "faces.csv"
    oversized.write_text("emotion,pixels\n0," + "1 " * 70_000 + "\n")
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    results = {
        "truncated zip": run_cli("info", "--data", truncated),
        "binary config": run_cli("train", "--data", tmp_path, "--config", binary),
        "binary space": run_cli("tune", "--data", tmp_path, "--space", binary),
        "oversized csv": run_cli("info", "--data", oversized),
        "video type": run_cli("predict", clip, "--video-out", tmp_path / "faces.csv"),
    }
    for name, result in results.items():
        assert result.returncode == 2 and "Traceback" not in result.stderr, (name, result.stderr)
    last = {name: result.stderr.strip().splitlines()[-1] for name, result in results.items()}
    assert last["truncated zip"] == (
        f"error: Expected a readable .zip archive; received {str(truncated)!r}, which is truncated or damaged"
    )
    assert last["binary config"].startswith(f"error: Expected a JSON config file; received {str(binary)!r}")
    assert last["binary space"].startswith("error: Expected a readable JSON search space file")
    assert last["oversized csv"].startswith("error: Expected a CSV with one face per line")
    assert last["video type"].startswith("error: Expected --video-out ending in .mp4, .m4v, .mov, .mkv, .avi, .webm")
