"""Metrics reports for the shipped model and finished runs, evaluations with probabilities, and their exports.

A report gathers what was recorded when the model was made (a run's metrics.json, history.csv and progress.jsonl;
the shipped model's sidecar card) into one shape, so that the dashboard, the CLI and tests read models alike.
Metrics themselves are computed by `ferlib.evaluation.metrics` only.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ferlib.atomic import read_json
from ferlib.classes import EMOTIONS, ClassSet
from ferlib.errors import FerError
from ferlib.evaluation.cards import labelled_notes
from ferlib.evaluation.metrics import (
    SUMMARY_FIGURES,
    TTA_METRIC_SUFFIXES,
    metric_key,
    predict_probabilities,
    project_probabilities,
    score,
    ten_view_mode,
)
from ferlib.jobs import folder, progress, runs
from ferlib.jobs.runs import AVERAGE_MODEL, epoch_span
from ferlib.jsonutil import finite
from ferlib.nets.modelio import read_metadata

SHIPPED = "shipped"
RUN = "run"
HISTORY_KEYS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")
PER_CLASS_KEYS = ("precision", "recall", "f1", "support")


@dataclass
class ModelReport:
    """One model's recorded metrics: evaluation-shaped dicts (see ferlib.evaluation.metrics), curves and details.

    `metrics` and `metrics_tta` hold what was recorded, any of n, accuracy, macro_f1, top2_accuracy, per_class and
    confusion_matrix; older cards may lack some. `history` has one dict per epoch with HISTORY_KEYS (1-based epochs).
    """

    name: str
    kind: str
    model_path: Path
    metrics: dict[str, Any]
    metrics_tta: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float | None]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The model's classes, in output order (as its metrics name them)."""
        return tuple(self.metrics.get("class_names") or self.metrics.get("per_class") or EMOTIONS)

    @property
    def has_per_class(self) -> bool:
        return bool(self.metrics.get("per_class"))

    @property
    def has_confusion_matrix(self) -> bool:
        return bool(self.metrics.get("confusion_matrix"))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of everything in the report."""
        return {
            "name": self.name,
            "kind": self.kind,
            "model_path": str(self.model_path),
            "class_names": list(self.class_names),
            "metrics": self.metrics,
            "metrics_tta": self.metrics_tta,
            "history": self.history,
            "details": self.details,
        }


# --- reading reports ----------------------------------------------------------------------------------------


def run_history(run_dir: str | os.PathLike) -> list[dict[str, float | None]]:
    """Per-epoch curves of a run: progress.jsonl's epoch records (with the learning rate), else history.csv."""
    records = progress.epoch_records(folder.read_progress(run_dir))
    if records:
        return [history_row(record, int(record["epoch"])) for record in records]
    return [history_row(row, int(row.get("epoch", index)) + 1) for index, row in enumerate(runs.read_history(run_dir))]


def _averaged_weights(run_dir: Path) -> dict[str, Any] | None:
    """What `python -m ferlib average` saved in the run (average.keras), in brief; None when it has not run."""

    try:
        card = read_metadata(run_dir / AVERAGE_MODEL) if (run_dir / AVERAGE_MODEL).exists() else {}
    except ValueError:  # a damaged sidecar: the run's own report still shows
        return None
    epochs, metrics = card.get("averaged_epochs"), card.get("metrics")
    metrics = metrics if isinstance(metrics, dict) else {}
    if not isinstance(epochs, list) or not epochs:
        return None
    return _present(
        model_file=str(run_dir / AVERAGE_MODEL),
        epochs=f"{epoch_span(epochs)} ({len(epochs)} checkpoints)",
        accuracy=metrics.get(metric_key("accuracy", "none")),
        accuracy_with_flip_tta=metrics.get(metric_key("accuracy", "flip")),
    )


def history_row(values: dict[str, Any], epoch: int) -> dict[str, float | None]:
    """One epoch's curve values under HISTORY_KEYS (None where missing), numbered `epoch` from 1."""
    return {"epoch": epoch, **{key: finite(values.get(key)) for key in HISTORY_KEYS if key != "epoch"}}


def run_report(run_dir: str | os.PathLike) -> ModelReport:
    """The report of a finished run, from metrics.json, its curves, config and state; ValueError if unfinished."""
    path = Path(run_dir)
    recorded = read_json(path / runs.METRICS_FILE, default=None)
    if not isinstance(recorded, dict) or not isinstance(recorded.get("validation"), dict):
        raise FerError(
            f"Expected a finished run folder with {runs.METRICS_FILE}; received {str(path)!r}, which has none "
            "(it is still training, was stopped, or failed)"
        )
    config = read_json(path / folder.CONFIG_FILE, default={}) or {}
    state = read_json(path / runs.STATE_FILE, default={}) or {}
    details = {
        "architecture": config.get("architecture"),
        "parameters": recorded.get("parameters"),
        "best_epoch": recorded.get("best_epoch", state.get("best_epoch")),
        "epochs_completed": state.get("epochs_completed"),
        "epochs": config.get("epochs"),
        "train_seconds": recorded.get("train_seconds_this_session"),
        "averaged_weights": _averaged_weights(path),
        "config": config,
    }
    return ModelReport(
        name=path.name,
        kind=RUN,
        model_path=path / runs.BEST_MODEL,
        metrics=recorded["validation"],
        metrics_tta=recorded.get("validation_tta") or {},
        history=run_history(path),
        details=details,
    )


