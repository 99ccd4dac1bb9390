import numpy as np
import pytest

import ferlib.evaluation.metrics
from ferlib.classes import EMOTIONS
from ferlib.evaluation.metrics import (
    TTA_MODES,
    AveragedViews,
    average_views,
    classification_metrics,
    confusion_matrix,
    evaluate_model,
    evaluate_modes,
    metric_key,
    predict_probabilities,
    predict_views,
    shifted,
    summary_metrics,
    tta_mode,
    tta_views,
    warped,
)


class BrighterSide:
    """A stand-in model: 'angry' when a face's left half is brighter than its right, else 'happy'."""

    def predict(self, batch, batch_size=None, verbose=0):
        left, right = batch[:, :, :24].mean(axis=(1, 2, 3)), batch[:, :, 24:].mean(axis=(1, 2, 3))
        probabilities = np.zeros((len(batch), 7), np.float32)
        probabilities[np.arange(len(batch)), np.where(left > right, 0, 3)] = 1.0
        return probabilities


def one_hot_probabilities(predictions, second_choices=None):
    probabilities = np.full((len(predictions), 7), 0.01, np.float32)
    probabilities[np.arange(len(predictions)), predictions] = 0.9
    if second_choices is not None:
        probabilities[np.arange(len(predictions)), second_choices] = 0.05
    return probabilities


def test_flip_tta_averages_the_mirror_images_probabilities():
    faces = np.zeros((2, 48, 48), np.uint8)
    faces[0, :, :24] = 200  # left half bright: 'angry' as it is, 'happy' mirrored
    faces[1, :, 24:] = 200
    plain = predict_probabilities(BrighterSide(), faces)
    assert plain.argmax(axis=1).tolist() == [0, 3]
    averaged = predict_probabilities(BrighterSide(), faces, tta=True)
    expected = np.zeros((2, 7), np.float32)
    expected[:, 0] = expected[:, 3] = 0.5
    np.testing.assert_allclose(averaged, expected)


class CentrePixel:
    """A stand-in model: 'angry' when the pixel at row 24, column 24 is bright, else 'happy'."""

    def predict(self, batch, batch_size=None, verbose=0):
        probabilities = np.zeros((len(batch), 7), np.float32)
        probabilities[np.arange(len(batch)), np.where(batch[:, 24, 24, 0] > 100, 0, 3)] = 1.0
        return probabilities


def test_shift_tta_averages_ten_views_of_which_only_the_unchanged_one_keeps_the_pixel():
    faces = np.zeros((1, 48, 48), np.uint8)
    faces[0, 24, 24] = 255  # moved 2 pixels or mirrored (to column 23), it leaves the spot the model reads
    averaged = predict_probabilities(CentrePixel(), faces, tta="shifts")
    np.testing.assert_allclose(averaged[0, [0, 3]], [0.1, 0.9], rtol=1e-6)
    assert predict_probabilities(CentrePixel(), faces, tta="flip")[0, 0] == pytest.approx(0.5)
    assert [len(tta_views(np.zeros((1, 48, 48, 1)), mode)) for mode in ("none", "flip", "shifts")] == [1, 2, 10]
    with pytest.raises(ValueError, match=rf"^Expected a TTA mode among {', '.join(TTA_MODES)}; received 'ten'$"):
        predict_probabilities(CentrePixel(), faces, tta="ten")


def test_ten_crop_views_put_each_corner_crop_under_a_cropping_models_centre_crop():
    import keras

    from ferlib.nets.architectures import build_model

    model = build_model("vgg_fer", filters=(4, 4, 4, 4), dense_units=8, input_crop=40)
    crop = keras.Model(model.input, model.get_layer("crop").output)
    face = np.random.default_rng(3).integers(0, 256, (1, 48, 48, 1)).astype(np.float32)
    seen = [keras.ops.convert_to_numpy(crop(view))[0, :, :, 0] for view in tta_views(face, "crops")]
    corners = [face[0, top : top + 40, left : left + 40, 0] for top, left in ((4, 4), (0, 0), (0, 8), (8, 0), (8, 8))]
    for index, expected in enumerate(corners):
        np.testing.assert_array_equal(seen[index], expected)  # centre, then the four corners
    assert len(seen) == 10 and len({view.tobytes() for view in seen}) == 10
    np.testing.assert_array_equal(seen[5], corners[0][:, ::-1])
    mirrored = face[0, :, ::-1, 0]
    for view in seen[5:]:  # the mirrored views are crops of the mirror image
        assert any(
            np.array_equal(view, mirrored[top : top + 40, left : left + 40])
            for top, left in ((4, 4), (0, 0), (0, 8), (8, 0), (8, 8))
        )


def test_evaluating_ten_crops_also_scores_the_plain_and_flip_views():
    faces = np.zeros((2, 48, 48), np.uint8)
    modes = evaluate_modes(CentrePixel(), faces, np.array([3, 3]), "crops")
    assert list(modes) == ["none", "flip", "crops"] and modes["crops"]["tta"] == "crops"


