"""ferlib.nets.ensemble: several networks as one model averaging their probabilities, saved, reloaded, explained."""

import re

import keras
import numpy as np
import pytest

from ferlib.errors import FerError
from ferlib.evaluation.gradcam import GradCam
from ferlib.nets.ensemble import build_ensemble, ensemble_members, ensemble_weights
from ferlib.nets.export import count_flops


def small_network(seed: int, classes: int = 7) -> keras.Model:
    """A tiny randomly initialised convolutional classifier over 48x48 gray faces."""
    keras.utils.set_random_seed(seed)
    face = keras.Input((48, 48, 1))
    features = keras.layers.ReLU()(keras.layers.Conv2D(4, 3, strides=4)(keras.layers.Rescaling(1 / 255)(face)))
    return keras.Model(face, keras.layers.Dense(classes, activation="softmax")(keras.layers.Flatten()(features)))


def faces(count: int = 4) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (count, 48, 48, 1)).astype(np.float32)


def test_an_ensemble_averages_its_members_with_their_weights_and_survives_saving(tmp_path):
    first, second = small_network(1), small_network(2)
    ensemble = build_ensemble([first, second], [3, 1])
    batch = faces()
    expected = 0.75 * first.predict(batch, verbose=0) + 0.25 * second.predict(batch, verbose=0)
    np.testing.assert_allclose(ensemble.predict(batch, verbose=0), expected, atol=1e-6)
    ensemble.save(tmp_path / "ensemble.keras")
    reloaded = keras.saving.load_model(tmp_path / "ensemble.keras", compile=False)
    np.testing.assert_allclose(reloaded.predict(batch, verbose=0), expected, atol=1e-6)
    assert [weight for _, weight in ensemble_members(reloaded)] == [0.75, 0.25]
    assert count_flops(reloaded) == count_flops(first) + count_flops(second) > 0
    assert ensemble_members(first) == []  # a single network is no ensemble


def test_averaging_predictions_answers_as_the_ensemble_model_does():
    from ferlib.evaluation.metrics import average_probabilities

    first, second, batch = small_network(3), small_network(4), faces(6)
    predictions = [first.predict(batch, verbose=0), second.predict(batch, verbose=0)]
    ensemble = build_ensemble([first, second], [1, 2]).predict(batch, verbose=0)
    np.testing.assert_allclose(average_probabilities(predictions, [1, 2]), ensemble, atol=1e-6)
    np.testing.assert_allclose(average_probabilities(predictions), (predictions[0] + predictions[1]) / 2, atol=1e-6)
    with pytest.raises(FerError, match=r"^Expected probabilities for the same faces and classes; received shapes"):
        average_probabilities([predictions[0], predictions[1][:3]])


def test_weights_are_scaled_and_checked():
    assert ensemble_weights(None, 4) == [0.25] * 4
    assert ensemble_weights([2, 6], 2) == [0.25, 0.75]
    for weights, count, message in (
        (None, 1, "two or more models to combine; received 1"),
        ([1.0], 2, "one weight for each of the 2 models; received 1"),
        ([1.0, 0.0], 2, "positive weights; received [1.0, 0.0]"),
        ([1.0, float("nan")], 2, "positive weights"),
        ([1.0, "2"], 2, "positive weights"),
    ):
        with pytest.raises(FerError, match=f"^Expected {re.escape(message)}"):
            ensemble_weights(weights, count)


def test_members_with_different_class_counts_are_refused():
    with pytest.raises(FerError, match=r"^Expected models with the same number of classes; received \[2, 7\]"):
        build_ensemble([small_network(1), small_network(2, classes=2)])


def test_grad_cam_of_an_ensemble_weighs_its_members_maps_for_the_ensembles_class():
    first, second = small_network(1), small_network(2)
    ensemble = build_ensemble([first, second], [1, 1])
    batch = faces(3)[..., 0].astype(np.uint8)
    explanation = GradCam(ensemble).explain(batch)
    assert explanation.heatmaps.shape == (3, 48, 48) and explanation.heatmaps.max() <= 1.0
    probabilities = ensemble.predict(batch[..., None].astype(np.float32), verbose=0)
    np.testing.assert_allclose(explanation.probabilities, probabilities, atol=1e-5)
    assert list(explanation.class_indices) == list(probabilities.argmax(axis=1))
    members = [
        GradCam(first).explain(batch, explanation.class_indices),
        GradCam(second).explain(batch, explanation.class_indices),
    ]
    combined = (members[0].heatmaps + members[1].heatmaps) / 2
    peaks = combined.max(axis=(1, 2))
    for index in np.flatnonzero(peaks > 0):
        np.testing.assert_allclose(explanation.heatmaps[index], combined[index] / peaks[index], atol=1e-5)
    assert GradCam(ensemble).layer_name.count("member_") == 2