def shipped_report(model_path: str | os.PathLike, card: dict[str, Any] | None = None) -> ModelReport:
    """The report of a shipped model from its card (the sidecar JSON written by `ship_model` or `ship_ensemble`).

    `card` defaults to the model's sidecar; a plain checkpoint's sidecar gives the summary metrics only.
    """
    path = Path(model_path)
    card = read_metadata(path) if card is None else card
    summary = card.get("metrics") or {}
    metrics, metrics_tta = (_card_metrics(card, mode) for mode in ("none", "flip"))
    config = card.get("config") or {}
    details = _present(
        architecture=card.get("architecture") or config.get("architecture"),
        parameters=card.get("parameters"),
        best_epoch=summary.get("best_epoch"),
        epochs_completed=card.get("epochs_completed"),
        epochs=config.get("epochs"),
        train_seconds=card.get("train_wall_seconds"),
        source_run=card.get("source_run"),
        split=summary.get("split"),
        # Ten views per face cost ten times the inference, so it is a figure to read, not the page's TTA toggle.
        accuracy_with_10_view_tta=summary.get(metric_key("accuracy", ten_view_mode(config))),
        macro_f1_with_10_view_tta=summary.get(metric_key("macro_f1", ten_view_mode(config))),
        accuracy_with_zoom_tta=summary.get(metric_key("accuracy", "zooms")),
        notes=[f"{label}: {note}" for label, note in labelled_notes(card)] or None,
        config=config,
    )
    rows = card.get("history") or []
    history = [history_row(row, int(row.get("epoch") or index + 1)) for index, row in enumerate(rows)]
    return ModelReport(path.stem, SHIPPED, path, metrics, metrics_tta, history, details)


def _card_metrics(card: dict[str, Any], mode: str) -> dict[str, Any]:
    """One TTA mode's figures as a shipped card records them: summary figures, per-class and confusion matrix."""
    summary, suffix = card.get("metrics") or {}, TTA_METRIC_SUFFIXES[mode]
    recorded = mode == "none" or metric_key("accuracy", mode) in summary
    return _present(
        n=summary.get("n") if recorded else None,
        **{figure: summary.get(metric_key(figure, mode)) for figure in SUMMARY_FIGURES},
        per_class=card.get(f"per_class{suffix}"),
        confusion_matrix=card.get(f"confusion_matrix{suffix}"),
        class_names=card.get("class_names"),
    )


def finished_runs(runs_dir: str | os.PathLike | None = None) -> list[runs.RunSummary]:
    """Runs that finished and recorded their metrics, newest first."""
    return [
        run for run in runs.list_runs(runs_dir) if run.state == "finished" and (run.path / runs.METRICS_FILE).exists()
    ]


# --- tables and exports -------------------------------------------------------------------------------------


def summary_row(report: ModelReport) -> dict[str, Any]:
    """One line of a comparison table: headline metrics and training details (None where not recorded)."""
    final = report.history[-1] if report.history else {}
    return {
        "model": report.name,
        "kind": report.kind,
        "architecture": report.details.get("architecture"),
        "accuracy": report.metrics.get("accuracy"),
        "macro_f1": report.metrics.get("macro_f1"),
        "top2_accuracy": report.metrics.get("top2_accuracy"),
        "accuracy_tta": report.metrics_tta.get("accuracy"),
        "macro_f1_tta": report.metrics_tta.get("macro_f1"),
        "epochs": report.details.get("epochs_completed") or len(report.history) or None,
        "best_epoch": report.details.get("best_epoch"),
        "final_train_accuracy": final.get("accuracy"),
        "final_val_loss": final.get("val_loss"),
        "parameters": report.details.get("parameters"),
        "n": report.metrics.get("n"),
    }


def per_class_rows(per_class: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-class precision, recall, F1 and support as rows, in the model's class order."""
    return [{"class": name, **{key: values.get(key) for key in PER_CLASS_KEYS}} for name, values in per_class.items()]


def per_class_csv(per_class: dict[str, dict[str, Any]], per_class_tta: dict[str, dict[str, Any]] | None = None) -> str:
    """Per-class metrics as CSV text (class,precision,recall,f1,support), with flip-TTA columns when given."""
    tta = per_class_tta or {}
    extra = [f"{key}_tta" for key in PER_CLASS_KEYS[:3]] if tta else []
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["class", *PER_CLASS_KEYS, *extra])
    for row in per_class_rows(per_class):
        values = [_format(row[key]) for key in PER_CLASS_KEYS]
        with_tta = [_format(tta.get(row["class"], {}).get(key[:-4])) for key in extra]
        writer.writerow([row["class"], *values, *with_tta])
    return buffer.getvalue()


