"""Combining models into one ensemble model, shipped like a run's: .keras, float and int8 TFLite, card, Markdown card.

The members are saved models over the same classes (shipped ones or runs' checkpoints); the ensemble averages their
probabilities with the given weights (ferlib.nets.ensemble). It is measured as `ship` measures a run's model, on the
validation split with every TTA mode, and its card lists each member with its weight and its own accuracy.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ferlib.atomic import read_json_object
from ferlib.classes import ClassSet
from ferlib.data.datasets import load_dataset
from ferlib.errors import FerError
from ferlib.evaluation.lineage import model_file_name, model_lineage
from ferlib.evaluation.metrics import card_modes, evaluate_modes, metric_key, summary_metrics
from ferlib.jobs import folder
from ferlib.jobs.ensembles import KIND
from ferlib.nets.ensemble import ENSEMBLE_ARCHITECTURE, build_ensemble, ensemble_weights
from ferlib.nets.modelio import class_set_of, load_model, model_metadata
from ferlib.training.ship import (
    checked_notes,
    checked_target,
    describe_validation_split,
    exports,
    measured_fields,
    save_shipped,
    staged_shipping,
)
from ferlib.training.trainer import describe_failure


def member_summary(path: Path, card: dict[str, Any], weight: float) -> dict[str, Any]:
    """What the ensemble's card keeps of one member: its file, weight, network, training (None where its card and run
    folder do not say) and own validation figures."""
    config = card.get("config") if isinstance(card.get("config"), dict) else {}
    metrics = card.get("metrics") if isinstance(card.get("metrics"), dict) else {}
    lineage = model_lineage(path) or {"lineage_complete": False}
    summary = {
        "model": model_file_name(path),
        "weight": weight,
        "architecture": config.get("architecture", card.get("architecture")),
        "hyperparameters": config.get("hyperparameters") or {},
        "parameters": card.get("parameters"),
        "epochs_completed": lineage.get("epochs_completed"),
        "train_wall_seconds": lineage.get("train_wall_seconds"),
        "lineage_complete": lineage.get("lineage_complete") is not False,
        # Each training stage once, by its run: members may share one (a fine-tune and its start, nested ensembles).
        "stages": [
            {key: stage.get(key) for key in ("source_run", "epochs", "train_wall_seconds")}
            for stage in lineage.get("stages") or []
        ],
        # A shipped card says validation_accuracy; a run's checkpoint, val_accuracy.
        "validation_accuracy": metrics.get("validation_accuracy", metrics.get("val_accuracy")),
        "validation_accuracy_tta": metrics.get("validation_accuracy_tta"),
        "source_run": card.get("source_run"),
    }
    if isinstance(config.get("members"), list):  # an ensemble as a member: its own members choose its TTA views
        summary["members"] = config["members"]
    return summary


def training_effort(members: list[dict[str, Any]]) -> dict[str, Any]:
    """The training behind an ensemble: its members' stages, each run counted once (members may share one), with their
    epochs and wall time summed; None when any member's training is not fully known."""
    stages: dict[Any, dict[str, Any]] = {}
    known = all(member.get("lineage_complete") and member.get("stages") for member in members)
    for index, member in enumerate(members):
        for number, stage in enumerate(member.get("stages") or []):
            known = known and stage.get("epochs") is not None and stage.get("train_wall_seconds") is not None
            stages.setdefault(stage.get("source_run") or (index, number), stage)  # a stage of no named run: its own
    if not known:
        return {"epochs_completed": None, "train_wall_seconds": None, "lineage_complete": False}
    return {
        "epochs_completed": int(sum(stage["epochs"] for stage in stages.values())),
        "train_wall_seconds": float(sum(stage["train_wall_seconds"] for stage in stages.values())),
        "stages": list(stages.values()),  # so an ensemble that contains this one counts each run once too
        "lineage_complete": True,
    }


def ensemble_config(classes: ClassSet, members: list[dict[str, Any]]) -> dict[str, Any]:
    """The ensemble's config on its card: its classes and members (ten crops suit it when every member crops)."""
    return {"architecture": ENSEMBLE_ARCHITECTURE, "classes": classes.to_config(), "members": members}


def combined_model(
    model_paths: Sequence[str | os.PathLike], weights: Sequence[float] | None = None
) -> tuple[Any, ClassSet, list[dict[str, Any]]]:
    """The ensemble of `model_paths` (weighted by `weights`, equal by default), its classes and its members' card
    entries; refused unless they are two or more different models over the same classes."""
    paths = [Path(path).expanduser() for path in model_paths]
    scaled = ensemble_weights(weights, len(paths))
    if len({path.resolve() for path in paths}) != len(paths):
        raise FerError(f"Expected different models to combine; received {[str(path) for path in model_paths]}")
    loaded = [load_model(path) for path in paths]
    class_sets = [class_set_of(card, path) for path, (_, card) in zip(paths, loaded, strict=True)]
    if any(classes != class_sets[0] for classes in class_sets):
        pairs = zip(paths, class_sets, strict=True)
        described = "; ".join(f"{path.name} over {classes.describe()}" for path, classes in pairs)
        raise FerError(f"Expected models over the same classes, in the same order; received {described}")
    model = build_ensemble([network for network, _ in loaded], scaled)
    members = [
        member_summary(path, card, weight) for path, (_, card), weight in zip(paths, loaded, scaled, strict=True)
    ]
    return model, class_sets[0], members


