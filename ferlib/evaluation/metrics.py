"""Classification metrics computed with NumPy, and model prediction with optional test-time augmentation (TTA)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from ferlib.classes import EMOTIONS, NUM_CLASSES
from ferlib.data.preprocess import to_model_batch
from ferlib.errors import FerError
from ferlib.nets.ensemble import ensemble_weights

# Test-time augmentation modes: the views of each face whose probabilities are averaged.
# "flip": the face and its mirror image (2 views). "shifts": those two, each also moved 2 pixels up, down, left
# and right with the border pixels repeated (10 views, the analogue of ten-crop averaging for a model that sees
# the whole 48x48 face). "crops": ten-crop averaging for a model that looks at a central 40x40 crop
# (`input_crop`): the face, and the face moved 4 pixels diagonally so that the model's crop is each corner crop,
# each also mirrored (10 views). "zooms": the face scaled by 0.9, 1 and 1.1 and tilted by -5, 0 and 5 degrees
# about its centre, each also mirrored (18 views): sizes and tilts within the range training augments with, which
# the networks answer about as accurately as the face itself, yet differently enough that their average gains.
TTA_MODES = ("none", "flip", "shifts", "crops", "zooms")
TTA_DESCRIPTIONS = {
    "none": "none",
    "flip": "flip (2 views)",
    "shifts": "flips and ±2-pixel shifts (10 views)",
    "crops": "ten crops: the centre and four corners, each mirrored (10 views)",
    "zooms": "flips, ±10% zooms and ±5° tilts (18 views)",
}
TTA_SHIFT_PIXELS = 2
TTA_CORNER_PIXELS = 4  # (48 - 40) / 2: moves a 40-pixel centre crop onto a corner
TTA_ZOOMS = (1.0, 0.9, 1.1)  # the unchanged size first, so that the first view is the face itself
TTA_TILT_DEGREES = (0.0, -5.0, 5.0)
# A model card's summary figures: `validation_<figure><suffix of the TTA mode>`, e.g. validation_accuracy_tta.
TTA_METRIC_SUFFIXES = {
    "none": "",
    "flip": "_tta",
    "shifts": "_tta_shifts",
    "crops": "_tta_crops",
    "zooms": "_tta_zooms",
}
SUMMARY_FIGURES = ("accuracy", "macro_f1", "top2_accuracy")
# Faces whose views are built and predicted together: bounds memory (18 float32 views of 28,709 training faces
# would take 4.8 GB at once; of 2,048, 340 MB) without making Keras's per-call overhead matter.
TTA_CHUNK_FACES = 2048


def ten_view_mode(config: dict[str, Any]) -> str:
    """The ten-view TTA mode that suits a model of this config: ten crops for a model that looks at a crop (for an
    ensemble, when every member does)."""
    members = config.get("members") if isinstance(config, dict) else None
    if isinstance(members, list) and members:
        modes = {ten_view_mode(member) if isinstance(member, dict) else "shifts" for member in members}
        return "crops" if modes == {"crops"} else "shifts"
    hyperparameters = config.get("hyperparameters") if isinstance(config, dict) else None
    cropping = isinstance(hyperparameters, dict) and bool(hyperparameters.get("input_crop"))
    return "crops" if cropping else "shifts"


def tta_mode(tta: bool | str | None) -> str:
    """The mode named by `tta`: False or None is "none" and True is "flip", as the `tta` flags elsewhere mean."""
    if tta is None or isinstance(tta, bool | np.bool_):
        return "flip" if tta else "none"
    if tta not in TTA_MODES:
        raise FerError(f"Expected a TTA mode among {', '.join(TTA_MODES)}; received {tta!r}")
    return tta


def metric_key(figure: str, tta: bool | str) -> str:
    """The summary key of one figure under one TTA mode: ("accuracy", "flip") -> "validation_accuracy_tta"."""
    return f"validation_{figure}{TTA_METRIC_SUFFIXES[tta_mode(tta)]}"


def summary_metrics(evaluations: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The summary figures of evaluations keyed by TTA mode, under their `metric_key`s."""
    return {
        metric_key(figure, mode): evaluation[figure]
        for mode, evaluation in evaluations.items()
        for figure in SUMMARY_FIGURES
    }


def shifted(batch: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """(N, H, W, C) images moved `rows` down and `columns` right, the uncovered border repeating the edge pixels."""
    height, width = batch.shape[1:3]
    margin = max(abs(rows), abs(columns))
    padded = np.pad(batch, ((0, 0), (margin, margin), (margin, margin), (0, 0)), mode="edge")
    top, left = margin - rows, margin - columns
    return np.ascontiguousarray(padded[:, top : top + height, left : left + width, :])


def warped(batch: np.ndarray, zoom: float, degrees: float) -> np.ndarray:
    """(N, H, W, 1) images scaled by `zoom` and turned `degrees` counter-clockwise about their centre, the uncovered
    border repeating the edge pixels."""
    height, width = batch.shape[1:3]
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), degrees, zoom)
    flags, border = cv2.INTER_LINEAR, cv2.BORDER_REPLICATE
    turned = [cv2.warpAffine(image[..., 0], matrix, (width, height), flags=flags, borderMode=border) for image in batch]
    return np.stack(turned)[..., None] if turned else batch.copy()


