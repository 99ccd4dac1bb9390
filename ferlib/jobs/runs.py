"""Run folders: a training run's job folder (ferlib.jobs.folder) and the files training adds to it.

Besides config.json, status.json, progress.jsonl and log.txt, a run folder holds history.csv, tensorboard/,
state.json (completed epochs, best score), last.keras and best.keras with their JSON sidecars, metrics.json (the
end-of-run evaluation), epochs/ (each epoch's weights, when kept for averaging), average.keras (their average) and
initial_model.json (the card of the model a warm start began from). Every JSON file is written atomically;
progress.jsonl is append-only with one record a line.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferlib.atomic import atomic_write_text, read_json_object
from ferlib.errors import FerError
from ferlib.jobs.folder import (
    ACTIVE_STATES,
    CONFIG_FILE,
    LOG_FILE,
    PROGRESS_FILE,
    RESUMABLE_STATES,
    JobLabel,
    clear_stop_request,
    default_runs_dir,
    ensure_handed_over,
    ensure_no_active_job,
    launch_lock,
    read_label,
    read_status,
    write_status,
)
from ferlib.jsonutil import as_int, as_number
from ferlib.nets.modelio import sidecar_path

HISTORY_FILE = "history.csv"
STATE_FILE = "state.json"
METRICS_FILE = "metrics.json"
BEST_MODEL = "best.keras"
LAST_MODEL = "last.keras"
AVERAGE_MODEL = "average.keras"
INITIAL_MODEL_CARD = "initial_model.json"
TENSORBOARD_DIR = "tensorboard"
EPOCHS_DIR = "epochs"
EPOCH_SUFFIX = ".weights.h5"
_EPOCH_FILE = re.compile(r"^epoch-(\d+)\.weights\.h5$")


def read_config_value(run_dir: str | os.PathLike, key: str) -> Any:
    """One setting of a run's config.json as stored (None when the file or key is missing), without validating it."""
    return read_json_object(Path(run_dir) / CONFIG_FILE).get(key)


def epoch_checkpoint_path(run_dir: str | os.PathLike, epoch: int) -> Path:
    """Where a run keeps the weights of one completed epoch (counted from 1)."""
    return Path(run_dir) / EPOCHS_DIR / f"epoch-{epoch:03d}{EPOCH_SUFFIX}"


def epoch_checkpoints(run_dir: str | os.PathLike) -> dict[int, Path]:
    """The run's kept epoch checkpoints by epoch number, in order."""
    folder = Path(run_dir) / EPOCHS_DIR
    found = {}
    for path in folder.glob("epoch-*") if folder.is_dir() else []:
        match = _EPOCH_FILE.match(path.name)
        if match:
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def epoch_span(epochs: list[int]) -> str:
    """'epochs 2-16' for a consecutive run of epochs, else 'epochs 2, 3, 7'."""
    if epochs == list(range(epochs[0], epochs[-1] + 1)):
        return f"epochs {epochs[0]}-{epochs[-1]}"
    return "epochs " + ", ".join(map(str, epochs))


# --- history and saved state ----------------------------------------------------------------------------------


def read_history(run_dir: str | os.PathLike) -> list[dict[str, float]]:
    """Rows of history.csv as floats (Keras CSVLogger format)."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.exists():
        return []
    rows = []
    with open(path, encoding="utf-8", newline="") as stream:
        for row in csv.DictReader(stream):
            try:
                rows.append(
                    {key: float(value) for key, value in row.items() if key is not None and value not in (None, "")}
                )
            except ValueError:
                continue
    return rows


def truncate_history(run_dir: str | os.PathLike, epochs_completed: int) -> None:
    """Drop history rows at or after `epochs_completed` (e.g. the partial epoch of a stopped run)."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.exists():
        return
    with open(path, encoding="utf-8", newline="") as stream:
        reader = csv.reader(stream)
        header = next(reader, None)
        rows = [row for row in reader if row and row[0].isdigit() and int(row[0]) < epochs_completed]
    if header is None:
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def saved_state(run_dir: str | os.PathLike) -> dict[str, Any]:
    """state.json corrected by the checkpoints' own sidecars, which are written first at each epoch's end.

    A process killed after saving last.keras or best.keras but before state.json would otherwise resume
    from an older epoch count, or compare later epochs with an older best score and overwrite a better
    best.keras.
    """
    path = Path(run_dir)
    state = read_json_object(path / STATE_FILE)
    last = read_json_object(sidecar_path(path / LAST_MODEL))
    if (path / LAST_MODEL).exists() and as_int(last.get("epochs_completed")) > 0:
        state["epochs_completed"] = as_int(last["epochs_completed"])
    best = read_json_object(sidecar_path(path / BEST_MODEL)).get("metrics")
    best = best if isinstance(best, dict) else {}
    score, epoch = best.get("val_accuracy"), best.get("epoch")
    recorded = as_number(state.get("best_val_accuracy"))
    newer_best = as_number(score) is not None and (recorded is None or float(score) >= recorded)
    if (path / BEST_MODEL).exists() and isinstance(epoch, int) and newer_best:
        state["best_val_accuracy"], state["best_epoch"] = float(score), epoch
    return state


def has_trained(run_dir: str | os.PathLike) -> bool:
    """Whether a run folder holds anything training wrote (a checkpoint, saved state or progress)."""
    path = Path(run_dir)
    return any((path / name).exists() for name in (LAST_MODEL, BEST_MODEL, STATE_FILE, PROGRESS_FILE))


