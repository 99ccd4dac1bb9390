"""Run folders: the on-disk contract between a training process and anyone watching it.

A run folder holds config.json, status.json, progress.jsonl, history.csv, tensorboard/,
best.keras (+ best.json sidecar), last.keras, state.json, metrics.json and log.txt. Every JSON file is
written atomically; progress.jsonl is append-only with one record a line.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferlib.atomic import atomic_write_json, atomic_write_text, read_json, read_json_lines, read_json_object
from ferlib.errors import FerError
from ferlib.nets.modelio import check_initial_model, sidecar_path
from ferlib.training.config import TrainConfig

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; launching is still checked, just not atomically
    fcntl = None

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
        raise FerError(f"Expected a new run folder; received {str(run_dir)!r}, which already exists")
    run_dir.mkdir(parents=True)
    atomic_write_json(run_dir / CONFIG_FILE, config.to_dict())
    write_status(run_dir, "created")
    return run_dir


def load_config(run_dir: str | os.PathLike) -> TrainConfig:
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise FerError(f"Expected a run folder containing {CONFIG_FILE}; received {str(run_dir)!r}")
    return TrainConfig.from_file(path)


def write_status(run_dir: str | os.PathLike, state: str, **details: Any) -> None:
    """Record the run's state with this process's pid and a timestamp."""
    if state not in STATES:
        raise FerError(f"Expected a state among {', '.join(STATES)}; received {state!r}")
    previous = read_json_object(Path(run_dir) / STATUS_FILE)
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
    status.update(process_identity(int(status["pid"])))
    atomic_write_json(Path(run_dir) / STATUS_FILE, status)


def process_identity(pid: int) -> dict[str, Any]:
    """What tells this process apart from a later one given the same pid: the boot and the process's start time.

    Linux only (from /proc); elsewhere empty, and a recorded pid is trusted as it is.
    """
    boot_id, start_ticks = _boot_id(), _process_start_ticks(pid)
    identity: dict[str, Any] = {}
    if boot_id:
        identity["boot_id"] = boot_id
    if start_ticks is not None:
        identity["pid_start_ticks"] = start_ticks
    return identity


@functools.cache
def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip() or None
    except OSError:
        return None


def _process_stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None when unreadable."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stream:
            return stream.read().rsplit(")", 1)[-1].split()
    except OSError:
        return None


def _process_start_ticks(pid: int) -> int | None:
    fields = _process_stat_fields(pid)
    try:
        return int(fields[19]) if fields else None  # field 22 of stat: start time in clock ticks after boot
    except (IndexError, ValueError):
        return None


@functools.cache
def _boot_time() -> float | None:
    """When the machine booted (Linux: btime in /proc/stat), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as stream:
            for line in stream:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _process_alive(pid: int, status: dict[str, Any] | None = None) -> bool:
    """Whether the process a status names still runs: same boot, its pid exists and is not a zombie and, when the
    status recorded it, the process started at the same time (so a pid reused by a later process does not count)."""
    status = status or {}
    recorded_boot, current_boot = status.get("boot_id"), _boot_id()
    if recorded_boot and current_boot and recorded_boot != current_boot:
        return False
    booted = _boot_time()
    if not recorded_boot and booted and float(status.get("updated") or booted) < booted:
        return False  # an older status without a boot id, last written before this boot
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: /proc still tells its start time
    fields = _process_stat_fields(pid)
    if fields is None:
        return True
    if fields and fields[0] == "Z":
        return False
    recorded_start = status.get("pid_start_ticks")
    return recorded_start is None or _process_start_ticks(pid) in (None, recorded_start)


def read_status(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's status; a 'running' run whose process has died reads as 'interrupted'."""
    status = read_json(Path(run_dir) / STATUS_FILE, default=None)
    if not isinstance(status, dict):
        return {"state": "interrupted", "error": f"{STATUS_FILE} is missing or unreadable"}
    state, pid = status.get("state"), as_int(status.get("pid"))
    # A 'created' run is given a minute for its process to start before it counts as lost.
    recently_created = state == "created" and time.time() - (as_number(status.get("updated")) or 0) < 60
    if state in ("running", "created") and pid and not recently_created and not _process_alive(pid, status):
        status = {**status, "state": "interrupted", "error": "the training process ended without finishing"}
    return status


def is_active(run_dir: str | os.PathLike) -> bool:
    return read_status(run_dir).get("state") in ("created", "running")


def request_stop(run_dir: str | os.PathLike) -> None:
    """Ask the run's process to stop after its current batch (it saves a checkpoint first)."""
    path = Path(run_dir)
    if not (path / CONFIG_FILE).exists():
        raise FerError(f"Expected a run folder containing {CONFIG_FILE}; received {str(run_dir)!r}")
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
    )


