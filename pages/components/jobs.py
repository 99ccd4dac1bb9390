"""The one job monitor of training runs and searches: the job to watch, its status badge, progress and ETA, Stop and
Resume, log tail; and a run's portable snapshot, out and back in. Jobs run in their own processes; the monitor
reads their folders (ferlib.jobs.folder)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from ferlib.errors import FerError
from ferlib.jobs import folder, progress, runs, searches
from ferlib.training import snapshot
from ferlib.training.config import TrainConfig
from pages.components.common import attempt, dataset_label, flash, format_duration, internal_errors, show_error

REFRESH_SECONDS = 2.0
SNAPSHOT_HELP = "One file with all this run needs to continue elsewhere: resume it under **Resume from a snapshot**."
STATE_BADGES = {
    "created": ("starting", "blue", ":material/hourglass_top:"),
    "running": ("running", "blue", ":material/play_circle:"),
    "finished": ("finished", "green", ":material/check_circle:"),
    "failed": ("failed", "red", ":material/error:"),
    "stopped": ("stopped", "orange", ":material/stop_circle:"),
    "interrupted": ("interrupted", "orange", ":material/warning:"),
}


@dataclass(frozen=True)
class JobKind:
    """What the monitor needs to know about one kind of job (training run or search)."""

    scope: str  # prefix of the page's session-state and widget keys
    noun: str  # "run" or "search", in the texts
    plural: str
    is_job: Callable[[Path], bool]  # whether the folder (still) holds such a job
    resume: Callable[[Path], Any]  # relaunches a stopped job's process
    stop_help: str
    resume_help: str


def state_label(state: str) -> str:
    return STATE_BADGES.get(state, (state,))[0]


def busy_message(then: str) -> str | None:
    """Why no job can start now (this machine runs one job at a time), or None when none is active."""
    active = [(f"training run **{job.run_id}**", job.state, "Training") for job in runs.active_runs()]
    active += [(f"hyperparameter search **{job.search_id}**", job.state, "Tune") for job in searches.active_searches()]
    if not active:
        return None
    job, state, page = active[0]
    stop = f"stop it on the **{page}** page (it can be resumed later) or wait {then}"
    return f"The {job} is {state_label(state)}. This machine runs one job at a time: {stop}."


def monitor(kind: JobKind, root: Path, jobs: list[tuple[str, str]], details: Callable) -> None:
    """Choose a job among (job id, state) pairs, newest first, then watch it: `details(job_dir, status)` draws the
    page's part (header, figures, buttons) in a fragment that reruns every few seconds while the job is active."""
    st.subheader(f"Watch a {kind.noun}")
    if not jobs:
        start = f"Start one under **New {kind.noun}** below: it runs in its own process, so you may close this tab."
        st.info(f"No {kind.plural} yet. {start}", icon=":material/info:")
        return
    states = dict(jobs)
    key, next_key = f"{kind.scope}_watched_{kind.noun}", f"{kind.scope}_watch_next"
    if next_key in st.session_state:  # a job just started or resumed
        st.session_state[key] = st.session_state.pop(next_key)
    if st.session_state.get(key) not in states:
        active = [job_id for job_id, state in jobs if state in folder.ACTIVE_STATES]
        st.session_state[key] = (active or list(states))[0]
    help_text = f"Read from the {kind.noun} folders: one started from another tab or the command line is here too."
    options = dict(key=key, format_func=lambda job: f"{job} · {state_label(states[job])}", help=help_text)
    job_id = st.selectbox(kind.noun.capitalize(), list(states), **options)
    live = states[job_id] in folder.ACTIVE_STATES
    st.fragment(run_every=REFRESH_SECONDS if live else None)(_watch)(kind, root / job_id, live, details)


def started(scope: str, job_dir: Path, message: str, toast_scope: str | None = None) -> None:
    """Watch a job just started or resumed on the page of `scope` the next time it is drawn, and say so."""
    st.session_state[f"{scope}_watch_next"] = job_dir.name
    flash(toast_scope or scope, message, ":material/rocket_launch:")
    st.rerun()


def _watch(kind: JobKind, job_dir: Path, was_live: bool, details: Callable) -> None:
    with internal_errors(f"the {kind.noun} monitor"):  # a fragment's own reruns do not pass through app.py
        if not kind.is_job(job_dir):
            if was_live:
                st.rerun()  # stop polling: the whole page redraws without the vanished job
            st.info(f"This {kind.noun}'s folder is gone. Pick another {kind.noun} above.", icon=":material/info:")
            return
        status = folder.read_status(job_dir)
        if (status.get("state") in folder.ACTIVE_STATES) != was_live:
            st.rerun()  # the job started or ended: refresh the whole page (lists, Start buttons, refresh timer)
        if f"{kind.scope}_monitor_message" in st.session_state:  # what a Stop or Resume click left
            show_error(*st.session_state.pop(f"{kind.scope}_monitor_message"))
        details(job_dir, status)
        with st.expander("Log", expanded=status.get("state") == "failed"):
            log_tail(job_dir)


def header(job_dir: Path, state: str, description: str, notes: dict[str, str]) -> None:
    """The job's name and description beside its status badge, then the page's note on its state, if any: an error
    when it failed, a success when it finished, else information."""
    title, badge = st.columns([5, 1], vertical_alignment="center")
    title.markdown(f"**{job_dir.name}**  \n{description}")
    label, color, icon = STATE_BADGES.get(state, (state, "gray", None))
    badge.badge(label, color=color, icon=icon)
    if note := notes.get(state):
        show = {"failed": (st.error, "error"), "finished": (st.success, "check_circle")}.get(state, (st.info, "info"))
        show[0](note, icon=f":material/{show[1]}:")


