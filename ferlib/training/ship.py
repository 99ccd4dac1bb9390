"""Shipping a run's model: the .keras file, its float and int8 TFLite exports, its card and Markdown card.

Everything is measured on the validation split the card names, with every test-time augmentation mode the model
supports, and written beside the target only once all of it succeeded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ferlib.atomic import atomic_write_text, read_json
from ferlib.data.datasets import load_dataset
from ferlib.data.preprocess import IMAGE_SIZE
from ferlib.errors import FerError
from ferlib.evaluation.cards import render_model_card
from ferlib.evaluation.lineage import lineage_summary
from ferlib.evaluation.metrics import card_modes, evaluate_model, evaluate_modes, summary_metrics
from ferlib.jobs.runs import AVERAGE_MODEL, BEST_MODEL
from ferlib.nets.classifier import TFLiteClassifier
from ferlib.nets.export import count_flops, export_tflite, export_tflite_int8, tflite_agreement
from ferlib.nets.modelio import model_metadata, read_metadata, save_model
from ferlib.nets.precision import FLOAT32, with_precision
from ferlib.training.averaging import averaging_note, check_current
from ferlib.training.config import TrainConfig
from ferlib.training.trainer import class_subset

CHECKPOINTS = (BEST_MODEL, AVERAGE_MODEL)  # the run's models `ship` takes
CALIBRATION_FACES = 1000  # training faces calibrating int8 ranges (agreed with the float model more often than 300)


def describe_validation_split(dataset) -> str:
    """How the validation faces were chosen, in words for the card."""
    source = Path(dataset.report.source).name
    if dataset.report.validation_from_train:
        return f"validation (a seeded stratified 10% of the training images of {source})"
    names = [Path(str(path)).name for path in dataset.paths[dataset.split_mask("validation")]]
    public_test = dataset.report.layout == "csv" or (names and all(name.startswith("PublicTest_") for name in names))
    if public_test:  # a CSV's Usage column or Kaggle's file names say so; a folder named val/ does not
        return f"validation (FER-2013 PublicTest, from {source})"
    return f"validation (from {source})"


def ship_model(
    run_dir: str | os.PathLike,
    data: str | os.PathLike,
    target: str | os.PathLike,
    notes: Sequence[str] = (),
    checkpoint: str = BEST_MODEL,
) -> dict[str, Any]:
    """Copy a run's best checkpoint (or `checkpoint`, e.g. average.keras from `ferlib.training.averaging`) to `target`
    (.keras), export TFLite, and write the full model card sidecar.

    `notes` are sentences for the card that the run folder cannot tell, such as a code fix made mid-run; averaged
    weights are noted on their own.
    """
    import keras  # heavy: imported when a model is shipped, not when this module is

    run_dir, target = Path(run_dir), checked_target(target)  # checked first: evaluations and exports take minutes
    notes = checked_notes(notes)
    if checkpoint not in CHECKPOINTS:
        raise FerError(f"Expected a checkpoint among {', '.join(CHECKPOINTS)}; received {checkpoint!r}")
    best = run_dir / checkpoint
    if not best.exists():
        raise FerError(f"Expected a run folder with {checkpoint}; received {str(run_dir)!r}")
    try:
        model = with_precision(keras.saving.load_model(best, compile=False), FLOAT32)
    except Exception as error:  # Keras raises assorted types for a truncated or foreign file
        raise FerError(f"Expected a loadable {checkpoint} in {str(run_dir)!r}; received {error}") from None
    checkpoint_card = read_metadata(best)
    averaged = averaging_note(checkpoint_card)
    if averaged:
        check_current(run_dir, checkpoint_card)
        notes = [averaged, *notes]
    dataset = load_dataset(data)
    config = read_json(run_dir / "config.json", default={}) or {}
    run_config = TrainConfig.from_dict(config)
    images, labels = class_subset(dataset, "validation", run_config)
    if len(labels) == 0:
        raise FerError(f"Expected a validation split in {str(data)!r}; received none")
    classes = run_config.class_set.names
    evaluations = evaluate_modes(model, images, labels, card_modes(config), classes)
    plain, tta = evaluations["none"], evaluations["flip"]
    metrics = {"split": describe_validation_split(dataset), **summary_metrics(evaluations), "n": plain["n"]}
    write = lambda staged: _write_shipped_files(model, dataset, metrics, config, run_dir, staged, plain, tta, notes)  # noqa: E731
    return staged_shipping(target, write)


def checked_target(target: str | os.PathLike) -> Path:
    """The .keras path a model ships to; anything else is refused before minutes of evaluation."""
    path = Path(target)
    if path.suffix != ".keras":
        raise FerError(f"Expected an output path ending in .keras; received {str(target)!r}")
    return path


def checked_notes(notes: Sequence[str] | str) -> list[str]:
    """The card's extra sentences, each one line of text."""
    notes = [notes] if isinstance(notes, str) else list(notes)
    if not all(isinstance(note, str) and note.strip() and "\n" not in note for note in notes):
        raise FerError(f"Expected each note to be one line of text; received {notes!r}")
    return [note.strip() for note in notes]


