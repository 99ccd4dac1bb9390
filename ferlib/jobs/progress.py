"""Reading a job's progress.jsonl: where it stands, its epoch curve, the epoch in progress."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class ProgressSnapshot:
    """Where a run stands according to its latest progress record; epochs count from 1."""

    epoch: int
    epochs: int
    batch: int | None
    steps: int | None
    fraction: float
    eta_seconds: float | None
    learning_rate: float | None
    images_per_second: float | None
    record_time: float | None

    def eta_at(self, now: float) -> float | None:
        """The ETA counted down by the time since the record was written."""
        if self.eta_seconds is None:
            return None
        return max(0.0, self.eta_seconds - max(0.0, now - (self.record_time or now)))


def progress_snapshot(records: list[dict[str, Any]]) -> ProgressSnapshot | None:
    """Epoch, batch, overall fraction and ETA from progress.jsonl records; None before the first record."""
    if not records:
        return None
    latest = records[-1]
    epochs = max(1, int(latest.get("epochs", 1) or 1))
    event = latest.get("event")
    if event == "batch":
        epoch, batch, steps = int(latest["epoch"]), int(latest["batch"]), max(1, int(latest["steps"]))
        completed = epoch - 1 + batch / steps
    elif event == "epoch":
        epoch, batch, steps = int(latest["epoch"]), None, None
        completed = epoch - 1 if latest.get("partial") else epoch
    else:
        epoch, batch, steps = int(latest.get("initial_epoch", 0) or 0), 0, latest.get("steps_per_epoch")
        completed = epoch
    learning_rates = [record["learning_rate"] for record in records if record.get("learning_rate") is not None]
    return ProgressSnapshot(
        epoch=epoch,
        epochs=epochs,
        batch=batch,
        steps=steps,
        fraction=min(1.0, max(0.0, completed / epochs)),
        eta_seconds=latest.get("eta_seconds"),
        learning_rate=learning_rates[-1] if learning_rates else None,
        images_per_second=latest.get("images_per_second"),
        record_time=latest.get("time"),
    )


def epoch_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per completed epoch, in epoch order, for curves.

    Partial epochs (a stopped run) are left out; a resumed session (its start record) drops the epochs it
    trains again, so a killed run's unsaved epochs never linger beside their retrained versions.
    """
    by_epoch: dict[int, dict[str, Any]] = {}
    for record in records:
        if record.get("event") == "start":
            initial = int(record.get("initial_epoch", 0) or 0)
            by_epoch = {epoch: kept for epoch, kept in by_epoch.items() if epoch <= initial}
        elif record.get("event") == "epoch" and not record.get("partial"):
            by_epoch[int(record["epoch"])] = record
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def current_epoch_batches(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The batch records of the epoch in progress (those after the latest start or epoch record)."""
    batches: list[dict[str, Any]] = []
    for record in records:
        if record.get("event") == "batch":
            batches.append(record)
        elif record.get("event") in ("start", "epoch"):
            batches = []
    return batches
