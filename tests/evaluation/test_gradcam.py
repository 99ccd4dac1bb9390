"""Grad-CAM: target layer found by type, heatmaps that point at the evidence, overlays, and photos via detection."""

import cv2
import keras
import numpy as np
import pytest
from keras import layers

from ferlib.classes import EMOTIONS
from ferlib.data.preprocess import preprocess_face
from ferlib.evaluation.gradcam import (
    GradCam,
    explain_photo,
    find_target_layer,
    normalise_evidence,
    overlay_heatmap,
    position_evidence,
)
from ferlib.live.detection import FaceBox, WholeImageDetector
from ferlib.nets.architectures import build_model
from ferlib.nets.modelio import load_model


def brightness_model() -> keras.Model:
    """A model whose class 0 score is the mean of the (relu'd) pixel brightness and class 1 its negative.

    Grad-CAM for class 0 must therefore light up exactly the bright pixels, and find no evidence for class 1.
    """
    inputs = keras.Input(shape=(48, 48, 1))
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    x = layers.Conv2D(1, 1, use_bias=False, kernel_initializer="ones", name="identity")(x)
    x = layers.Activation("relu", name="features")(x)
    x = layers.GlobalAveragePooling2D()(x)
    weights = np.zeros((1, len(EMOTIONS)), dtype=np.float32)
    weights[0, 0], weights[0, 1] = 10.0, -10.0
    dense = layers.Dense(len(EMOTIONS), activation="softmax", name="emotion")
    outputs = dense(x)
    dense.set_weights([weights, np.zeros(len(EMOTIONS), dtype=np.float32)])
    return keras.Model(inputs, outputs)


def bright_square_face() -> np.ndarray:
    face = np.zeros((48, 48), dtype=np.uint8)
    face[4:16, 30:44] = 255
    return face


def test_target_layer_is_the_last_spatial_conv_or_activation_of_each_architecture():
    for name, hyperparameters in (
        ("compact_cnn", {"filters": (8, 16, 32), "dense_units": 16}),
        ("vgg_fer", {"filters": (8, 8, 16, 16), "dense_units": 16}),
    ):
        model = build_model(name, **hyperparameters)
        layer = find_target_layer(model)
        assert isinstance(layer, layers.Activation) and len(layer.output.shape) == 4
        position = model.layers.index(layer)
        later = model.layers[position + 1 :]
        assert not any(
            isinstance(other, (layers.Conv2D, layers.Activation)) and len(other.output.shape) == 4 for other in later
        )
        assert any(isinstance(other, layers.Conv2D) for other in model.layers[:position])


def test_a_model_without_feature_maps_is_refused():
    inputs = keras.Input(shape=(48, 48, 1))
    outputs = layers.Dense(len(EMOTIONS), activation="softmax")(layers.Flatten()(inputs))
    with pytest.raises(ValueError, match="Conv2D or activation"):
        find_target_layer(keras.Model(inputs, outputs))


def test_heatmap_lights_up_the_evidence_and_nothing_for_the_class_against_it():
    gradcam = GradCam(brightness_model())
    assert gradcam.layer_name == "features" and gradcam.uses_logits
    face = bright_square_face()
    heatmap = gradcam.heatmap(face, 0)
    assert heatmap.shape == (48, 48) and heatmap.dtype == np.float32
    assert heatmap.max() == pytest.approx(1.0, abs=1e-3) and heatmap.min() >= 0.0
    assert heatmap[6:14, 32:42].min() > 0.9  # inside the bright square
    assert heatmap[30:, :20].max() < 0.05  # far from it
    assert np.all(gradcam.heatmap(face, 1) == 0)  # class 1 is pushed down by brightness: no positive evidence