def tta_views(batch: np.ndarray, tta: bool | str) -> list[np.ndarray]:
    """The views of a model batch (N, 48, 48, 1) that `tta` averages over.

    The unchanged batch comes first; with mirroring, the second half holds the mirror images of the first half
    in the same order (so views 0 and len/2 are the flip pair).
    """
    mode = tta_mode(tta)
    views = [batch]
    if mode == "shifts":
        step = TTA_SHIFT_PIXELS
        views += [shifted(batch, rows, columns) for rows, columns in ((-step, 0), (step, 0), (0, -step), (0, step))]
    if mode == "crops":
        step = TTA_CORNER_PIXELS
        views += [
            shifted(batch, rows, columns)
            for rows, columns in ((step, step), (step, -step), (-step, step), (-step, -step))
        ]
    if mode == "zooms":
        poses = [(zoom, degrees) for zoom in TTA_ZOOMS for degrees in TTA_TILT_DEGREES][1:]
        views += [warped(batch, zoom, degrees) for zoom, degrees in poses]
    if mode != "none":
        views += [np.ascontiguousarray(view[:, :, ::-1, :]) for view in views]
    return views


def view_count(tta: bool | str) -> int:
    """How many views of each face `tta` averages (1, 2, 10 or 18)."""
    return len(tta_views(np.zeros((1, 8, 8, 1), np.float32), tta))


def predict_views(model: Any, images: np.ndarray, *, tta: bool | str, batch_size: int = 256) -> np.ndarray:
    """Class probabilities of every view `tta` makes of each face: (views, N, classes), in `tta_views` order."""
    mode = tta_mode(tta)
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise FerError(f"Expected a batch of faces shaped (N, 48, 48); received shape {images.shape}")
    result = None
    for start in range(0, len(images), TTA_CHUNK_FACES):
        views = tta_views(to_model_batch(images[start : start + TTA_CHUNK_FACES]), mode)
        for index, view in enumerate(views):
            predicted = model.predict(view, batch_size=batch_size, verbose=0)
            if result is None:  # as many columns as the model has classes
                result = np.zeros((view_count(mode), len(images), predicted.shape[-1]), dtype=np.float32)
            result[index, start : start + len(view)] = predicted
    return result if result is not None else np.zeros((view_count(mode), 0, NUM_CLASSES), dtype=np.float32)