# --- listing ------------------------------------------------------------------------------------------------


@dataclass
class RunSummary:
    """One line of the runs table."""

    run_id: str
    path: Path
    state: str
    architecture: str
    epochs: int
    epochs_completed: int
    best_val_accuracy: float | None
    duration_seconds: float | None
    started: float | None
    label: JobLabel = field(default_factory=JobLabel)

    @property
    def title(self) -> str:
        """The run's name, or its id when it has none."""
        return self.label.title(self.run_id)


def summarize_run(run_dir: str | os.PathLike) -> RunSummary:
    path = Path(run_dir)
    status = read_status(path)
    config = read_json_object(path / CONFIG_FILE)
    state = saved_state(path)
    started = as_number(status.get("started"))
    ended = as_number(status.get("ended")) or as_number(status.get("updated"))
    best = state.get("best_val_accuracy")
    return RunSummary(
        run_id=path.name,
        path=path,
        state=str(status.get("state", "interrupted")),
        architecture=str(config.get("architecture", "?")),
        epochs=as_int(config.get("epochs")),
        epochs_completed=as_int(state.get("epochs_completed")),
        best_val_accuracy=float(best) if as_number(best) is not None else None,
        duration_seconds=(ended - started) if started and ended else None,
        started=started,
        label=read_label(path),
    )


def list_runs(runs_dir: str | os.PathLike | None = None) -> list[RunSummary]:
    """All run folders under `runs_dir`, newest first."""
    root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    if not root.is_dir():
        return []
    found = [summarize_run(child) for child in root.iterdir() if (child / CONFIG_FILE).exists()]
    return sorted(found, key=lambda run: run.run_id, reverse=True)


def active_runs(runs_dir: str | os.PathLike | None = None) -> list[RunSummary]:
    """Runs that are starting or training, newest first (their folders say so and their process is alive)."""
    return [run for run in list_runs(runs_dir) if run.state in ACTIVE_STATES]


def run_duration(run: RunSummary, now: float | None = None) -> float | None:
    """Wall-clock seconds since the run first started: up to now while active, up to its last write when
    interrupted (its status was never closed), else up to its recorded end."""
    if not run.started:
        return None
    if run.state in ACTIVE_STATES:
        return (now if now is not None else time.time()) - float(run.started)
    if run.state == "interrupted":
        written = [path.stat().st_mtime for path in (run.path / PROGRESS_FILE, run.path / LOG_FILE) if path.exists()]
        return max(written) - float(run.started) if written else run.duration_seconds
    return run.duration_seconds


# --- claiming, deleting (ferlib.training.run_launch creates, starts and resumes runs) --------------------------


def train_arguments(run_dir: Path, data: str, *, resume: bool) -> list[str]:
    """The `python -m ferlib` arguments that train (or resume) the run in `run_dir`."""
    return ["train", "--data", str(data), "--run-dir", str(run_dir), *(["--resume"] if resume else [])]


def ensure_run_may_train(run_dir: str | os.PathLike, *, resume: bool) -> None:
    """Claim a run folder for this process to train, or raise FerError saying why it may not.

    Refused: a run that is already training; any run while another run or search is active; without `resume`, a
    run that has trained before (training it afresh would overwrite its checkpoints and history). A run that reads
    as 'created' by this process or its parent passes: a launcher handing it over. Any other run is marked
    'created' by this process under the launch lock, so no one launches it twice, and a stale stop request from an
    earlier session is dropped.
    """
    path = Path(run_dir).expanduser().resolve()
    if not (path / CONFIG_FILE).is_file():
        raise FerError(f"Expected a run folder containing {CONFIG_FILE}; received {str(run_dir)!r}")
    with launch_lock(path.parent):
        status = read_status(path)
        state = status.get("state")
        if state == "running":
            raise FerError(
                f"Expected a run that is not already training; received {path.name}, "
                f"which is running in process {status.get('pid')}"
            )
        if not resume and has_trained(path):
            epochs = saved_state(path).get("epochs_completed", 0)
            raise FerError(
                f"Expected a new run folder without --resume; received {path.name}, which is {state} with "
                f"{epochs} saved epoch(s): add --resume to continue it, or start a new run"
            )
        if state == "created":
            ensure_handed_over(path, status)
        ensure_no_active_job(path.parent, except_job=path.name)
        if state != "created":
            clear_stop_request(path)
            write_status(path, "created", resumed=resume)


def may_resume(run_dir: str | os.PathLike, state: str | None) -> bool:
    """Whether a run in `state` can continue: stopped or interrupted, or failed after saving a checkpoint (say the
    disk filled up at epoch 40; once there is room again, it goes on from last.keras)."""
    return state in RESUMABLE_STATES or (state == "failed" and (Path(run_dir) / LAST_MODEL).exists())


def delete_run(run_dir: str | os.PathLike) -> None:
    """Remove a run folder with everything in it; refuses active runs and folders that are not runs."""
    path = Path(run_dir)
    if not (path / CONFIG_FILE).is_file():
        raise FerError(f"Expected a run folder containing {CONFIG_FILE}; received {str(run_dir)!r}")
    state = read_status(path).get("state")
    if state in ACTIVE_STATES:
        raise FerError(f"Expected a run that is not training; received {path.name}, which is {state}: stop it first")
    shutil.rmtree(path)
