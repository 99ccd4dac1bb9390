"""Models are checked once, where they are loaded: their classes, input and output, and the file itself."""

import json

import keras
import pytest

from ferlib.cli import main
from ferlib.nets.classifier import make_classifier
from ferlib.nets.modelio import load_model


def five_class_model(path):
    inputs = keras.Input((48, 48, 1))
    outputs = keras.layers.Dense(5, activation="softmax")(keras.layers.Flatten()(inputs))
    keras.Model(inputs, outputs).save(path)
    return path


def test_a_model_with_the_wrong_number_of_classes_is_refused_by_every_path(tmp_path, kaggle_dir, capsys):
    model = five_class_model(tmp_path / "five.keras")
    with pytest.raises(ValueError, match=r"^Expected a model with 7 class outputs .*; received .*five.keras', with 5$"):
        load_model(model)
    with pytest.raises(ValueError, match=r"with 5$"):
        make_classifier(model, backend="keras")
    photo = next(kaggle_dir.rglob("*.jpg"))
    for command in (
        ["predict", str(photo), "--model", str(model)],
        ["evaluate", "--data", str(kaggle_dir), "--model", str(model)],
    ):
        assert main(command) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: Expected a model with 7 class outputs"), lines


def test_a_model_taking_other_faces_is_refused(tmp_path):
    inputs = keras.Input((64, 64, 3))
    outputs = keras.layers.Dense(7, activation="softmax")(keras.layers.Flatten()(inputs))
    keras.Model(inputs, outputs).save(tmp_path / "colour.keras")
    with pytest.raises(ValueError, match=r"input \(N, 48, 48, 1\); received .*, whose input is \(None, 64, 64, 3\)"):
        load_model(tmp_path / "colour.keras")


def test_a_truncated_or_foreign_model_file_says_so(tmp_path, tiny_model_path):
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(tiny_model_path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="which is truncated or not one"):
        load_model(truncated)
    (tmp_path / "notes.keras").write_text(json.dumps({"not": "a model"}))
    with pytest.raises(ValueError, match="which is truncated or not one"):
        load_model(tmp_path / "notes.keras")
    (tmp_path / "broken.tflite").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match=r"^Expected a TFLite model file; received .*broken.tflite"):
        make_classifier(tmp_path / "broken.tflite")