def as_int(value: Any) -> int:
    """A whole number read from a hand-editable JSON file; 0 for anything else (a string, a list, null)."""
    return int(value) if as_number(value) is not None else 0


def as_number(value: Any) -> float | None:
    """A number (a timestamp, a duration, a score) read from a JSON file; None for anything else."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


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


# --- Dashboard support: one active run at a time, launching, resuming, deleting, reading progress. ---

ACTIVE_STATES = ("created", "running")
RESUMABLE_STATES = ("stopped", "interrupted")
LAUNCH_LOCK_FILE = ".launch.lock"


def active_runs(runs_dir: str | os.PathLike | None = None) -> list[RunSummary]:
    """Runs that are starting or training, newest first (their folders say so and their process is alive)."""
    return [run for run in list_runs(runs_dir) if run.state in ACTIVE_STATES]


def ensure_no_active_run(
    runs_dir: str | os.PathLike | None = None,
    searches_dir: str | os.PathLike | None = None,
    *,
    except_run: str | None = None,
) -> None:
    """Raise ValueError naming the active run or hyperparameter search: a small machine runs one job at a time.

    Searches are looked for in `searches_dir` (default: ferlib.jobs.searches.default_searches_dir()). `except_run`
    names a run id to leave out: the run a launched training process is about to train.
    """
    active = [run for run in active_runs(runs_dir) if run.run_id != except_run]
    if active:
        described = ", ".join(f"{run.run_id} ({run.state})" for run in active)
        raise FerError(
            f"Expected no active run, since one run trains at a time; received {described}: "
            "stop it or wait for it to finish"
        )
    from ferlib.jobs.searches import active_searches  # imported here: ferlib.jobs.searches builds on this module

    searching = active_searches(searches_dir)
    if searching:
        described = ", ".join(f"{search.search_id} ({search.state})" for search in searching)
        raise FerError(
            f"Expected no active hyperparameter search, since one job runs at a time; received {described}: "
            "stop it or wait for it to finish"
        )


@contextlib.contextmanager
def launch_lock(root: Path):
    """Hold an exclusive lock on `root` so that checking for active runs and launching one is a single step."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LAUNCH_LOCK_FILE, "a+b") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _launch_and_record(run_dir: Path, data: str, *, resume: bool, extra_env: dict[str, str] | None) -> subprocess.Popen:
    """Launch the training process and name it in status.json.

    create_run records the launching process's pid; recording the training process's pid instead means a
    process that dies before it starts training reads as 'interrupted' (after read_status's grace minute)
    rather than blocking new runs for as long as the dashboard lives. (The new process spends far longer
    importing its libraries than this rewrite takes, so in practice it has not written 'running' yet.)
    """
    try:
        process = launch_run(run_dir, data, resume=resume, extra_env=extra_env)
    except OSError as error:
        write_status(run_dir, "failed", error=f"the training process could not be started: {error}")
        raise FerError(f"Expected to start the training process; received {error}") from None
    status = read_json_object(run_dir / STATUS_FILE)
    if status.get("state") == "created":
        write_status(run_dir, "created", pid=process.pid, launched=time.time(), resumed=resume)
    return process


def _existing_dataset(data: str) -> str:
    if not data:
        raise FerError("Expected the config to name its dataset ('data'); received none")
    if not Path(data).expanduser().exists():
        raise FerError(f"Expected an existing dataset; received {data!r}, which does not exist")
    return data


def start_run(
    config: TrainConfig,
    runs_dir: str | os.PathLike | None = None,
    *,
    extra_env: dict[str, str] | None = None,
) -> Path:
    """Create a run folder for `config` and train it in a detached process; refused while another run is active."""
    run_dir = create_checked_run(config, runs_dir)
    _launch_and_record(run_dir, config.data, resume=False, extra_env=extra_env)
    return run_dir


def create_checked_run(config: TrainConfig, runs_dir: str | os.PathLike | None = None) -> Path:
    """Check a new run's dataset and starting model, then create its folder; refused while another job is active.

    Nothing is written when a check fails. The new folder reads as 'created' by this process, so it blocks
    other launches until this process (or the training process it hands over to) trains or ends.
    """
    root = (Path(runs_dir) if runs_dir is not None else default_runs_dir()).expanduser().resolve()
    _existing_dataset(config.data)
    if config.initial_model:
        initial = check_initial_model(config.initial_model, config.architecture, config.hyperparameters)
        config = config.updated(initial_model=str(initial))
    with launch_lock(root):
        ensure_no_active_run(root)
        return create_run(config, root)