def test_explain_defaults_to_the_predicted_class_and_returns_the_models_probabilities(tiny_model_path, training_data):
    from ferlib.data.datasets import load_dataset

    model, _ = load_model(tiny_model_path)
    images, _ = load_dataset(training_data).subset("validation")
    faces = images[:5]
    gradcam = GradCam(model)
    explanation = gradcam.explain(faces)
    expected = model.predict(faces[..., None].astype(np.float32), verbose=0)
    np.testing.assert_allclose(explanation.probabilities, expected, atol=1e-5)
    np.testing.assert_array_equal(explanation.class_indices, expected.argmax(axis=1))
    assert explanation.heatmaps.shape == (5, 48, 48)
    assert np.isfinite(explanation.heatmaps).all()
    assert explanation.heatmaps.min() >= 0 and explanation.heatmaps.max() <= 1
    peaks = explanation.heatmaps.max(axis=(1, 2))
    assert all(peak > 0.5 or peak == 0 for peak in peaks), peaks  # scaled per face, or no positive evidence
    assert (explanation.heatmaps.mean(axis=(1, 2)) < 0.99).all()  # a map, not a saturated square
    again = gradcam.explain(faces, explanation.class_indices)
    np.testing.assert_allclose(again.heatmaps, explanation.heatmaps, atol=1e-6)  # deterministic
    other = gradcam.explain(faces, [(index + 3) % 7 for index in explanation.class_indices])
    assert not np.allclose(other.heatmaps, explanation.heatmaps)  # the class matters


def test_bad_class_indices_and_face_sizes_are_explained():
    gradcam = GradCam(brightness_model())
    with pytest.raises(ValueError, match="class indices 0-6"):
        gradcam.heatmap(bright_square_face(), 7)
    with pytest.raises(ValueError, match="one per face"):
        gradcam.explain(np.stack([bright_square_face()] * 3), [0, 1])
    with pytest.raises(ValueError, match="48x48"):
        gradcam.heatmap(np.zeros((64, 64), dtype=np.uint8))


def test_evidence_is_gradient_times_activation_at_each_position_positive_part_scaled():
    features = np.ones((2, 2, 2, 2), dtype=np.float32)
    features[:, 0, 0] = [3.0, 0.0]
    gradients = np.zeros_like(features)
    gradients[..., 0], gradients[..., 1] = 1.0, -0.5
    gradients[0, 1, 1, 0] = -2.0  # one position whose first channel now counts against the class
    gradients[1] = -gradients[1]  # the second face: the same evidence, all against the class
    evidence = position_evidence(features, gradients)
    np.testing.assert_allclose(evidence[0], [[3.0, 0.5], [0.5, -2.5]], rtol=1e-6)
    maps, flat = normalise_evidence(evidence)
    np.testing.assert_allclose(maps[0], [[1.0, 0.5 / 3], [0.5 / 3, 0.0]], rtol=1e-6)
    assert list(flat) == [False, True] and np.all(maps[1] == 0)


def test_the_shipped_model_has_evidence_on_the_astronauts_face():
    """Averaged-gradient Grad-CAM left this map blank: the flattening head makes every averaged weight misleading."""
    from skimage import data

    from ferlib.live.detection import make_detector

    model, _ = load_model()
    (face,) = explain_photo(GradCam(model), data.astronaut()[..., ::-1], make_detector("haar"))
    assert face.label == "happy" and not face.flat
    assert face.heatmap.max() == pytest.approx(1.0, abs=1e-3) and 0.02 < face.heatmap.mean() < 0.8


def test_overlay_blends_a_colormap_over_the_image():
    image = np.full((100, 80), 128, dtype=np.uint8)
    heatmap = np.zeros((48, 48), dtype=np.float32)
    heatmap[:24] = 1.0
    unchanged = overlay_heatmap(image, heatmap, alpha=0.0)
    assert unchanged.shape == (100, 80, 3) and unchanged.dtype == np.uint8
    assert np.all(unchanged == 128)
    colored = overlay_heatmap(image, heatmap, alpha=1.0)
    blue, _, red = colored[10, 40]
    assert red >= 120 and blue < 10  # JET: hot is (dark) red; OpenCV images are BGR
    blue, _, red = colored[90, 40]
    assert blue >= 120 and red < 10  # cold is (dark) blue
    half = overlay_heatmap(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), heatmap, alpha=0.5)
    assert np.abs(half.astype(int) - (colored.astype(int) + 128) / 2).max() <= 1
    with pytest.raises(ValueError, match="opacity"):
        overlay_heatmap(image, heatmap, alpha=1.5)
    with pytest.raises(ValueError, match="2-D heatmap"):
        overlay_heatmap(image, np.zeros((2, 2, 2)))


