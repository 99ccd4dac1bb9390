"""How a model's weights came to be: the epochs, wall time and history of every training stage.

A run warm-started from `initial_model` (see `TrainConfig.initial_model`) continues the training of that
model. When the run starts, the starting model's own lineage is copied into the run folder
(`initial_model.json`), so shipping the run later reports every stage even if the starting file has since been
replaced (for example by shipping over it).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import Any

from ferlib.atomic import atomic_write_json, read_json
from ferlib.jobs import runs
from ferlib.jobs.folder import CONFIG_FILE, PROGRESS_FILE, read_progress
from ferlib.jobs.progress import epoch_records
from ferlib.jobs.runs import AVERAGE_MODEL, BEST_MODEL, LAST_MODEL
from ferlib.nets.modelio import sidecar_path
from ferlib.nets.precision import FLOAT32

# The sidecar keys that say how a model's weights came to be (see checkpoint_lineage).
LINEAGE_KEYS = ("epochs_completed", "train_wall_seconds", "history", "stages", "lineage_complete")


def model_file_name(path: str | os.PathLike) -> str:
    """A model file's name, with its run folder's for a run's checkpoint (every run has a best.keras)."""
    model = PurePath(str(path))
    return f"{model.parent.name}/{model.name}" if model.name in (BEST_MODEL, LAST_MODEL, AVERAGE_MODEL) else model.name


