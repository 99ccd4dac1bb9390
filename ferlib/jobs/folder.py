"""The job-folder contract shared by training runs, hyperparameter searches and ensemble jobs.

A job folder holds config.json, status.json (the state, with the pid and identity of the process that wrote it),
progress.jsonl, log.txt and, while someone asks the job to stop, stop.request. The job runs in its own detached
process; pages and the CLI only read the folder, write stop requests and launch processes. One job trains at a time
on a machine: launching checks for active jobs under an exclusive lock. Plain Python: no Keras.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferlib.atomic import atomic_write_json, read_json, read_json_lines, read_json_object
from ferlib.errors import FerError
from ferlib.jobs import processes
from ferlib.jsonutil import as_int, as_number

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; launching is still checked, just not atomically
    fcntl = None

STATES = ("created", "running", "finished", "failed", "stopped", "interrupted")
# What a running job is doing, in status.json's "phase": loading its data and model, training, or evaluating the
# result (a search trains trials; its phase names the trial).
PHASES = ("starting", "training", "evaluating")
ACTIVE_STATES = ("created", "running")
RESUMABLE_STATES = ("stopped", "interrupted")
CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
PROGRESS_FILE = "progress.jsonl"
LOG_FILE = "log.txt"
LABEL_FILE = "label.json"
STOP_FILE = "stop.request"
LAUNCH_LOCK_FILE = ".launch.lock"
CREATED_GRACE_SECONDS = 60  # a 'created' job's process may take this long to start before it counts as lost


def default_runs_dir() -> Path:
    """$FERLIB_RUNS_DIR, else runs/ in the current directory."""
    return Path(os.environ.get("FERLIB_RUNS_DIR", "runs")).expanduser()


def default_searches_dir() -> Path:
    """$FERLIB_SEARCHES_DIR, else searches/ in the current directory."""
    return Path(os.environ.get("FERLIB_SEARCHES_DIR", "searches")).expanduser()


def default_ensembles_dir() -> Path:
    """$FERLIB_ENSEMBLES_DIR, else ensembles/ in the current directory: the jobs that combine models."""
    return Path(os.environ.get("FERLIB_ENSEMBLES_DIR", "ensembles")).expanduser()


def new_job_id(kind: str) -> str:
    """A sortable, unique folder name: date-time, what the job is, a random suffix."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}-{secrets.token_hex(2)}"


def create_job(root: str | os.PathLike, job_id: str, config: dict[str, Any], **files: dict[str, Any]) -> Path:
    """Make a new job folder holding its config (and any other JSON `files`, by name) and a 'created' status."""
    job_dir = Path(root) / job_id
    if job_dir.exists():
        raise FerError(f"Expected a new job folder; received {str(job_dir)!r}, which already exists")
    job_dir.mkdir(parents=True)
    for name, value in files.items():
        atomic_write_json(job_dir / name, value)
    atomic_write_json(job_dir / CONFIG_FILE, config)
    write_status(job_dir, "created")
    return job_dir


# --- the user's own name, tags and note ---------------------------------------------------------------------------

MAX_NAME = 80
MAX_TAGS = 12
MAX_NOTE = 2000


@dataclass(frozen=True)
class JobLabel:
    """What the user calls a job and notes about it (label.json); all empty until they say something."""

    name: str = ""
    tags: tuple[str, ...] = ()
    note: str = ""

    def title(self, job_id: str) -> str:
        """The job's name, or its id when it has none."""
        return self.name or job_id


def read_label(job_dir: str | os.PathLike) -> JobLabel:
    """The job's label; an empty one when it has none (or label.json cannot be read)."""
    stored = read_json_object(Path(job_dir) / LABEL_FILE)
    tags = stored.get("tags") if isinstance(stored.get("tags"), list) else []
    return JobLabel(
        name=stored["name"] if isinstance(stored.get("name"), str) else "",
        tags=tuple(tag for tag in tags if isinstance(tag, str)),
        note=stored["note"] if isinstance(stored.get("note"), str) else "",
    )


