"""The shipped default model: present with its card and TFLite exports, accurate, and right on a real photo."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import REPO_ROOT, SHARED_ZIP

from ferlib.classes import EMOTIONS
from ferlib.evaluation.cards import render_model_card
from ferlib.nets.classifier import KerasClassifier, TFLiteClassifier
from ferlib.nets.modelio import DEFAULT_MODEL_NAME, MODELS_DIR, load_model, read_metadata

MODEL = MODELS_DIR / DEFAULT_MODEL_NAME


SIX = ["angry", "fear", "happy", "sad", "surprise", "neutral"]  # the seed project's classes
DERIVED = {"happy_or_sad.keras": (["happy", "sad"], 0.92), "fer_vgg_six.keras": (SIX, 0.66)}  # and the least accuracy


@pytest.mark.parametrize(
    ("name", "classes"),
    [(DEFAULT_MODEL_NAME, list(EMOTIONS)), ("fer_vgg_compact.keras", list(EMOTIONS))]
    + [(name, classes) for name, (classes, _) in DERIVED.items()],
)
def test_the_model_ships_with_its_card_and_exports(name, classes):
    model = MODELS_DIR / name
    assert model.exists(), f"{model} is missing"
    card = read_metadata(model)
    assert card["class_names"] == classes and card["input_size"] == [48, 48, 1]
    for key in (
        "architecture",
        "parameters",
        "flops_per_face",
        "config",
        "epochs_completed",
        "train_wall_seconds",
        "per_class",
        "per_class_tta",
        "confusion_matrix",
        "tflite_top1_agreement",
    ):
        assert key in card, key
    exports = [MODELS_DIR / card["tflite_file"], MODELS_DIR / card["int8_tflite_file"]]  # as the card names them
    assert exports == [model.with_suffix(".tflite"), model.with_suffix(".int8.tflite")]
    for path in (model, *exports):
        assert path.exists() and path.stat().st_size < 25 * 2**20, path
    markdown = model.with_suffix(".md").read_text(encoding="utf-8")  # the human-readable card, from the same JSON
    assert markdown.startswith(f"# Model card: {name}")
    assert f"| Keras model | {card['metrics']['validation_accuracy']:.4f} |" in markdown
    assert markdown == render_model_card(card, name)  # regenerated whenever the renderer changes


def test_astronaut_photo_predicts_happy(tmp_path):
    skimage_data = pytest.importorskip("skimage.data")
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR))
    result = subprocess.run(
        [sys.executable, "-m", "ferlib", "predict", str(photo)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"{photo}: 1 face"
    assert " label=happy " in result.stdout.splitlines()[1]


@pytest.fixture(scope="module")
def fer2013(tmp_path_factory):
    """FER-2013 from ../shared, decoded once for this module's real-data tests."""
    from ferlib.data.datasets import load_dataset

    return load_dataset(SHARED_ZIP, cache_dir=tmp_path_factory.mktemp("fer2013_cache"))


@pytest.mark.real_data
@pytest.mark.skipif(not SHARED_ZIP.exists(), reason=f"{SHARED_ZIP} not present")
def test_publictest_accuracy_and_tflite_agreement(fer2013):
    from ferlib.evaluation.metrics import evaluate_model

    images, labels = fer2013.subset("validation")
    model, card = load_model(MODEL)
    metrics = evaluate_model(model, images, labels)
    assert metrics["n"] == 3589
    assert metrics["accuracy"] >= 0.68  # measured 0.6815 when it shipped
    assert metrics["accuracy"] == pytest.approx(card["metrics"]["validation_accuracy"], abs=1e-3)
    # The card's figures come from the same faces; 18 zoomed and tilted views per face (2 minutes here) took it past
    # 0.70 (`python -m ferlib evaluate --tta zooms` prints it).
    assert card["metrics"]["validation_accuracy_tta_zooms"] >= 0.70
    keras_top1 = KerasClassifier(model=model).predict(images[..., None]).argmax(axis=1)
    tflite_top1 = TFLiteClassifier(MODEL.with_suffix(".tflite")).predict(images[..., None]).argmax(axis=1)
    assert np.mean(keras_top1 == tflite_top1) >= 0.99
    int8_top1 = TFLiteClassifier(MODEL.with_suffix(".int8.tflite")).predict(images[..., None]).argmax(axis=1)
    assert np.mean(keras_top1 == int8_top1) >= 0.98  # the live page's default path; 0.991 measured at ship time
    json.dumps(metrics)


def test_the_happy_or_sad_model_names_only_its_classes_and_says_happy_for_the_astronaut(tmp_path):
    skimage_data = pytest.importorskip("skimage.data")
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR))
    model = MODELS_DIR / "happy_or_sad.keras"
    command = [sys.executable, "-m", "ferlib", "predict", str(photo), "--model", str(model)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    face = result.stdout.splitlines()[1]
    assert " label=happy " in face and "sad=" in face and "neutral" not in face and "angry" not in face, face


@pytest.mark.real_data
@pytest.mark.skipif(not SHARED_ZIP.exists(), reason=f"{SHARED_ZIP} not present")
@pytest.mark.parametrize("name", list(DERIVED))
def test_derived_models_score_on_the_faces_of_their_classes(name, fer2013):
    from ferlib.classes import ClassSet
    from ferlib.evaluation.reports import evaluate_split

    classes, least = DERIVED[name]
    model, card = load_model(MODELS_DIR / name)
    evaluation = evaluate_split(model, fer2013, "validation", classes=ClassSet.parse(classes))
    assert evaluation.metrics["accuracy"] >= least  # measured at ship time, on PublicTest's faces of these classes
    assert evaluation.metrics["accuracy"] == pytest.approx(card["metrics"]["validation_accuracy"], abs=1e-3)
    assert evaluation.metrics["n"] + evaluation.left_out == 3589