def ship_ensemble(
    model_paths: Sequence[str | os.PathLike],
    data: str | os.PathLike,
    target: str | os.PathLike,
    weights: Sequence[float] | None = None,
    notes: Sequence[str] = (),
    before_moving: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Combine `model_paths` (weighted by `weights`, equal by default) into one model at `target` (.keras), with its
    TFLite exports and card, measured on `data`'s validation split (`before_moving`: see `staged_shipping`)."""
    target, notes = checked_target(target), checked_notes(notes)
    if target.expanduser().resolve() in {Path(path).expanduser().resolve() for path in model_paths}:
        # shipping over a member would replace its files and its card
        raise FerError(f"Expected an output path other than the models combined; received {str(target)!r}")
    model, classes, members = combined_model(model_paths, weights)
    config = ensemble_config(classes, members)
    dataset = load_dataset(data)
    images, labels = dataset.subset("validation")
    keep, labels = classes.apply(labels)
    images = images[keep]
    if len(labels) == 0:
        raise FerError(f"Expected a validation split in {str(data)!r}; received none")
    evaluations = evaluate_modes(model, images, labels, card_modes(config), classes.names)
    plain, tta = evaluations["none"], evaluations["flip"]
    metrics = {"split": describe_validation_split(dataset), **summary_metrics(evaluations), "n": plain["n"]}
    train_images, train_labels = dataset.subset("train")
    calibration = train_images[classes.apply(train_labels)[0]]

    def write(staged: Path) -> dict[str, Any]:
        card = model_metadata(
            config,
            metrics,
            architecture=ENSEMBLE_ARCHITECTURE,
            **measured_fields(model, plain, tta),
            **exports(model, staged, images, labels, calibration, classes.names),
            **training_effort(members),
            notes=notes,
        )
        return save_shipped(model, staged, card)

    return staged_shipping(target, write, before_moving)


class _Stopped(BaseException):
    """A stop reached an ensemble job before its files moved into place: unwinds it, staged files removed."""


class _StopGuard:
    """SIGTERM stops the job (raises _Stopped) until its files start moving into place; after that it finishes."""

    def __init__(self) -> None:
        self.interruptible = True

    def __call__(self, signum, frame) -> None:
        if self.interruptible:
            raise _Stopped

    def close(self) -> None:
        self.interruptible = False


def ship_ensemble_job(job_dir: str | os.PathLike) -> dict[str, Any]:
    """Be the process of the ensemble job in `job_dir` (ferlib.training.combine_launch): combine, measure and ship
    as its config says, with its outcome in status.json. A stop (SIGTERM, or a stop request made before it began)
    ends it with nothing written, unless its files were already moving into place. Returns the status."""
    job_dir = Path(job_dir)
    config, status = read_json_object(job_dir / folder.CONFIG_FILE), folder.read_status(job_dir)
    if config.get("kind") != KIND:
        raise FerError(f"Expected an ensemble job folder; received {str(job_dir)!r}")
    if status.get("state") != "created":
        raise FerError(f"Expected an ensemble job that has not run; received {job_dir.name}, {status.get('state')}")
    folder.ensure_handed_over(job_dir, status)
    guard, main = _StopGuard(), threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, guard) if main else None
    try:
        folder.write_status(job_dir, "running", phase="evaluating")
        if folder.stop_requested(job_dir):  # asked while the process started (SIGTERM reaches running jobs only)
            raise _Stopped
        request = [config.get(key) for key in ("models", "data", "output", "weights")]
        card = ship_ensemble(*request, notes=config.get("notes") or (), before_moving=guard.close)
        guard.close()
        metrics = card["metrics"]
        modes = ("none", "flip", *card_modes(card["config"]))
        figures = {mode: metrics.get(metric_key("accuracy", mode)) for mode in modes}
        result = {"output": request[2], "accuracy": figures, "int8_accuracy": card.get("int8_validation_accuracy")}
        folder.write_status(job_dir, "finished", result=result)
    except _Stopped:
        folder.write_status(job_dir, "stopped", reason="stopped before the ensemble was saved")
    except Exception as error:
        folder.write_status(job_dir, "failed", error=describe_failure(error))
        raise
    finally:
        folder.clear_stop_request(job_dir)
        if main and previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return folder.read_status(job_dir)
