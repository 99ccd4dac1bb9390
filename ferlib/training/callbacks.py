"""Keras callbacks of a training run: progress JSON lines, stop requests, atomic checkpoints, LR schedule."""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ferlib.atomic import append_json_line, atomic_save, atomic_write_json
from ferlib.evaluation.lineage import checkpoint_lineage
from ferlib.jobs import folder, runs
from ferlib.jobs.folder import StopSignal
from ferlib.jsonutil import finite
from ferlib.nets.modelio import model_metadata, save_model
from ferlib.nets.precision import FLOAT32, with_precision
from ferlib.training.config import TrainConfig


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
        self.path = run_dir / folder.PROGRESS_FILE
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
                "loss": finite(logs.get("loss")),
                "accuracy": finite(logs.get("accuracy")),
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
            "eta_seconds": None if partial else self._eta(self.steps_per_epoch),  # a stopped run has no ETA
        }
        record.update({key: finite(value) for key, value in logs.items() if key != "learning_rate"})
        self._write(record)


EMA_MONITOR = "val_ema_accuracy"


@contextmanager
def averaged_weights(model: keras.Model):
    """Within the block, the model's trainable weights are the optimizer's moving average (Keras's `use_ema`);
    the training weights come back afterwards. A model without an average is left as it is."""
    optimizer = model.optimizer
    if not getattr(optimizer, "use_ema", False) or not getattr(optimizer, "_model_variables_moving_average", None):
        yield False
        return
    # Keras keeps the averages in the order of the optimizer's own variable list (pinned keras==3.15).
    variables = optimizer._trainable_variables
    averages = optimizer._model_variables_moving_average
    saved = [keras.ops.convert_to_numpy(variable) for variable in variables]
    try:
        for variable, average in zip(variables, averages, strict=True):
            variable.assign(average)
        yield True
    finally:
        for variable, value in zip(variables, saved, strict=True):
            variable.assign(value)


class EmaValidation(keras.callbacks.Callback):
    """With a weight average kept (config.ema_momentum), scores it on the validation faces after every complete
    epoch as logs["val_ema_accuracy"], beside Keras's val_accuracy of the training weights."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, stop: StopSignal, batch_size: int = 256) -> None:
        super().__init__()
        self.images = images[..., None].astype(np.float32)
        self.labels = np.asarray(labels)
        self.stop = stop
        self.batch_size = batch_size

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None or self.stop.triggered:
            return
        with averaged_weights(self.model) as averaged:
            if not averaged:
                return
            probabilities = self.model.predict(self.images, batch_size=self.batch_size, verbose=0)
        logs[EMA_MONITOR] = float(np.mean(probabilities.argmax(axis=1) == self.labels))


class AtomicCheckpoint(keras.callbacks.Callback):
    """Saves last.keras every epoch and best.keras (+ sidecar) on a new best val_accuracy, atomically (the weight
    average's, with its weights in place, when val_ema_accuracy is higher); with
    `keep_epoch_checkpoints`, also each completed epoch's weights, epochs/epoch-NNN.weights.h5 (for averaging).

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
        # A partial epoch's updates are kept; its optimizer step gives the resumed session its own draws.
        stopped = {"stopped_at_step": int(self.model.optimizer.iterations.numpy())} if partial else {}
        last = model_metadata(
            self.config.to_dict(), {}, epochs_completed=completed, patience_counters=counters, **stopped
        )
        save_model(self.model, self.run_dir / runs.LAST_MODEL, last)
        if self.config.keep_epoch_checkpoints and not partial:
            atomic_save(runs.epoch_checkpoint_path(self.run_dir, completed), self.model.save_weights)
        score, weights = logs.get(self.monitor), "training"
        if logs.get(EMA_MONITOR) is not None and (score is None or float(logs[EMA_MONITOR]) > float(score)):
            score, weights = logs[EMA_MONITOR], "moving average"
        if not partial and score is not None and (self.best is None or float(score) > float(self.best)):
            self.best, self.best_epoch = float(score), epoch + 1
            metrics = {self.monitor: float(score), "epoch": epoch + 1, "weights": weights}
            metadata = model_metadata(self.config.to_dict(), metrics)
            metadata.update(checkpoint_lineage(self.run_dir, self.config.to_dict(), float(score)))
            with averaged_weights(self.model) if weights == "moving average" else nullcontext():
                # float32 whatever the training precision: best.keras is what people evaluate, export and ship
                save_model(with_precision(self.model, FLOAT32), self.run_dir / runs.BEST_MODEL, metadata)
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


class PlateauWarmup(keras.callbacks.Callback):
    """A plateau run's warm-up: the rate rises linearly over `warmup_epochs`, then ReduceLROnPlateau owns it.

    Cosine and constant runs need no callback: their WarmupSchedule follows the optimizer's global step.
    """

    def __init__(self, config: TrainConfig) -> None:
        super().__init__()
        self.config = config

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if epoch <= self.config.warmup_epochs:
            rate = self.config.learning_rate * min(1.0, (epoch + 1) / (self.config.warmup_epochs + 1))
            self.model.optimizer.learning_rate.assign(rate)


def learning_rate_callbacks(config: TrainConfig) -> list[keras.callbacks.Callback]:
    """The callbacks that set the config's rate (only a plateau run's warm-up; see ferlib.training.schedule)."""
    return [PlateauWarmup(config)] if config.schedule == "plateau" else []


def _counter(value: Any) -> int | float | None:
    """A patience counter as JSON: epochs stay integers, scores become floats, unset or infinite is None."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    return finite(value)
