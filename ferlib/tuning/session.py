"""A running search's bookkeeping: stop and time checks, trial records in trials.jsonl, per-batch progress."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import keras
import keras_tuner

from ferlib.atomic import append_json_line
from ferlib.jobs import folder
from ferlib.jobs.folder import StopSignal
from ferlib.jobs.searches import TRIALS_FILE
from ferlib.jsonutil import finite
from ferlib.tuning.search_space import SearchConfig

OBJECTIVE = "val_accuracy"
BATCH_RECORD_SECONDS = 2.0


class SearchStopped(keras_tuner.errors.FatalError):
    """Raised after a batch when a stop was requested; keras-tuner passes FatalErrors out of `search`."""


class TimeLimitReached(keras_tuner.errors.FatalError):
    """Raised before a new trial once the wall-clock limit has passed."""


class SearchSession:
    """The running search's bookkeeping: stop and time checks, trials.jsonl records, best.json."""

    def __init__(
        self, search_dir: Path, config: SearchConfig, stop: StopSignal, started: float, worker: str | None = None
    ) -> None:
        self.search_dir = search_dir
        self.config = config
        self.stop = stop
        self.worker = worker  # this worker's id when the search is spread over processes (its chief keeps time)
        self.deadline = started + config.max_minutes * 60 if config.max_minutes and worker is None else None
        self.current_trial: str | None = None
        self.trial_started = 0.0
        self.epochs_trained = 0

    def check_stop(self) -> None:
        if self.stop.should_stop():
            raise SearchStopped("a stop was requested")

    def before_trial(self) -> None:
        """Called before keras-tuner creates a trial: honour stop requests and the wall-clock limit."""
        self.check_stop()
        if self.deadline is not None and time.time() >= self.deadline:
            raise TimeLimitReached(f"the {self.config.max_minutes:g}-minute limit was reached")

    def record(self, record: dict[str, Any]) -> None:
        worker = {"worker": self.worker} if self.worker else {}
        append_json_line(self.search_dir / TRIALS_FILE, {"time": time.time(), **worker, **record})

    def trial_begun(self, trial: keras_tuner.engine.trial.Trial) -> None:
        self.current_trial, self.trial_started, self.epochs_trained = trial.trial_id, time.time(), 0
        values = trial.hyperparameters.values
        self.record(
            {
                "event": "trial_start",
                "trial": trial.trial_id,
                "hyperparameters": {name: values[name] for name in self.config.space if name in values},
                "tuner": {name: value for name, value in values.items() if name.startswith("tuner/")},
            }
        )

    def trial_ended(self, trial: keras_tuner.engine.trial.Trial, status: str | None = None) -> None:
        duration = time.time() - self.trial_started
        score = trial.score if trial.score is not None and math.isfinite(trial.score) else None
        state = status or str(trial.status).lower()
        message = (trial.message or "").strip().splitlines()[-1:] if state in ("failed", "invalid") else []
        self.record(
            {
                "event": "trial_end",
                "trial": trial.trial_id,
                "status": state,
                "score": score,
                "duration_seconds": duration,
                "epochs": self.epochs_trained,
                **({"error": message[0]} if message else {}),
            }
        )
        self.current_trial = None
        shown = f"{OBJECTIVE}={score:.4f}" if score is not None else state
        print(f"trial {trial.trial_id}: {shown} in {duration:.0f} s", flush=True)

    def progress_callback(self, trial: str, epochs: int, steps_per_epoch: int) -> SearchProgress:
        return SearchProgress(self, trial, epochs, steps_per_epoch)


class SearchProgress(keras.callbacks.Callback):
    """Appends batch (every few seconds) and epoch records of one trial to progress.jsonl; checks for stops.

    keras-tuner keeps only the objective's values in its own files, so this is where per-epoch metrics live.
    """

    def __init__(self, session: SearchSession, trial: str, epochs: int, steps_per_epoch: int) -> None:
        super().__init__()
        self.session = session
        self.trial = trial
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.path = session.search_dir / folder.PROGRESS_FILE
        self.epoch = 0
        self.epoch_started = self.last_batch_record = 0.0

    def _write(self, record: dict[str, Any]) -> None:
        append_json_line(self.path, {"time": time.time(), "trial": self.trial, "epochs": self.epochs, **record})

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch, self.epoch_started, self.last_batch_record = epoch, time.time(), 0.0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.session.check_stop()
        now = time.time()
        if now - self.last_batch_record < BATCH_RECORD_SECONDS:
            return
        self.last_batch_record = now
        logs = logs or {}
        self._write(
            {
                "event": "batch",
                "epoch": self.epoch + 1,
                "batch": batch + 1,
                "steps": self.steps_per_epoch,
                "loss": finite(logs.get("loss")),
                "accuracy": finite(logs.get("accuracy")),
            }
        )

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.session.epochs_trained += 1
        record = {"event": "epoch", "epoch": epoch + 1, "epoch_seconds": time.time() - self.epoch_started}
        record.update({key: finite(value) for key, value in (logs or {}).items() if key != "learning_rate"})
        self._write(record)
