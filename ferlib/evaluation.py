"""Classification metrics computed with NumPy, and model prediction with optional flip TTA."""

from __future__ import annotations

from typing import Any

import numpy as np

from ferlib.classes import EMOTIONS, NUM_CLASSES
from ferlib.preprocess import to_model_batch


def predict_probabilities(model: Any, images: np.ndarray, *, tta: bool = False, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (N, 7) for preprocessed (N, 48, 48) uint8 faces.

    With `tta`, the mirror image's probabilities are averaged in (horizontal-flip test-time augmentation).
    """
    if len(images) == 0:
        return np.zeros((0, NUM_CLASSES), dtype=np.float32)
    batch = to_model_batch(images)
    probabilities = np.asarray(model.predict(batch, batch_size=batch_size, verbose=0), dtype=np.float32)
    if tta:
        mirrored = np.ascontiguousarray(batch[:, :, ::-1, :])
        probabilities = (probabilities + np.asarray(model.predict(mirrored, batch_size=batch_size, verbose=0))) / 2.0
    return probabilities


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Counts with true classes as rows and predicted classes as columns."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)), 1)
    return matrix


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro-F1, top-2 accuracy, per-class precision/recall/F1/support and the confusion matrix."""
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 2 or probabilities.shape[1] != NUM_CLASSES or probabilities.shape[0] != labels.shape[0]:
        raise ValueError(
            f"Expected probabilities shaped ({labels.shape[0]}, {NUM_CLASSES}); received {probabilities.shape}"
        )
    count = int(labels.shape[0])
    predictions = probabilities.argmax(axis=1) if count else np.zeros(0, dtype=np.int64)
    matrix = confusion_matrix(labels, predictions)
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
            for i, name in enumerate(EMOTIONS)
        },
        "confusion_matrix": matrix.tolist(),
        "class_names": list(EMOTIONS),
    }


def evaluate_model(model: Any, images: np.ndarray, labels: np.ndarray, *, tta: bool = False) -> dict[str, Any]:
    """Predict and score in one call; the result is JSON-serialisable."""
    metrics = classification_metrics(labels, predict_probabilities(model, images, tta=tta))
    metrics["tta"] = bool(tta)
    return metrics