def average_views(view_probabilities: np.ndarray, tta: bool | str) -> np.ndarray:
    """(N, 7) probabilities of a TTA mode from `predict_views` output of that mode or a richer one.

    One pass of "shifts" views thus also gives the plain and flip figures (views 0 and len/2).
    """
    mode, available = tta_mode(tta), len(view_probabilities)
    if mode == "none":
        chosen = view_probabilities[:1]
    elif mode == "flip":
        pairs = available in {view_count(mode) for mode in TTA_MODES if mode != "none"}
        chosen = view_probabilities[[0, available // 2]] if pairs else None
    else:
        chosen = view_probabilities if available == view_count(mode) else None
    if chosen is None:
        raise FerError(f"Expected the views of a TTA mode that includes {mode!r}; received {available} views")
    return chosen.astype(np.float64).mean(axis=0).astype(np.float32)


def project_probabilities(probabilities: np.ndarray, columns: list[list[int]]) -> np.ndarray:
    """Probabilities over fewer (or merged) classes: each new class sums its `columns` (ClassSet.columns_for), and
    each row is renormalised, so a seven-class model answers a two-class question as if it had been asked it."""
    summed = np.stack([np.asarray(probabilities)[:, picked].sum(axis=1) for picked in columns], axis=1)
    return summed / np.maximum(summed.sum(axis=1, keepdims=True), 1e-12)


def average_probabilities(probabilities: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """Several models' probabilities for the same faces averaged with `weights` (scaled to sum to 1, equal by
    default): what an ensemble of the models (ferlib.nets.ensemble) answers, without building it."""
    scaled = ensemble_weights(weights, len(probabilities))
    arrays = [np.asarray(chosen, dtype=np.float64) for chosen in probabilities]
    if len({array.shape for array in arrays}) != 1:
        shapes = [array.shape for array in arrays]
        raise FerError(f"Expected probabilities for the same faces and classes; received shapes {shapes}")
    return sum(weight * array for weight, array in zip(scaled, arrays, strict=True)).astype(np.float32)


def predict_probabilities(
    model: Any, images: np.ndarray, *, tta: bool | str = False, batch_size: int = 256
) -> np.ndarray:
    """Class probabilities (N, 7) for preprocessed (N, 48, 48) uint8 faces.

    `tta` (a mode of TTA_MODES, or True for "flip") averages the probabilities of each face's views.
    """
    return average_views(predict_views(model, images, tta=tta, batch_size=batch_size), tta)


class AveragedViews:
    """A classifier that reads each face through the views of a TTA mode and answers their average: a photo read
    the way `evaluate --tta` reads the validation faces, at the cost of one prediction per view."""

    def __init__(self, classifier: Any, tta: bool | str) -> None:
        self.classifier, self.tta = classifier, tta_mode(tta)
        self.class_names = tuple(getattr(classifier, "class_names", EMOTIONS))

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        if len(faces) == 0:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)
        return predict_probabilities(self.classifier, faces, tta=self.tta)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Counts with true classes as rows and predicted classes as columns."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)), 1)
    return matrix


def class_names_of(model: Any, count: int) -> tuple[str, ...]:
    """A model's class names: a classifier's own (from its card), FER-2013's seven, or numbered classes."""
    names = getattr(model, "class_names", None)
    if names is not None and len(names) == count:
        return tuple(names)
    return EMOTIONS if count == NUM_CLASSES else tuple(f"class {index}" for index in range(count))


def classification_metrics(
    labels: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str] = EMOTIONS
) -> dict[str, Any]:
    """Accuracy, macro-F1, top-2 accuracy, per-class precision/recall/F1/support and the confusion matrix."""
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities)
    classes = len(class_names)
    if probabilities.ndim != 2 or probabilities.shape[1] != classes or probabilities.shape[0] != labels.shape[0]:
        raise FerError(f"Expected probabilities shaped ({labels.shape[0]}, {classes}); received {probabilities.shape}")
    count = int(labels.shape[0])
    predictions = probabilities.argmax(axis=1) if count else np.zeros(0, dtype=np.int64)
    matrix = confusion_matrix(labels, predictions, classes)
    true_positive = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    support = matrix.sum(axis=1).astype(np.float64)
    precision = np.divide(true_positive, predicted, out=np.zeros_like(true_positive), where=predicted > 0)
    recall = np.divide(true_positive, support, out=np.zeros_like(true_positive), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(true_positive), where=denominator > 0)
    present = (support > 0) | (predicted > 0)  # as scikit-learn: a class predicted but absent scores 0
    top2 = np.argsort(-probabilities, axis=1)[:, :2] if count else np.zeros((0, 2), dtype=np.int64)
    return {
        "n": count,
        "accuracy": float(true_positive.sum() / count) if count else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "top2_accuracy": float(np.mean(np.any(top2 == labels[:, None], axis=1))) if count else 0.0,
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": matrix.tolist(),
        "class_names": list(class_names),
    }


def score(
    labels: np.ndarray, probabilities: np.ndarray, tta: bool | str, class_names: Sequence[str] | None = None
) -> dict[str, Any]:
    """`classification_metrics` of probabilities predicted with a TTA mode, which `metrics["tta"]` names."""
    names = class_names if class_names is not None else class_names_of(None, np.asarray(probabilities).shape[-1])
    metrics = classification_metrics(labels, probabilities, names)
    metrics["tta"] = tta_mode(tta)
    return metrics


def score_views(
    view_probabilities: np.ndarray, labels: np.ndarray, tta: bool | str, class_names: Sequence[str] | None = None
) -> dict[str, Any]:
    """The metrics of one TTA mode from `predict_views` output."""
    return score(labels, average_views(view_probabilities, tta), tta, class_names)


def evaluate_modes(
    model: Any,
    images: np.ndarray,
    labels: np.ndarray,
    tta: bool | str | Sequence[str],
    class_names: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """The metrics of `tta` (one mode or several) and of the simpler modes their views include (none, and flip for
    any richer mode), keyed by mode: one prediction of the views of each mode richer than flip, else of the richest
    mode named."""
    named = [tta_mode(mode) for mode in ([tta] if tta is None or isinstance(tta, bool | np.bool_ | str) else tta)]
    if not named:
        raise FerError("Expected at least one TTA mode to evaluate; received none")
    richer = [mode for mode in dict.fromkeys(named) if mode not in ("none", "flip")]
    evaluations: dict[str, dict[str, Any]] = {}
    for mode in richer or [max(named, key=view_count)]:
        views = predict_views(model, images, tta=mode)
        names = class_names or class_names_of(model, views.shape[-1])
        for shown in dict.fromkeys(("none", "flip", mode) if mode != "none" else ("none",)):
            if shown not in evaluations:
                evaluations[shown] = score_views(views, labels, shown, names)
    return evaluations


def card_modes(config: dict[str, Any]) -> tuple[str, ...]:
    """The TTA modes a shipped model's card records beyond none and flip: its ten-view mode and the zooms."""
    return (ten_view_mode(config), "zooms")


def evaluate_model(
    model: Any,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    tta: bool | str = False,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Predict and score in one call; the result is JSON-serialisable and names its TTA mode (one of TTA_MODES)
    in `metrics["tta"]`."""
    views = predict_views(model, images, tta=tta)
    return score_views(views, labels, tta, class_names or class_names_of(model, views.shape[-1]))