def report_json(report: ModelReport, evaluation: dict[str, Any] | None = None) -> str:
    """The report as indented JSON text, with an optional fresh evaluation (e.g. on another dataset) added."""
    content = report.to_dict()
    if evaluation is not None:
        content["evaluation"] = evaluation
    return json.dumps(content, indent=2, default=_json_value)


def normalized_confusion(matrix: np.ndarray | list[list[int]]) -> np.ndarray:
    """Row-normalised confusion matrix (each true class sums to 1; a class without examples stays all zero)."""
    counts = np.asarray(matrix, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


# --- evaluating on a dataset and finding mistakes -----------------------------------------------------------


@dataclass
class SplitEvaluation:
    """A model's predictions on one split: the faces of its classes, their labels and probabilities in its classes'
    order, their metrics, and how many faces of other classes were left out."""

    split: str
    images: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray
    metrics: dict[str, Any]
    class_names: tuple[str, ...] = EMOTIONS
    left_out: int = 0


def evaluate_split(
    model: Any,
    dataset: Any,
    split: str = "validation",
    *,
    tta: bool | str = False,
    classes: ClassSet | None = None,
    model_classes: ClassSet | None = None,
) -> SplitEvaluation:
    """Predict and score every face of one split of a `Dataset` that belongs to `classes` (the model's own,
    `model_classes`, by default; FER-2013's seven when neither is given). A model over other classes answers through
    `project_probabilities` (a seven-class model scored on happy and sad faces picks the likelier of the two), so
    models of different class sets compare on the classes they share. FerError when no face is left."""
    classes = classes or model_classes or ClassSet.all()
    columns = (model_classes or classes).columns_for(classes)  # refused before predicting: it lacks a class
    images, labels = dataset.subset(split)
    keep, labels = classes.apply(labels)
    images, left_out = images[keep], int(np.sum(~keep))
    if len(labels) == 0:
        what = "images" if classes.is_all else f"faces of {classes.describe()}"
        raise FerError(f"Expected {what} in the {split} split of {dataset.report.source!r}; received none")
    probabilities = predict_probabilities(model, images, tta=tta)
    if model_classes is not None and model_classes != classes:
        probabilities = project_probabilities(probabilities, columns)
    metrics = {**score(labels, probabilities, tta, classes.names), "left_out": left_out}
    return SplitEvaluation(split, images, labels, probabilities, metrics, classes.names, left_out)


@dataclass(frozen=True)
class Mistake:
    """A wrongly classified face: its index in the split, true and predicted class, and the probabilities."""

    index: int
    true_index: int
    predicted_index: int
    confidence: float
    true_probability: float
    class_names: tuple[str, ...] = EMOTIONS

    @property
    def true_label(self) -> str:
        return self.class_names[self.true_index]

    @property
    def predicted_label(self) -> str:
        return self.class_names[self.predicted_index]


def most_confident_mistakes(
    labels: np.ndarray,
    probabilities: np.ndarray,
    limit: int = 24,
    *,
    true_class: int | None = None,
    predicted_class: int | None = None,
    class_names: tuple[str, ...] = EMOTIONS,
) -> list[Mistake]:
    """The `limit` wrong predictions the model was surest of, most confident first (ties by index).

    `true_class` and `predicted_class` keep only mistakes on that true or predicted class (e.g. one confusion cell).
    """
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[0] != len(labels) or probabilities.shape[1] != len(class_names):
        raise FerError(
            f"Expected probabilities shaped ({len(labels)}, {len(class_names)}); received {probabilities.shape}"
        )
    if limit < 0:
        raise FerError(f"Expected a non-negative number of mistakes; received {limit}")
    predictions = probabilities.argmax(axis=1)
    wrong = predictions != labels
    if true_class is not None:
        wrong &= labels == true_class
    if predicted_class is not None:
        wrong &= predictions == predicted_class
    indices = np.flatnonzero(wrong)
    confidences = probabilities[indices, predictions[indices]]
    order = indices[np.lexsort((indices, -confidences))][:limit]
    return [
        Mistake(
            index=int(index),
            true_index=int(labels[index]),
            predicted_index=int(predictions[index]),
            confidence=float(probabilities[index, predictions[index]]),
            true_probability=float(probabilities[index, labels[index]]),
            class_names=tuple(class_names),
        )
        for index in order
    ]


# --- small helpers ------------------------------------------------------------------------------------------


def _present(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def _json_value(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serialisable")
