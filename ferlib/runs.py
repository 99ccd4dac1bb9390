"""Run folders: the on-disk contract between a training process and anyone watching it.

A run folder holds config.json, status.json, progress.jsonl, history.csv, tensorboard/,
best.keras (+ best.json sidecar), last.keras, state.json, metrics.json and log.txt. Every JSON file is
written atomically; progress.jsonl is append-only with one record a line.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferlib.atomic import atomic_write_json, atomic_write_text, read_json, read_json_lines
from ferlib.config import TrainConfig

STATES = ("created", "running", "finished", "failed", "stopped", "interrupted")
CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
PROGRESS_FILE = "progress.jsonl"
HISTORY_FILE = "history.csv"
STATE_FILE = "state.json"
METRICS_FILE = "metrics.json"
LOG_FILE = "log.txt"
STOP_FILE = "stop.request"
BEST_MODEL = "best.keras"
LAST_MODEL = "last.keras"
TENSORBOARD_DIR = "tensorboard"


def default_runs_dir() -> Path:
    """$FERLIB_RUNS_DIR, else runs/ in the current directory."""
    return Path(os.environ.get("FERLIB_RUNS_DIR", "runs")).expanduser()


def new_run_id(config: TrainConfig) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{config.architecture}-{secrets.token_hex(2)}"


def create_run(config: TrainConfig, runs_dir: str | os.PathLike | None = None, run_id: str | None = None) -> Path:
    """Make a new run folder holding the config and a 'created' status."""
    root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    run_dir = root / (run_id or new_run_id(config))
    if run_dir.exists():
        raise ValueError(f"Expected a new run folder; received {str(run_dir)!r}, which already exists")
    run_dir.mkdir(parents=True)
    atomic_write_json(run_dir / CONFIG_FILE, config.to_dict())
    write_status(run_dir, "created")
    return run_dir


def load_config(run_dir: str | os.PathLike) -> TrainConfig:
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise ValueError(f"Expected a run folder containing {CONFIG_FILE}; received {str(run_dir)!r}")
    return TrainConfig.from_file(path)


def write_status(run_dir: str | os.PathLike, state: str, **details: Any) -> None:
    """Record the run's state with this process's pid and a timestamp."""
    if state not in STATES:
        raise ValueError(f"Expected a state among {', '.join(STATES)}; received {state!r}")
    previous = read_json(Path(run_dir) / STATUS_FILE, default={}) or {}
    now = time.time()
    status = {
        "state": state,
        "pid": os.getpid(),
        "created": previous.get("created", now),
        "started": previous.get("started"),
        "updated": now,
        **details,
    }
    if state == "running" and not status["started"]:
        status["started"] = now
    if state in ("finished", "failed", "stopped"):
        status["ended"] = now
    atomic_write_json(Path(run_dir) / STATUS_FILE, status)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _is_not_zombie(pid)


def _is_not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stream:
            return stream.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def read_status(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's status; a 'running' run whose process has died reads as 'interrupted'."""
    status = read_json(Path(run_dir) / STATUS_FILE, default=None)
    if not isinstance(status, dict):
        return {"state": "interrupted", "error": f"{STATUS_FILE} is missing or unreadable"}
    state, pid = status.get("state"), status.get("pid")
    # A 'created' run is given a minute for its process to start before it counts as lost.
    recently_created = state == "created" and time.time() - float(status.get("updated", 0)) < 60
    if state in ("running", "created") and pid and not recently_created and not _process_alive(int(pid)):
        status = {**status, "state": "interrupted", "error": "the training process ended without finishing"}
    return status


def is_active(run_dir: str | os.PathLike) -> bool:
    return read_status(run_dir).get("state") in ("created", "running")


def request_stop(run_dir: str | os.PathLike) -> None:
    """Ask the run's process to stop after its current batch (it saves a checkpoint first)."""
    path = Path(run_dir)
    if not (path / CONFIG_FILE).exists():
        raise ValueError(f"Expected a run folder containing {CONFIG_FILE}; received {str(run_dir)!r}")
    (path / STOP_FILE).write_text(str(time.time()), encoding="utf-8")


def stop_requested(run_dir: str | os.PathLike) -> bool:
    return (Path(run_dir) / STOP_FILE).exists()


def clear_stop_request(run_dir: str | os.PathLike) -> None:
    (Path(run_dir) / STOP_FILE).unlink(missing_ok=True)


def read_progress(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    return read_json_lines(Path(run_dir) / PROGRESS_FILE)


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


def summarize_run(run_dir: str | os.PathLike) -> RunSummary:
    path = Path(run_dir)
    status = read_status(path)
    config = read_json(path / CONFIG_FILE, default={}) or {}
    state = read_json(path / STATE_FILE, default={}) or {}
    started, ended = status.get("started"), status.get("ended") or status.get("updated")
    return RunSummary(
        run_id=path.name,
        path=path,
        state=str(status.get("state", "interrupted")),
        architecture=str(config.get("architecture", "?")),
        epochs=int(config.get("epochs", 0) or 0),
        epochs_completed=int(state.get("epochs_completed", 0) or 0),
        best_val_accuracy=state.get("best_val_accuracy"),
        duration_seconds=(float(ended) - float(started)) if started and ended else None,
        started=started,
    )


def list_runs(runs_dir: str | os.PathLike | None = None) -> list[RunSummary]:
    """All run folders under `runs_dir`, newest first."""
    root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    if not root.is_dir():
        return []
    runs = [summarize_run(child) for child in root.iterdir() if (child / CONFIG_FILE).exists()]
    return sorted(runs, key=lambda run: run.run_id, reverse=True)


def launch_run(
    run_dir: str | os.PathLike,
    data: str | os.PathLike,
    *,
    resume: bool = False,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """Start `python -m ferlib train` on an existing run folder as a detached process.

    The process outlives the caller (own session), writes its output to log.txt and its state to
    the folder, so a dashboard can be closed and reopened while it trains.
    """
    path = Path(run_dir)
    command = [sys.executable, "-m", "ferlib", "train", "--data", str(data), "--run-dir", str(path)]
    if resume:
        command.append("--resume")
    environment = {**os.environ, **(extra_env or {})}
    project_root = str(Path(__file__).resolve().parent.parent)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [project_root, environment.get("PYTHONPATH", "")]))
    with open(path / LOG_FILE, "ab") as log:
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=environment,
        )


def terminate_run(run_dir: str | os.PathLike) -> None:
    """Send SIGTERM to a running run's process (it stops after the current batch, like a stop request)."""
    status = read_status(run_dir)
    if status.get("state") == "running" and status.get("pid"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(status["pid"]), signal.SIGTERM)