def test_explain_photo_crops_and_preprocesses_like_the_pipeline(tiny_model_path):
    from ferlib.live.pipeline import EmotionPipeline
    from ferlib.nets.classifier import KerasClassifier

    model, _ = load_model(tiny_model_path)
    generator = np.random.default_rng(3)
    photo = generator.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    box = (40, 20, 60, 70)

    def detector(_gray):
        return [FaceBox(*box)]

    faces = explain_photo(GradCam(model), photo, detector)
    (face,) = faces
    assert face.box == box and face.crop.shape == (70, 60, 3)
    np.testing.assert_array_equal(face.face, preprocess_face(photo[20:90, 40:100]))
    pipeline_face = EmotionPipeline(detector, KerasClassifier(model=model)).analyze(photo).faces[0]
    np.testing.assert_allclose(face.probabilities, pipeline_face.probability_vector(), atol=1e-5)
    assert face.label == pipeline_face.label and face.confidence == pytest.approx(pipeline_face.confidence, abs=1e-5)
    assert face.heatmap.shape == (48, 48)
    assert explain_photo(GradCam(model), photo, lambda _gray: []) == []
    whole = explain_photo(GradCam(model), photo, WholeImageDetector(), class_index=2)
    assert whole[0].class_index == 2 and whole[0].crop.shape == photo.shape


def test_explain_photo_finds_the_face_in_a_real_photo(tiny_model_path):
    skimage_data = pytest.importorskip("skimage.data")
    from ferlib.live.detection import make_detector

    model, _ = load_model(tiny_model_path)
    photo = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    faces = explain_photo(GradCam(model), photo, make_detector("haar"))
    assert len(faces) == 1
    x, y, width, height = faces[0].box
    assert 150 < x + width / 2 < 300 and 50 < y + height / 2 < 200  # Eileen Collins' face, upper middle
    assert faces[0].heatmap.max() <= 1.0
    assert faces[0].heatmap.max() > 0.5 or faces[0].heatmap.max() == 0  # scaled to its peak, or no evidence


def test_a_detector_that_needs_colour_gets_the_photo_itself(tiny_model_path):
    model, _ = load_model(tiny_model_path)
    photo = np.random.default_rng(4).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    seen = []

    class ColourDetector:
        needs_color = True

        def __call__(self, image):
            seen.append(image.shape)
            return [FaceBox(0, 0, 40, 40)]

    def gray_detector(image):
        seen.append(image.shape)
        return [FaceBox(0, 0, 40, 40)]

    explain_photo(GradCam(model), photo, ColourDetector())
    explain_photo(GradCam(model), photo, gray_detector)
    assert seen == [(60, 80, 3), (60, 80)]


def test_explain_command_writes_each_faces_heatmap_and_an_overlay(tmp_path, capsys):
    from skimage import data

    from ferlib.cli import main

    photo, text = tmp_path / "astronaut.png", tmp_path / "notes.txt"
    cv2.imwrite(str(photo), data.astronaut()[..., ::-1])
    text.write_text("not a photo")
    status = main(
        ["explain", str(photo), str(text), "--output-dir", str(tmp_path / "out"), "--json", str(tmp_path / "e.json")]
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert status == 1 and lines[-1] == "faces=1" and any("notes.txt: skipped" in line for line in lines)
    import json

    (face,) = json.loads((tmp_path / "e.json").read_text())["faces"]
    heatmap = np.array(face["heatmap"])
    assert face["label"] == "happy" and heatmap.shape == (48, 48) and heatmap.max() == pytest.approx(1.0, abs=1e-3)
    assert (
        not face["flat"] and len(face["box"]) == 4 and sum(face["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    )
    overlay = cv2.imread(face["overlay"])
    assert overlay.shape == (512, 512, 3)
    x, y, width, height = face["box"]
    assert (
        np.abs(
            overlay[y + 5 : y + height - 5, x + 5 : x + width - 5].astype(int)
            - data.astronaut()[..., ::-1][y + 5 : y + height - 5, x + 5 : x + width - 5]
        ).mean()
        > 5
    )  # the heatmap is drawn in the face's box
    assert main(["explain", str(text)]) == 2