def staged_shipping(
    target: Path, write: Callable[[Path], dict[str, Any]], before_moving: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Run `write` on a staging path beside `target`, then move the model's five files into place; its card.

    Nothing moves unless all of it succeeded: a failed int8 conversion or a full disk must not leave a new .tflite
    beside the old card. `before_moving` is called once the files are written, before the first moves: a job that
    can be stopped stops being stoppable there.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".ship-", dir=target.parent))
    try:
        card = write(staging / target.name)
        if before_moving is not None:
            before_moving()
        for suffix in (".int8.tflite", ".tflite", ".md", ".json", ".keras"):  # .keras last: readers key on it
            os.replace(staging / f"{target.stem}{suffix}", target.with_name(f"{target.stem}{suffix}"))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return card


def exports(
    model: Any, target: Path, images: np.ndarray, labels: np.ndarray, calibration: np.ndarray, classes: tuple[str, ...]
) -> dict[str, Any]:
    """Float and int8 TFLite exports beside `target`, and the card's fields that measure them on the validation
    faces (top-1 agreement with the Keras model, the int8 model's accuracy)."""
    tflite_path = export_tflite(model, target.with_suffix(".tflite"))
    calibration = calibration[np.random.default_rng(0).permutation(len(calibration))[:CALIBRATION_FACES]]
    int8_path = export_tflite_int8(model, target.with_suffix(".int8.tflite"), calibration)
    int8_metrics = evaluate_model(TFLiteClassifier(int8_path, class_names=classes), images, labels, class_names=classes)
    return {
        "tflite_file": tflite_path.name,
        "tflite_top1_agreement": tflite_agreement(model, tflite_path, images, classes),
        "int8_tflite_file": int8_path.name,
        "int8_tflite_top1_agreement": tflite_agreement(model, int8_path, images, classes),
        "int8_validation_accuracy": int8_metrics["accuracy"],
    }


def measured_fields(model: Any, plain: dict[str, Any], tta: dict[str, Any]) -> dict[str, Any]:
    """The card's fields that describe the network and its validation scores, plain and with flip TTA."""
    return {
        "parameters": int(model.count_params()),
        "flops_per_face": count_flops(model),
        "input_shape": [IMAGE_SIZE, IMAGE_SIZE, 1],
        "per_class": dict(plain["per_class"]),
        "per_class_tta": dict(tta["per_class"]),
        "confusion_matrix": plain["confusion_matrix"],
        "confusion_matrix_tta": tta["confusion_matrix"],
    }


def save_shipped(model: Any, target: Path, card: dict[str, Any]) -> dict[str, Any]:
    """Save the .keras model with its card (file sizes included) and the Markdown card; the card."""
    save_model(model, target, card)
    card["file_size_mb"] = round(target.stat().st_size / 2**20, 2)
    card["tflite_size_mb"] = round(target.with_suffix(".tflite").stat().st_size / 2**20, 2)
    card["int8_tflite_size_mb"] = round(target.with_suffix(".int8.tflite").stat().st_size / 2**20, 2)
    save_model(model, target, card)
    atomic_write_text(target.with_suffix(".md"), render_model_card(card, target.name))
    return card


def _write_shipped_files(
    model: Any,
    dataset: Any,
    metrics: dict[str, Any],
    config: dict[str, Any],
    run_dir: Path,
    target: Path,
    plain: dict[str, Any],
    tta: dict[str, Any],
    notes: list[str],
) -> dict[str, Any]:
    """The .keras model, its float and int8 TFLite exports, the card sidecar and the Markdown card, at `target`."""

    run_config = TrainConfig.from_dict(config)
    images, labels = class_subset(dataset, "validation", run_config)
    calibration, _ = class_subset(dataset, "train", run_config)
    exported = exports(model, target, images, labels, calibration, run_config.class_set.names)
    lineage = lineage_summary(run_dir, config)
    lineage["stages"][-1]["notes"] = [*lineage["stages"][-1].get("notes", []), *notes]
    card = model_metadata(
        config,
        metrics,
        architecture=config.get("architecture", model.name),
        **measured_fields(model, plain, tta),
        **exported,
        source_run=run_dir.name,
        notes=[note for stage in lineage["stages"] for note in stage.get("notes") or []],  # every stage's, in order
        **lineage,
    )
    card["stages"][-1]["validation_accuracy"] = plain["accuracy"]
    return save_shipped(model, target, card)