def progress_bar(records: list[dict], state: str, waiting: str, prefix: str = "") -> progress.ProgressSnapshot | None:
    """The job's progress from its progress.jsonl records: epoch, batch and (while running) the time left."""
    now = progress.progress_snapshot(records)
    if now is None:
        if state in folder.ACTIVE_STATES:
            st.progress(0.0, text=waiting)
        return None
    eta = now.eta_at(time.time()) if state == "running" else None
    text = f"{prefix}Epoch {now.epoch}/{now.epochs}"
    if now.batch is not None and now.steps:
        text += f" · batch {now.batch}/{now.steps}"
    st.progress(now.fraction, text=text + (f" · about {format_duration(eta)} left" if eta is not None else ""))
    return now


def stop_resume_buttons(kind: JobKind, job_dir: Path, state: str, refusal: str | None = None) -> None:
    """Stop (an active job) or Resume (one `runs.may_resume` accepts; greyed out with `refusal` as its help)."""

    def clicked(action: Callable[[Path], Any], verb: str) -> None:
        try:
            action(job_dir)
        except (FerError, OSError) as error:  # OSError: a read-only or vanished folder
            st.session_state[f"{kind.scope}_monitor_message"] = (f"The {kind.noun} could not be {verb}.", error)
        else:
            if verb == "resumed":
                flash(kind.scope, f"Resumed {job_dir.name}: it continues in its own process.", ":material/play_circle:")

    if state in folder.ACTIVE_STATES:
        stopping = folder.stop_requested(job_dir)
        options = dict(on_click=clicked, args=(folder.request_stop, "stopped"), key=f"{kind.scope}-stop-{job_dir.name}")
        label = "Stopping after the current batch…" if stopping else "Stop"
        st.button(label, icon=":material/stop:", disabled=stopping, help=kind.stop_help, **options)
    elif runs.may_resume(job_dir, state):
        options = dict(on_click=clicked, args=(kind.resume, "resumed"), key=f"{kind.scope}-resume-{job_dir.name}")
        tip = refusal or kind.resume_help
        st.button("Resume", icon=":material/play_arrow:", type="primary", disabled=bool(refusal), help=tip, **options)


def log_tail(job_dir: Path, lines: int = 40) -> None:
    """The last lines of the job's log: what its process printed."""
    st.caption(f"Last {lines} lines of `{job_dir / folder.LOG_FILE}`")
    st.code(folder.read_log_tail(job_dir, max_lines=lines) or "(the log is empty so far)", language="text", height=260)


# --- portable snapshots: a run carried to another machine in one file (ferlib.training.snapshot) ---------------


def snapshot_download(run_dir: Path, state: str) -> None:
    """The run's portable snapshot, written only when asked (it reads every checkpoint), then offered."""
    last = run_dir / runs.LAST_MODEL
    if state in folder.ACTIVE_STATES or not last.exists():
        return
    version, prepared = (run_dir.name, last.stat().st_mtime_ns), st.session_state.get("training_snapshot")
    if not prepared or prepared[0] != version:
        key = f"training-snapshot-{run_dir.name}"
        if not st.button("Prepare snapshot", key=key, icon=":material/archive:", help=SNAPSHOT_HELP):
            return
        with st.spinner("Writing the snapshot…"), tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "snapshot.zip"
            if attempt("The snapshot could not be written.", lambda: snapshot.write_snapshot(run_dir, path), OSError):
                prepared = st.session_state["training_snapshot"] = (version, path.read_bytes())
    if prepared and prepared[0] == version:
        options = dict(mime="application/zip", on_click="ignore", icon=":material/download:")
        st.download_button("Download snapshot", prepared[1], f"{run_dir.name}.snapshot.zip", **options)


def restore_from_snapshot(runs_dir: Path, busy: str | None, sources: list[Path]) -> None:
    """Resume a run from a snapshot written here or on another machine: restored as stopped, then resumed."""
    with st.expander("Resume from a snapshot", icon=":material/unarchive:"):
        upload = st.file_uploader("A training snapshot (.zip)", type=["zip"], key="training_snapshot_upload")
        options = dict(format_func=lambda path: dataset_label(path) if path else "The one the snapshot names")
        data = st.selectbox("Dataset to continue on", [None, *sources], key="training_snapshot_data", **options)
        if not st.button("Resume from the snapshot", type="primary", disabled=bool(busy) or not upload):
            return
    with tempfile.TemporaryDirectory() as directory:
        (path := Path(directory) / "snapshot.zip").write_bytes(upload.getvalue())

        def restored() -> tuple[Path, TrainConfig, str]:  # nothing is created when the snapshot or dataset fails
            saved = snapshot.read_snapshot(path)
            dataset = folder.existing_dataset(str(Path(data).resolve()) if data else saved.config.data)
            return snapshot.restore_snapshot(saved, runs_dir, data=dataset), saved.config, dataset

        if not (result := attempt("This snapshot cannot be resumed here.", restored, OSError)):
            return
    run_dir, _, _ = result
    failure = f"The snapshot was restored as the stopped run {run_dir.name}, but it could not be resumed."
    if attempt(failure, lambda: runs.resume_run(run_dir), OSError):
        started("training", run_dir, f"Restored {run_dir.name} from the snapshot: it continues training.")
