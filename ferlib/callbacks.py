"""Keras callbacks of a training run: progress JSON lines, stop requests, atomic checkpoints, LR schedule."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ferlib import runs
from ferlib.atomic import append_json_line, atomic_save, atomic_write_json
from ferlib.averaging import epoch_checkpoint_path
from ferlib.config import TrainConfig
from ferlib.lineage import checkpoint_lineage
from ferlib.modelio import model_metadata, save_model


class StopSignal:
    """Set by SIGTERM or a stop-request file; checked after every batch."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.signalled = False
        self.triggered = False

    def should_stop(self) -> bool:
        if not self.triggered and (self.signalled or runs.stop_requested(self.run_dir)):
            self.triggered = True
        return self.triggered


def current_learning_rate(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


class StopOnRequest(keras.callbacks.Callback):
    """Ends training after the current batch when the stop signal is set."""

    def __init__(self, stop: StopSignal) -> None:
        super().__init__()
        self.stop = stop

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.stop.should_stop():
            self.model.stop_training = True


class ProgressWriter(keras.callbacks.Callback):
    """Appends JSON lines to progress.jsonl: a start record, batch records (throttled) and epoch records.

    Epoch numbers in these records count from 1. Another process tails the file to draw progress.
    """

    def __init__(
        self,
        run_dir: Path,
        stop: StopSignal,
        *,
        steps_per_epoch: int,
        total_epochs: int,
        initial_epoch: int,
        batch_size: int,
        batch_interval_seconds: float = 2.0,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.path = run_dir / runs.PROGRESS_FILE
        self.stop = stop
        self.steps_per_epoch = steps_per_epoch
        self.total_epochs = total_epochs
        self.initial_epoch = initial_epoch
        self.batch_interval_seconds = batch_interval_seconds
        self.extra = extra or {}
        self.epoch_durations: list[float] = []

    def _write(self, record: dict[str, Any]) -> None:
        append_json_line(self.path, {"time": time.time(), **record})

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.train_start = time.time()
        self._write(
            {
                "event": "start",
                "epochs": self.total_epochs,
                "initial_epoch": self.initial_epoch,
                "steps_per_epoch": self.steps_per_epoch,
                **self.extra,
            }
        )

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch
        self.epoch_start = time.time()
        self.last_batch_write = 0.0

    def _eta(self, steps_done_in_epoch: int) -> float | None:
        epochs_left = self.total_epochs - self.epoch - 1
        if self.epoch_durations:
            per_epoch = sum(self.epoch_durations[-3:]) / len(self.epoch_durations[-3:])
            remaining_fraction = 1 - steps_done_in_epoch / max(1, self.steps_per_epoch)
            return per_epoch * (epochs_left + remaining_fraction)
        if steps_done_in_epoch == 0:
            return None
        per_step = (time.time() - self.epoch_start) / steps_done_in_epoch
        return per_step * (self.steps_per_epoch * (epochs_left + 1) - steps_done_in_epoch)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        now = time.time()
        steps = batch + 1
        if now - self.last_batch_write < self.batch_interval_seconds and steps != self.steps_per_epoch:
            return
        self.last_batch_write = now
        logs = logs or {}
        elapsed = now - self.epoch_start
        self._write(
            {
                "event": "batch",
                "epoch": self.epoch + 1,
                "epochs": self.total_epochs,
                "batch": steps,
                "steps": self.steps_per_epoch,
                "loss": _number(logs.get("loss")),
                "accuracy": _number(logs.get("accuracy")),
                "learning_rate": current_learning_rate(self.model),
                "elapsed": now - self.train_start,
                "images_per_second": steps * self.batch_size / max(elapsed, 1e-9),
                "eta_seconds": self._eta(steps),
                "epoch_elapsed": elapsed,
            }
        )

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        duration = time.time() - self.epoch_start
        partial = self.stop.triggered
        if not partial:
            self.epoch_durations.append(duration)
        record = {
            "event": "epoch",
            "epoch": epoch + 1,
            "epochs": self.total_epochs,
            "partial": partial,
            "learning_rate": current_learning_rate(self.model),
            "epoch_seconds": duration,
            "elapsed": time.time() - self.train_start,
            "eta_seconds": 0.0 if partial else self._eta(self.steps_per_epoch),
        }
        record.update({key: _number(value) for key, value in logs.items() if key != "learning_rate"})
        self._write(record)


class AtomicCheckpoint(keras.callbacks.Callback):
    """Saves last.keras every epoch and best.keras (+ sidecar) on a new best val_accuracy, atomically; with
    `keep_epoch_checkpoints`, also each completed epoch's weights, epochs/epoch-NNN.weights.h5 (for ferlib.averaging).

    state.json records completed epochs and the best score so a stopped or killed run can resume.
    """

    def __init__(
        self,
        run_dir: Path,
        stop: StopSignal,
        config: TrainConfig,
        monitor: str = "val_accuracy",
        patience_callbacks: dict[str, ResumableCounters] | None = None,
    ) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.stop = stop
        self.config = config
        self.monitor = monitor
        self.patience_callbacks = patience_callbacks or {}
        state = runs.saved_state(run_dir)
        self.best = state.get("best_val_accuracy")
        self.best_epoch = state.get("best_epoch")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        partial = self.stop.triggered
        completed = epoch if partial else epoch + 1
        counters = {name: callback.counters() for name, callback in self.patience_callbacks.items()}
        last = model_metadata(self.config.to_dict(), {}, epochs_completed=completed, patience_counters=counters)
        save_model(self.model, self.run_dir / runs.LAST_MODEL, last)
        if self.config.keep_epoch_checkpoints and not partial:
            atomic_save(epoch_checkpoint_path(self.run_dir, completed), self.model.save_weights)
        score = logs.get(self.monitor)
        if not partial and score is not None and (self.best is None or float(score) > float(self.best)):
            self.best, self.best_epoch = float(score), epoch + 1
            metrics = {self.monitor: float(score), "epoch": epoch + 1}
            metadata = model_metadata(self.config.to_dict(), metrics)
            metadata.update(checkpoint_lineage(self.run_dir, self.config.to_dict(), float(score)))
            save_model(self.model, self.run_dir / runs.BEST_MODEL, metadata)
        atomic_write_json(
            self.run_dir / runs.STATE_FILE,
            {
                "epochs_completed": completed,
                "best_val_accuracy": self.best,
                "best_epoch": self.best_epoch,
                "updated": time.time(),
            },
        )


PATIENCE_COUNTERS = ("wait", "best", "best_epoch", "cooldown_counter")


class ResumableCounters:
    """Mixin for ReduceLROnPlateau and EarlyStopping: patience survives a resume, a partial epoch is ignored.

    Keras resets `wait` and `best` in on_train_begin, so a resumed run would wait a whole patience again;
    AtomicCheckpoint saves `counters()` beside last.keras and the resumed session passes them back as `saved`.
    The validation score of a stopped run's partial epoch must not count towards patience or cut the rate.
    """

    def __init__(
        self, *args: Any, stop: StopSignal | None = None, saved: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.stop = stop
        self.saved = dict(saved or {})

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        for name in PATIENCE_COUNTERS:
            if name in self.saved and hasattr(self, name):
                setattr(self, name, self.saved[name])

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.stop is None or not self.stop.triggered:
            super().on_epoch_end(epoch, logs)

    def counters(self) -> dict[str, Any]:
        return {name: _counter(getattr(self, name)) for name in PATIENCE_COUNTERS if hasattr(self, name)}


class ResumableReduceLROnPlateau(ResumableCounters, keras.callbacks.ReduceLROnPlateau):
    """ReduceLROnPlateau whose patience and cooldown carry over a resume (see ResumableCounters)."""


class ResumableEarlyStopping(ResumableCounters, keras.callbacks.EarlyStopping):
    """EarlyStopping whose patience carries over a resume (see ResumableCounters)."""


def patience_callbacks(
    config: TrainConfig, stop: StopSignal | None = None, saved: dict[str, dict] | None = None
) -> dict[str, ResumableCounters]:
    """The config's ReduceLROnPlateau (plateau schedule) and EarlyStopping (patience > 0), by name, continuing
    from `saved` counters; runs and search trials alike, so a searched 'plateau' schedule really cuts its rate."""
    saved = saved or {}
    callbacks: dict[str, ResumableCounters] = {}
    if config.schedule == "plateau":
        callbacks["plateau"] = ResumableReduceLROnPlateau(
            monitor="val_accuracy",
            mode="max",
            factor=config.plateau_factor,
            patience=config.plateau_patience,
            min_lr=config.learning_rate * 1e-3,
            stop=stop,
            saved=saved.get("plateau"),
        )
    if config.early_stopping_patience > 0:
        callbacks["early_stopping"] = ResumableEarlyStopping(
            monitor="val_accuracy",
            mode="max",
            patience=config.early_stopping_patience,
            stop=stop,
            saved=saved.get("early_stopping"),
        )
    return callbacks


class EpochLearningRate(keras.callbacks.Callback):
    """Sets the learning rate at each epoch start: warm-up, then cosine/constant; plateau runs leave it to
    ReduceLROnPlateau after warm-up. Epoch-based, so a resumed run continues the same curve."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__()
        self.config = config

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self.config.schedule == "plateau" and epoch > self.config.warmup_epochs:
            return
        self.model.optimizer.learning_rate.assign(learning_rate_for_epoch(self.config, epoch))


def learning_rate_for_epoch(config: TrainConfig, epoch: int) -> float:
    """Linear warm-up then cosine decay (to 1% of the base rate), or a constant rate; epoch counts from 0."""
    base = config.learning_rate
    if epoch < config.warmup_epochs:
        return base * (epoch + 1) / (config.warmup_epochs + 1)
    if config.schedule != "cosine":
        return base
    span = max(1, config.epochs - config.warmup_epochs)
    progress = min(1.0, (epoch - config.warmup_epochs) / span)
    return base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))


def _counter(value: Any) -> int | float | None:
    """A patience counter as JSON: epochs stay integers, scores become floats, unset or infinite is None."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    return _number(value)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