def test_zoom_views_scale_and_tilt_the_face_about_its_centre():
    face = np.zeros((1, 48, 48, 1), np.float32)
    face[0, 14:34, 14:34] = 200.0  # a bright 20-pixel square centred on the face
    bright = lambda view: int((view[0, :, :, 0] > 100).sum())  # noqa: E731
    assert bright(warped(face, 1.1, 0)) == 22 * 22 and bright(warped(face, 0.9, 0)) == 18 * 18
    turned = warped(face, 1.0, 5.0)[0, :, :, 0]
    assert turned[14, 16] < 100 < turned[14, 31]  # turned counter-clockwise, its top edge rises to the right
    np.testing.assert_allclose(warped(face, 1.0, 0.0), face)
    face = np.random.default_rng(4).integers(0, 256, (2, 48, 48, 1)).astype(np.float32)
    views = tta_views(face, "zooms")
    assert len(views) == 18 and np.array_equal(views[0], face) and len({view.tobytes() for view in views}) == 18
    for index in range(9):
        np.testing.assert_array_equal(views[9 + index], views[index][:, :, ::-1, :])
    assert warped(face[:0], 0.9, 5.0).shape == (0, 48, 48, 1)


def test_evaluating_several_modes_scores_each_and_the_plain_and_flip_views_once():
    faces = np.random.default_rng(2).integers(0, 256, (6, 48, 48), dtype=np.uint8)
    labels = np.array([0, 1, 2, 3, 4, 5])
    every = evaluate_modes(MeanBrightness(), faces, labels, ("crops", "zooms"))
    assert list(every) == ["none", "flip", "crops", "zooms"]
    for mode in every:
        assert every[mode] == evaluate_model(MeanBrightness(), faces, labels, tta=mode), mode
    with pytest.raises(ValueError, match=r"^Expected at least one TTA mode to evaluate; received none$"):
        evaluate_modes(MeanBrightness(), faces, labels, ())


def test_a_classifier_averaging_views_answers_what_evaluation_computes():
    faces = np.random.default_rng(6).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    averaged = AveragedViews(MeanBrightness(), "zooms")
    np.testing.assert_allclose(averaged(faces), predict_probabilities(MeanBrightness(), faces, tta="zooms"))
    assert averaged.class_names == EMOTIONS and averaged(faces[:0]).shape == (0, 7)
    with pytest.raises(ValueError, match=r"^Expected a TTA mode among .*; received 'ten'$"):
        AveragedViews(MeanBrightness(), "ten")


def test_the_second_half_of_the_views_mirrors_the_first():
    batch = np.random.default_rng(0).random((3, 48, 48, 1)).astype(np.float32)
    views = tta_views(batch, "shifts")
    assert np.array_equal(views[0], batch)
    for index in range(5):
        np.testing.assert_array_equal(views[5 + index], views[index][:, :, ::-1, :])
    assert len({view.tobytes() for view in views}) == 10


class MeanBrightness:
    """A stand-in model whose probabilities follow each face's brightness, weighting its right half twice, so
    every view (a mirror image or a shift) gives its own answer."""

    def predict(self, batch, batch_size=None, verbose=0):
        means = batch[:, :, :24].mean(axis=(1, 2, 3)) + 2 * batch[:, :, 24:].mean(axis=(1, 2, 3))
        return np.stack([np.sin(means / 50 + k) ** 2 for k in range(7)], axis=1).astype(np.float32)


def test_views_are_predicted_in_chunks_with_the_same_result(monkeypatch):
    faces = np.random.default_rng(1).integers(0, 256, (11, 48, 48), dtype=np.uint8)
    whole = predict_views(MeanBrightness(), faces, tta="shifts")
    monkeypatch.setattr(ferlib.evaluation.metrics, "TTA_CHUNK_FACES", 4)
    np.testing.assert_allclose(predict_views(MeanBrightness(), faces, tta="shifts"), whole, rtol=1e-6)
    # One pass of ten views gives the plain and flip figures too.
    np.testing.assert_allclose(average_views(whole, "none"), predict_probabilities(MeanBrightness(), faces), rtol=1e-6)
    np.testing.assert_allclose(
        average_views(whole, "flip"), predict_probabilities(MeanBrightness(), faces, tta=True), rtol=1e-6
    )
    assert len({row.tobytes() for row in whole[:, 0]}) == 10  # every view of a face answers differently
    with pytest.raises(ValueError, match=r"includes 'shifts'; received 2 views"):
        average_views(whole[[0, 5]], "shifts")
    with pytest.raises(ValueError, match=r"includes 'flip'; received 3 views"):
        average_views(whole[:3], "flip")
    with pytest.raises(
        ValueError, match=r"^Expected a batch of faces shaped \(N, 48, 48\); received shape \(48, 48\)$"
    ):
        predict_probabilities(MeanBrightness(), faces[0])