def write_label(
    job_dir: str | os.PathLike, *, name: str = "", tags: list[str] | tuple[str, ...] = (), note: str = ""
) -> JobLabel:
    """Name, tag and note a job (replacing its label); refused for text too long or a tag with commas or spaces
    around it."""
    path = Path(job_dir)
    if not (path / CONFIG_FILE).exists():
        raise FerError(f"Expected a job folder containing {CONFIG_FILE}; received {str(job_dir)!r}")
    name, note = " ".join(str(name).split()), str(note).strip()
    tags = [str(tag).strip() for tag in tags if str(tag).strip()]
    if len(name) > MAX_NAME:
        raise FerError(f"Expected a name of at most {MAX_NAME} characters; received {len(name)}")
    if len(note) > MAX_NOTE:
        raise FerError(f"Expected a note of at most {MAX_NOTE} characters; received {len(note)}")
    if len(tags) > MAX_TAGS or any(len(tag) > 30 or "," in tag for tag in tags):
        raise FerError(f"Expected at most {MAX_TAGS} tags of up to 30 characters, without commas; received {tags!r}")
    label = JobLabel(name=name, tags=tuple(dict.fromkeys(tags)), note=note)
    atomic_write_json(path / LABEL_FILE, {"name": label.name, "tags": list(label.tags), "note": label.note})
    return label


# --- status -------------------------------------------------------------------------------------------------


def write_status(job_dir: str | os.PathLike, state: str, **details: Any) -> None:
    """Record the job's state with this process's pid and identity, and a timestamp."""
    if state not in STATES:
        raise FerError(f"Expected a state among {', '.join(STATES)}; received {state!r}")
    previous = read_json_object(Path(job_dir) / STATUS_FILE)
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
    status.update(processes.process_identity(int(status["pid"])))
    atomic_write_json(Path(job_dir) / STATUS_FILE, status)


def read_status(job_dir: str | os.PathLike) -> dict[str, Any]:
    """The job's status; a 'running' job whose process has died reads as 'interrupted'."""
    status = read_json(Path(job_dir) / STATUS_FILE, default=None)
    if not isinstance(status, dict):
        return {"state": "interrupted", "error": f"{STATUS_FILE} is missing or unreadable"}
    state, pid = status.get("state"), as_int(status.get("pid"))
    recently_created = state == "created" and time.time() - (as_number(status.get("updated")) or 0) < (
        CREATED_GRACE_SECONDS
    )
    if state in ACTIVE_STATES and pid and not recently_created and not processes.process_alive(pid, status):
        status = {**status, "state": "interrupted", "error": "the process ended without finishing"}
    return status


def is_active(job_dir: str | os.PathLike) -> bool:
    return read_status(job_dir).get("state") in ACTIVE_STATES


# --- stop requests, progress and log --------------------------------------------------------------------------


def request_stop(job_dir: str | os.PathLike) -> None:
    """Ask the job's process to stop after its current batch (it saves a checkpoint first)."""
    path = Path(job_dir)
    if not (path / CONFIG_FILE).exists():
        raise FerError(f"Expected a job folder containing {CONFIG_FILE}; received {str(job_dir)!r}")
    (path / STOP_FILE).write_text(str(time.time()), encoding="utf-8")


def stop_requested(job_dir: str | os.PathLike) -> bool:
    return (Path(job_dir) / STOP_FILE).exists()


def clear_stop_request(job_dir: str | os.PathLike) -> None:
    (Path(job_dir) / STOP_FILE).unlink(missing_ok=True)


class StopSignal:
    """Set by SIGTERM or a stop-request file; checked after every batch."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.signalled = False
        self.triggered = False

    def should_stop(self) -> bool:
        if not self.triggered and (self.signalled or stop_requested(self.run_dir)):
            self.triggered = True
        return self.triggered


def install_stop_signal(run_dir: Path):
    """A StopSignal for the folder (its stop.request file), also set by SIGTERM when called on the main thread."""
    stop = StopSignal(run_dir)
    if threading.current_thread() is threading.main_thread():

        def handle(signum, frame):
            stop.signalled = True

        signal.signal(signal.SIGTERM, handle)
    return stop


def terminate(job_dir: str | os.PathLike) -> None:
    """Send SIGTERM to a running job's process (it stops after the current batch, like a stop request)."""
    status = read_status(job_dir)
    if status.get("state") == "running" and status.get("pid"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(status["pid"]), signal.SIGTERM)


def read_progress(job_dir: str | os.PathLike) -> list[dict[str, Any]]:
    return read_json_lines(Path(job_dir) / PROGRESS_FILE)


# TensorFlow's start-up chatter (absl and C++ logging, CPU-feature notices): not what a person reading the log wants.
_LOG_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)|[IWE]\d{4} \d\d:\d\d:[\d.]+\s+\d+ \S+:\d+\]|"
    r"To enable the following instructions:|.*This TensorFlow binary is optimized to use available CPU instructions)"
)


