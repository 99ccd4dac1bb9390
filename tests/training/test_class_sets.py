"""Models of other class sets: trained on their classes only, scored on them, and naming only them."""

import json

import cv2
import numpy as np

from ferlib.cli import main
from ferlib.jobs import runs
from ferlib.live.detection import WholeImageDetector
from ferlib.live.pipeline import EmotionPipeline
from ferlib.nets.classifier import make_classifier
from ferlib.nets.modelio import load_model, read_metadata
from ferlib.training import run_launch


def test_a_happy_or_sad_model_trains_scores_and_names_only_its_classes(tmp_path, training_data, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"architecture": "compact_cnn", "hyperparameters": {"filters": [8, 16, 32]}}))
    arguments = ["train", "--data", str(training_data), "--config", str(config), "--epochs", "1"]
    assert main([*arguments, "--classes", "sad, happy", "--runs-dir", str(tmp_path / "runs"), "--quiet"]) == 0
    (run,) = runs.list_runs(tmp_path / "runs")
    assert run_launch.load_config(run.path).classes == ["happy", "sad"]
    best = run.path / runs.BEST_MODEL
    card = read_metadata(best)
    assert card["class_names"] == ["happy", "sad"] and card["classes"] == ["happy", "sad"]
    model, _ = load_model(best)
    assert model.output_shape[-1] == 2
    metrics = json.loads((run.path / runs.METRICS_FILE).read_text())["validation"]
    assert metrics["n"] == 16 and list(metrics["per_class"]) == ["happy", "sad"]  # 8 validation faces of each

    capsys.readouterr()
    assert (
        main(["evaluate", "--data", str(training_data), "--model", str(best), "--json", str(tmp_path / "e.json")]) == 0
    )
    printed = capsys.readouterr().out
    assert "40 faces of other classes than the model's (happy, sad) were left out" in printed
    assert printed.strip().splitlines()[-1].endswith("n=16")
    assert json.loads((tmp_path / "e.json").read_text())["left_out"] == 40

    pipeline = EmotionPipeline(WholeImageDetector(), make_classifier(best, backend="keras"))
    (face,) = pipeline.analyze(np.full((48, 48), 120, np.uint8)).faces
    assert list(face.probabilities) == ["happy", "sad"] and face.label in ("happy", "sad")
    photo = tmp_path / "face.png"
    cv2.imwrite(str(photo), np.full((48, 48), 120, np.uint8))
    assert main(["predict", str(photo), "--model", str(best), "--detector", "none"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "happy=" in line and "sad=" in line and "angry=" not in line


def test_a_model_of_fewer_classes_starts_from_a_seven_class_model_with_its_columns(tiny_model_path):
    from ferlib.classes import ClassSet
    from ferlib.nets.architectures import build_model
    from ferlib.training.trainer import load_initial_weights

    source, card = load_model(tiny_model_path)
    hyperparameters = card["config"]["hyperparameters"]
    faces = np.random.default_rng(0).integers(0, 256, (6, 48, 48, 1)).astype(np.float32)
    seven = source.predict(faces, verbose=0)

    happy_or_sad = build_model("compact_cnn", num_classes=2, **hyperparameters)
    load_initial_weights(happy_or_sad, tiny_model_path, ClassSet.parse("happy,sad"))
    expected = seven[:, [3, 4]] / seven[:, [3, 4]].sum(axis=1, keepdims=True)  # the same logits, renormalised
    np.testing.assert_allclose(happy_or_sad.predict(faces, verbose=0), expected, atol=1e-5)

    merged = ClassSet.parse({"negative": ["angry", "disgust", "fear", "sad"], "positive": ["happy", "surprise"]})
    two = build_model("compact_cnn", num_classes=2, **hyperparameters)
    load_initial_weights(two, tiny_model_path, merged)  # merged heads start from their emotions' columns
    assert two.predict(faces, verbose=0).shape == (6, 2)


def test_a_happy_or_sad_model_ships_with_its_classes_and_is_explained_by_them(tmp_path, training_data, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"architecture": "compact_cnn", "hyperparameters": {"filters": [8, 16, 32]}}))
    arguments = ["train", "--data", str(training_data), "--config", str(config), "--epochs", "1", "--quiet"]
    assert main([*arguments, "--classes", "happy,sad", "--runs-dir", str(tmp_path / "runs")]) == 0
    (run,) = runs.list_runs(tmp_path / "runs")
    shipped = tmp_path / "models" / "happy_or_sad.keras"
    assert main(["ship", "--run-dir", str(run.path), "--data", str(training_data), "--output", str(shipped)]) == 0
    card = read_metadata(shipped)
    assert card["class_names"] == ["happy", "sad"] and card["metrics"]["n"] == 16
    for path in (shipped.with_suffix(".tflite"), shipped.with_name("happy_or_sad.int8.tflite")):
        assert make_classifier(path).class_names == ("happy", "sad")
    photo = tmp_path / "face.png"
    cv2.imwrite(str(photo), np.full((48, 48), 120, np.uint8))
    capsys.readouterr()
    out = tmp_path / "explained.json"
    assert (
        main(
            [
                "explain",
                str(photo),
                "--model",
                str(shipped),
                "--detector",
                "none",
                "--json",
                str(out),
                "--output-dir",
                str(tmp_path / "explained"),
            ]
        )
        == 0
    )
    (face,) = json.loads(out.read_text())["faces"]
    assert face["label"] in ("happy", "sad") and list(face["probabilities"]) == ["happy", "sad"]