def training_summary(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Epochs, wall time, history and data size of one run, from its progress log (resumed sessions included)."""

    records = read_progress(run_dir)
    revisions = _epoch_settings(records, "recipe_revision")
    precisions = _epoch_settings(records, "precision")  # unrecorded: sessions from before precision was a setting
    # As the curves count them: a resumed session replaces the epochs it trains again (a killed run's unsaved
    # epochs are not counted beside their retrained versions), and a stopped run's partial epoch is left out.
    epochs = epoch_records(records)
    starts = [record for record in records if record.get("event") == "start"]
    return {
        "epochs_completed": len(epochs),
        "train_wall_seconds": float(sum(record.get("epoch_seconds", 0.0) for record in epochs)),
        "train_images": starts[-1].get("train_images") if starts else None,
        "validation_images": starts[-1].get("validation_images") if starts else None,
        "history": [
            {key: record.get(key) for key in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")}
            for record in epochs
        ],
        "recipe_revisions": [revisions.get(int(record["epoch"])) for record in epochs],
        "precisions": [precisions.get(int(record["epoch"])) or FLOAT32 for record in epochs],
    }


def _epoch_settings(records: list[dict[str, Any]], key: str) -> dict[int, Any]:
    """A start-record setting (`key`) of the session that trained each epoch (None when unrecorded).

    The last record of an epoch wins, as in `progress.epoch_records`: a retrained epoch has its new session's value.
    """
    values: dict[int, Any] = {}
    current = None
    for record in records:
        if record.get("event") == "start":
            current = record.get(key)
        elif record.get("event") == "epoch" and not record.get("partial"):
            values[int(record["epoch"])] = current
    return values


def _spans(values: list[Any]) -> list[tuple[str, Any]]:
    """Each run of equal values, in order, as ("epochs 1-2" or "epoch 3", the value)."""
    spans: list[list[Any]] = []  # [first epoch, last epoch, value]
    for epoch, value in enumerate(values, start=1):
        if spans and spans[-1][2] == value:
            spans[-1][1] = epoch
        else:
            spans.append([epoch, epoch, value])
    return [
        (f"epoch{'s' if first != last else ''} {first}{f'-{last}' if first != last else ''}", value)
        for first, last, value in spans
    ]


def recipe_note(revisions: list[int | None], run_name: str) -> str | None:
    """A sentence naming the epochs of each recipe revision, when a run's epochs were trained under more than one.

    Epochs are numbered within the run (a warm-restarted model's card numbers them on across stages, so the
    sentence names its run). Unrecorded revisions (sessions of older ferlib versions) alone raise no note.
    """
    if len({revision for revision in revisions if revision is not None}) < 2:
        return None
    parts = [
        f"{epochs} under " + ("an unrecorded revision" if revision is None else f"revision {revision}")
        for epochs, revision in _spans(revisions)
    ]
    return (
        f"Run {run_name}'s training recipe changed while it ran (ferlib.training.config.RECIPE_REVISION): its "
        + ", ".join(parts)
        + "."
    )


def precision_note(precisions: list[str], run_name: str) -> str | None:
    """A sentence naming the epochs trained in each precision, when a run's epochs were trained in more than one."""
    if len(set(precisions)) < 2:
        return None
    parts = [f"{epochs} in {precision.replace('_', ' ')}" for epochs, precision in _spans(precisions)]
    return f"Run {run_name} trained in more than one precision (ferlib.nets.precision): its " + ", ".join(parts) + "."


def noted_stages(card: dict[str, Any]) -> list[dict[str, Any]]:
    """A card's stages, each with its notes: the one place readers (Markdown card, Metrics page, warm restarts)
    get notes from. A card from before notes were kept per stage gives its top-level notes to its last stage."""
    stages = [stage for stage in card.get("stages") or [] if isinstance(stage, dict)]
    notes = card.get("notes") if isinstance(card.get("notes"), list) else []
    notes = [note for note in notes if isinstance(note, str) and note.strip()]
    if notes and not any(stage.get("notes") for stage in stages):
        stages = [*stages[:-1], {**(stages[-1] if stages else {}), "notes": notes}]
    return stages


def _is_run_checkpoint(path: Path) -> bool:
    """A run's best.keras or last.keras, whose run folder tells its training (average.keras's card tells it)."""

    parent = path.parent
    return (
        path.name in (BEST_MODEL, LAST_MODEL) and (parent / CONFIG_FILE).exists() and (parent / PROGRESS_FILE).exists()
    )


def model_lineage(model_path: str | os.PathLike) -> dict[str, Any] | None:
    """The stages behind a saved model: from its run folder when it is a run's checkpoint, else from its card.

    None when neither says how it was trained.
    """
    path = Path(model_path).expanduser().resolve()
    if _is_run_checkpoint(path):
        config = read_json(path.parent / "config.json", default={}) or {}
        state = read_json(path.parent / "state.json", default={}) or {}
        return checkpoint_lineage(path.parent, config, state.get("best_val_accuracy"))
    card = read_json(sidecar_path(path), default=None)
    if not isinstance(card, dict) or not isinstance(card.get("epochs_completed"), int):
        return None
    metrics = card.get("metrics") if isinstance(card.get("metrics"), dict) else {}
    single_stage = {
        "source_run": card.get("source_run"),
        "initial_model": None,
        "epochs": card["epochs_completed"],
        "train_wall_seconds": card.get("train_wall_seconds"),
        "validation_accuracy": metrics.get("validation_accuracy"),
    }
    stages = [stage for stage in card.get("stages") or [] if isinstance(stage, dict)] or [single_stage]
    stages = noted_stages({**card, "stages": stages})
    return {
        "epochs_completed": card["epochs_completed"],
        "train_wall_seconds": float(card.get("train_wall_seconds") or 0.0),
        "history": list(card.get("history") or []),
        "stages": stages,
        "lineage_complete": card.get("lineage_complete") is not False,
    }


def record_initial_lineage(run_dir: str | os.PathLike, initial_model: str | os.PathLike) -> None:
    """Copy the starting model's lineage into the run folder, as it is when the run starts."""
    lineage = model_lineage(initial_model)
    atomic_write_json(
        Path(run_dir) / runs.INITIAL_MODEL_CARD,
        {"initial_model": str(Path(initial_model).expanduser().resolve()), "lineage": lineage},
    )


def lineage_summary(run_dir: str | os.PathLike, config: dict[str, Any]) -> dict[str, Any]:
    """`training_summary` over every stage that produced the run's weights.

    Epochs and wall time are totals, the history runs on across stages (epochs renumbered), and `stages`
    lists each stage's run, epochs, wall time, validation accuracy and notes (kept per stage, so a warm-restarted
    model inherits what its starting model's card said). A starting model whose training is
    unknown is listed as a stage with unknown epochs, and `lineage_complete` is False.
    """
    run_dir = Path(run_dir)
    current = training_summary(run_dir)
    initial = config.get("initial_model") or None
    current_stage = {
        "source_run": run_dir.name,
        "initial_model": initial,
        "epochs": current["epochs_completed"],
        "train_wall_seconds": current["train_wall_seconds"],
    }
    current_stage["teachers"] = []  # what this stage learned from besides the labels (knowledge distillation)
    if config.get("teachers") and config.get("teacher_weight"):
        current_stage["teachers"] = [model_file_name(path) for path in config["teachers"]]
        current_stage["teacher_weight"] = float(config["teacher_weight"])
    notes = [
        recipe_note(current.pop("recipe_revisions"), run_dir.name),
        precision_note(current.pop("precisions"), run_dir.name),
    ]
    if any(notes):
        current_stage["notes"] = [note for note in notes if note]
    if not initial:
        return {**current, "stages": [current_stage], "lineage_complete": True}
    recorded = read_json(run_dir / runs.INITIAL_MODEL_CARD, default=None)
    # Runs started before the lineage was recorded at start fall back to the starting model as it is now.
    previous = recorded.get("lineage") if isinstance(recorded, dict) else model_lineage(initial)
    if previous:
        previous = {**previous, "stages": noted_stages(previous)}  # stages that are not objects are dropped
    if previous and isinstance(recorded, dict) and not any(stage.get("notes") for stage in previous["stages"]):
        previous = _with_notes_of_the_same_model(previous, initial)
    if not previous:
        unknown = {"source_run": None, "initial_model": None, "epochs": None, "train_wall_seconds": None}
        return {**current, "stages": [unknown, current_stage], "lineage_complete": False}
    offset = int(previous["epochs_completed"])
    history = list(previous.get("history") or []) + [
        {**row, "epoch": int(row["epoch"]) + offset} for row in current["history"]
    ]
    return {
        **current,
        "epochs_completed": offset + current["epochs_completed"],
        "train_wall_seconds": float(previous.get("train_wall_seconds") or 0.0) + current["train_wall_seconds"],
        "history": history,
        "stages": [*previous["stages"], current_stage],
        "lineage_complete": all(stage.get("epochs") is not None for stage in previous["stages"]),
    }


def _with_notes_of_the_same_model(previous: dict[str, Any], initial: str) -> dict[str, Any]:
    """A lineage recorded before notes were kept per stage, given the notes the starting model's card has now,
    if that card still describes the same training (same runs and epochs)."""
    now = model_lineage(initial)
    same = now is not None and now["epochs_completed"] == previous["epochs_completed"]
    same = same and [stage.get("source_run") for stage in now["stages"]] == [
        stage.get("source_run") for stage in previous["stages"]
    ]
    if not same:
        return previous
    stages = [
        {**stage, "notes": current.get("notes")} if current.get("notes") else stage
        for stage, current in zip(previous["stages"], now["stages"], strict=True)
    ]
    return {**previous, "stages": stages}


def checkpoint_lineage(
    run_dir: str | os.PathLike, config: dict[str, Any], validation_accuracy: float | None
) -> dict[str, Any]:
    """The stages behind a run's best checkpoint, the last one ending with its score.

    Written into best.json with each new best (after the epoch's progress record), so a copy of best.keras
    keeps its history, and read from the run folder by `model_lineage`.
    """
    summary = lineage_summary(run_dir, config)
    summary["stages"][-1]["validation_accuracy"] = validation_accuracy
    return {key: summary[key] for key in LINEAGE_KEYS}