def ensure_run_may_train(run_dir: str | os.PathLike, *, resume: bool) -> None:
    """Claim a run folder for this process to train, or raise ValueError saying why it may not.

    Refused: a run that is already training; any run while another run or search in its folder is active;
    without `resume`, a run that has trained before (training it afresh would overwrite its checkpoints and
    history). A run that reads as 'created' by this process or its parent passes: a launcher handing it over.
    Any other run is marked 'created' by this process under the launch lock, so no one launches it twice, and a
    stale stop request from an earlier session is dropped.
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
        ensure_no_active_run(path.parent, except_run=path.name)
        if state != "created":
            clear_stop_request(path)
            write_status(path, "created", resumed=resume)


def ensure_handed_over(job_dir: Path, status: dict[str, Any]) -> None:
    """Refuse a 'created' run or search folder that this process's launcher did not create or claim for it.

    A launcher records itself, then the process it started: either this process or its parent.
    """
    if status.get("pid") not in (os.getpid(), os.getppid()):
        raise FerError(
            f"Expected a folder created or claimed for this process; received {job_dir.name}, which process "
            f"{status.get('pid')} is starting: wait for it, or stop it"
        )


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


def may_resume(run_dir: str | os.PathLike, state: str | None) -> bool:
    """Whether a run (or search) in `state` can continue: stopped or interrupted, or failed after saving a
    checkpoint (say the disk filled up at epoch 40; once there is room again, it goes on from last.keras)."""
    return state in RESUMABLE_STATES or (state == "failed" and (Path(run_dir) / LAST_MODEL).exists())


def resume_run(run_dir: str | os.PathLike, *, extra_env: dict[str, str] | None = None) -> Path:
    """Continue a stopped, interrupted or failed run from its last checkpoint in a new detached process.

    Refused while any run in the same runs folder is active; the run reads as 'created' until the new
    process starts training, so a second click cannot launch it twice.
    """
    path = Path(run_dir).expanduser().resolve()
    data = _existing_dataset(load_config(path).data)
    with launch_lock(path.parent):
        state = read_status(path).get("state")
        if not may_resume(path, state):
            raise FerError(
                f"Expected a stopped or interrupted run, or a failed one with a checkpoint, to resume; "
                f"received {path.name}, which is {state}"
            )
        ensure_no_active_run(path.parent)
        clear_stop_request(path)
        write_status(path, "created", resumed=True)
        _launch_and_record(path, data, resume=True, extra_env=extra_env)
    return path


def delete_run(run_dir: str | os.PathLike) -> None:
    """Remove a run folder with everything in it; refuses active runs and folders that are not runs."""
    path = Path(run_dir)
    if not (path / CONFIG_FILE).is_file():
        raise FerError(f"Expected a run folder containing {CONFIG_FILE}; received {str(run_dir)!r}")
    state = read_status(path).get("state")
    if state in ACTIVE_STATES:
        raise FerError(f"Expected a run that is not training; received {path.name}, which is {state}: stop it first")
    shutil.rmtree(path)


def read_log_tail(run_dir: str | os.PathLike, max_lines: int = 40, max_bytes: int = 65536) -> str:
    """The last lines of the run's log.txt (reading at most `max_bytes` from its end); empty when there is none."""
    try:
        with open(Path(run_dir) / LOG_FILE, "rb") as stream:
            size = stream.seek(0, os.SEEK_END)
            stream.seek(max(0, size - max_bytes))
            data = stream.read()
    except FileNotFoundError:
        return ""
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > max_bytes:
        lines = lines[1:]  # the first line read is most likely cut
    return "\n".join(lines[-max_lines:])


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


def describe_config(config: TrainConfig) -> str:
    """A one-line summary of a config's optimisation and augmentation settings, for tables."""
    parts = [
        f"{config.optimizer} lr {config.learning_rate:g}",
        f"batch {config.batch_size}",
        config.schedule + (f" (warm-up {config.warmup_epochs})" if config.warmup_epochs else ""),
    ]
    if config.label_smoothing:
        parts.append(f"smoothing {config.label_smoothing:g}")
    if config.weight_decay:
        parts.append(f"decay {config.weight_decay:g}")
    if config.train_fraction < 1:
        parts.append(f"{config.train_fraction:.0%} of train")
    augmentation = config.augmentation
    switches = {
        "flip": augmentation.horizontal_flip,
        "translate": augmentation.translate,
        "rotate": augmentation.rotate_degrees,
        "zoom": augmentation.zoom,
        "contrast": augmentation.contrast,
        "erasing": augmentation.erasing,
    }
    active = [name for name, value in switches.items() if value]
    parts.append("aug " + "+".join(active) if active else "no aug")
    return ", ".join(parts)