def read_log_tail(
    job_dir: str | os.PathLike, max_lines: int = 40, max_bytes: int = 65536, *, keep_noise: bool = False
) -> str:
    """The last lines of the job's log.txt (reading at most `max_bytes` from its end); empty when there is none.

    TensorFlow's start-up chatter is left out unless `keep_noise`.
    """
    try:
        with open(Path(job_dir) / LOG_FILE, "rb") as stream:
            size = stream.seek(0, os.SEEK_END)
            stream.seek(max(0, size - max_bytes))
            data = stream.read()
    except FileNotFoundError:
        return ""
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > max_bytes:
        lines = lines[1:]  # the first line read is most likely cut
    if not keep_noise:
        lines = [line for line in lines if not _LOG_NOISE.match(line)]
    return "\n".join(lines[-max_lines:])


# --- one job at a time, launching -----------------------------------------------------------------------------


@contextlib.contextmanager
def launch_lock(root: Path):
    """Hold an exclusive lock on `root` so that checking for active jobs and launching one is a single step."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LAUNCH_LOCK_FILE, "a+b") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)


def active_jobs(root: str | os.PathLike) -> list[tuple[str, str]]:
    """(job id, state) of the folders under `root` that are starting or running, newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [
        (child.name, read_status(child).get("state")) for child in root.iterdir() if (child / CONFIG_FILE).exists()
    ]
    return sorted(((name, str(state)) for name, state in found if state in ACTIVE_STATES), reverse=True)


def ensure_no_active_job(
    runs_dir: str | os.PathLike | None = None,
    searches_dir: str | os.PathLike | None = None,
    *,
    except_job: str | None = None,
) -> None:
    """Raise FerError naming the active run or search: a small machine trains one job at a time.

    `except_job` names a job to leave out: the one a launched process is about to take over.
    """
    roots = {
        "run, since one run trains at a time": runs_dir if runs_dir is not None else default_runs_dir(),
        "hyperparameter search, since one job runs at a time": (
            searches_dir if searches_dir is not None else default_searches_dir()
        ),
    }
    for what, root in roots.items():
        active = [(name, state) for name, state in active_jobs(root) if name != except_job]
        if active:
            described = ", ".join(f"{name} ({state})" for name, state in active)
            raise FerError(f"Expected no active {what}; received {described}: stop it or wait for it to finish")


def ensure_handed_over(job_dir: Path, status: dict[str, Any]) -> None:
    """Refuse a 'created' folder that this process's launcher did not create or claim for it.

    A launcher records itself, then the process it started: either this process or its parent.
    """
    if status.get("pid") not in (os.getpid(), os.getppid()):
        raise FerError(
            f"Expected a folder created or claimed for this process; received {job_dir.name}, which process "
            f"{status.get('pid')} is starting: wait for it, or stop it"
        )


def existing_dataset(data: str) -> str:
    """The dataset path a job's config names, refused when empty or missing before any process starts."""
    if not data:
        raise FerError("Expected the config to name its dataset ('data'); received none")
    if not Path(data).expanduser().exists():
        raise FerError(f"Expected an existing dataset; received {data!r}, which does not exist")
    return data


def spawn(job_dir: Path, arguments: list[str], *, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `python -m ferlib ARGUMENTS` as a detached, lower-priority process writing to the job's log.txt.

    The process outlives the caller (its own session) and writes its state to the folder, so a dashboard can be
    closed and reopened while it trains.
    """
    with open(job_dir / LOG_FILE, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "ferlib", *arguments],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(extra_env or {})},
            preexec_fn=processes.lower_priority if os.name == "posix" else None,
        )


def launch(job_dir: Path, arguments: list[str], *, resume: bool, extra_env: dict[str, str] | None = None) -> None:
    """Spawn the job's process and name it in status.json.

    The folder was marked 'created' by this process; recording the new process's pid instead means one that dies
    before it starts reads as 'interrupted' (after the grace minute) rather than blocking new jobs for as long as
    the dashboard lives.
    """
    try:
        process = spawn(job_dir, arguments, extra_env=extra_env)
    except OSError as error:
        write_status(job_dir, "failed", error=f"the process could not be started: {error}")
        raise FerError(f"Expected to start the job's process; received {error}") from None
    status = read_json_object(job_dir / STATUS_FILE)
    if status.get("state") == "created":
        write_status(job_dir, "created", pid=process.pid, launched=time.time(), resumed=resume)