def test_tta_flags_of_any_boolean_kind_name_a_mode():
    assert [tta_mode(value) for value in (None, False, np.bool_(False), True, np.bool_(True))] == [
        "none", "none", "none", "flip", "flip",
    ]  # fmt: skip


def test_one_prediction_of_the_richest_views_scores_every_mode_it_includes():
    faces = np.random.default_rng(3).integers(0, 256, (12, 48, 48), dtype=np.uint8)
    labels = np.arange(12) % 7
    model = BrighterSide()
    assert list(evaluate_modes(model, faces, labels, "flip")) == ["none", "flip"]
    every = evaluate_modes(model, faces, labels, "shifts")
    for mode in ("none", "flip", "shifts"):
        assert every[mode] == evaluate_model(model, faces, labels, tta=mode), mode


def test_each_tta_modes_summary_figures_have_their_own_card_keys():
    """The keys cards shipped since the first session hold, generated from one table."""
    assert [metric_key("accuracy", mode) for mode in (False, True, "none", "flip", "shifts")] == [
        "validation_accuracy", "validation_accuracy_tta", "validation_accuracy", "validation_accuracy_tta",
        "validation_accuracy_tta_shifts",
    ]  # fmt: skip
    figures = {"accuracy": 0.5, "macro_f1": 0.25, "top2_accuracy": 0.75, "per_class": {}}
    assert summary_metrics({"none": figures, "shifts": {**figures, "accuracy": 0.6}}) == {
        "validation_accuracy": 0.5, "validation_macro_f1": 0.25, "validation_top2_accuracy": 0.75,
        "validation_accuracy_tta_shifts": 0.6, "validation_macro_f1_tta_shifts": 0.25,
        "validation_top2_accuracy_tta_shifts": 0.75,
    }  # fmt: skip
    assert metric_key("accuracy", "crops") == "validation_accuracy_tta_crops"
    with pytest.raises(ValueError, match=rf"^Expected a TTA mode among {', '.join(TTA_MODES)}; received 'ten'$"):
        metric_key("accuracy", "ten")


def test_a_shift_repeats_the_edge_pixels_it_uncovers():
    batch = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    down = shifted(batch, 2, 0)[0, :, :, 0]
    np.testing.assert_array_equal(down[2:], batch[0, :2, :, 0])  # moved down 2 rows
    np.testing.assert_array_equal(down[:2], np.repeat(batch[0, :1, :, 0], 2, axis=0))  # the top row repeated
    left = shifted(batch, 0, -1)[0, :, :, 0]
    np.testing.assert_array_equal(left[:, :3], batch[0, :, 1:, 0])
    np.testing.assert_array_equal(left[:, 3], batch[0, :, 3, 0])


def test_metrics_match_hand_computed_values():
    labels = np.array([0, 0, 1, 3, 3, 3])
    predictions = np.array([0, 3, 1, 3, 3, 0])
    metrics = classification_metrics(labels, one_hot_probabilities(predictions, second_choices=[3, 0, 0, 0, 0, 3]))
    assert metrics["n"] == 6
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    angry = metrics["per_class"]["angry"]
    assert angry == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    happy = metrics["per_class"]["happy"]
    assert happy["precision"] == pytest.approx(2 / 3) and happy["recall"] == pytest.approx(2 / 3)
    # macro-F1 averages the classes that occur or are predicted: angry 0.5, disgust 1.0, happy 2/3
    assert metrics["macro_f1"] == pytest.approx((0.5 + 1.0 + 2 / 3) / 3)
    assert metrics["top2_accuracy"] == pytest.approx(1.0)
    assert metrics["confusion_matrix"][0] == [1, 0, 0, 1, 0, 0, 0]
    assert metrics["class_names"] == list(EMOTIONS)


def test_macro_f1_agrees_with_scikit_learn_when_a_predicted_class_is_absent():
    """A folder without 'disgust' images: wrong 'disgust' predictions must lower macro-F1, not vanish from it."""
    from sklearn.metrics import f1_score

    labels = np.array([0, 0, 3, 3, 3, 4])
    predictions = np.array([0, 1, 3, 3, 1, 4])
    metrics = classification_metrics(labels, one_hot_probabilities(predictions))
    assert metrics["per_class"]["disgust"]["support"] == 0
    assert metrics["macro_f1"] == pytest.approx(f1_score(labels, predictions, average="macro"))
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0 + 0.8 + 1) / 4)


def test_confusion_matrix_rows_are_true_classes():
    matrix = confusion_matrix(np.array([2, 2, 5]), np.array([2, 6, 5]))
    assert matrix[2, 2] == 1 and matrix[2, 6] == 1 and matrix[5, 5] == 1 and matrix.sum() == 3


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="Expected probabilities shaped"):
        classification_metrics(np.array([0, 1]), np.zeros((3, 7)))
